"""The real cohere SDK against a loopback Cohere API: the events Amplitude receives."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import AsyncIterator, Iterator
from typing import Any, Callable

import pytest

from cohere_stub import (
    BILLED_INPUT_TOKENS,
    CACHED_TOKENS,
    EMBED_TOKENS_PER_TEXT,
    INPUT_TOKENS,
    OUTPUT_TOKENS,
    CohereStub,
    error_reply,
    v2_events,
)
from conftest import accepts, check_dropped_stream, props, sent
from loopback import STUB_PIECES, STUB_TEXT, Reply, format_sse

cohere = pytest.importorskip("cohere")
if not hasattr(cohere, "ClientV2"):
    pytest.skip(f"cohere {cohere.__version__} predates ClientV2", allow_module_level=True)

from amplitude.ai import _instrument  # noqa: E402 (after the module-level skip, like the SDK)
from amplitude.ai._patching import tracking_switch  # noqa: E402
from amplitude.ai._providers import BUILTIN, Entry  # noqa: E402

# "DO-NOT-LEAK" puts them under conftest's privacy scan.
COHERE_KEY = "co-test-key-DO-NOT-LEAK-0123456789"
CUSTOM_TOKEN = "custom-token-DO-NOT-LEAK-42"
MODEL = "command-a-03-2025"
MESSAGES = [
    {"role": "system", "content": "You are terse. SECRET-SYSTEM-PROMPT"},
    {"role": "user", "content": "Say hello. SECRET-PROMPT-CONTENT"},
]
V2: dict[str, Any] = {"model": MODEL, "messages": MESSAGES}
V1: dict[str, Any] = {
    "model": MODEL,
    "message": "Again, please. SECRET-PROMPT-CONTENT",
    "chat_history": [{"role": "USER", "message": "Hi"}, {"role": "CHATBOT", "message": "Hello."}],
}
EMBED: dict[str, Any] = {"model": "embed-v4.0", "input_type": "search_document", "texts": ["a", "b", "c"]}
V2_TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
V1_TOOL = {"name": "get_weather", "description": "Weather", "parameter_definitions": {}}
TOKENS = (INPUT_TOKENS, OUTPUT_TOKENS, INPUT_TOKENS + OUTPUT_TOKENS, CACHED_TOKENS)

# The import hook registers the provider once `amplitude.ai._providers.BUILTIN` lists it;
# until then these tests load it the way the hook would.
PROVIDER_MODULE = "amplitude.ai._providers.cohere"
ENTRY = next(
    (entry for entry in BUILTIN if entry.module == PROVIDER_MODULE),
    Entry("cohere", "cohere", "cohere", PROVIDER_MODULE, ">=5", ">=5.0,<8"),
)


def _patched_methods() -> list[tuple[type, str]]:
    from cohere import base_client, client
    from cohere.v2 import client as v2

    return [
        (cls, name)
        for cls in (v2.V2Client, v2.AsyncV2Client, base_client.BaseCohere, base_client.AsyncBaseCohere)
        for name in ("chat", "chat_stream")
    ] + [(client.Client, "embed"), (client.AsyncClient, "embed"), (v2.V2Client, "embed")]


def _provider_patched() -> bool:
    for cls, name in _patched_methods():
        wrapper = vars(cls).get(name)
        if (switch := tracking_switch(wrapper)) is None or not switch.on:
            return False
    return True


@pytest.fixture(autouse=True)
def _cohere_provider() -> None:
    """Patched as the import hook would (again, after a test elsewhere uninstrumented)."""
    if not _provider_patched():
        _instrument._load_provider(ENTRY, cohere)
    assert _provider_patched()


@pytest.fixture
def stub() -> Iterator[CohereStub]:
    with CohereStub() as server:
        yield server


def options(stub: CohereStub) -> dict[str, Any]:
    settings: dict[str, Any] = {"api_key": COHERE_KEY, "base_url": stub.base_url}
    if accepts(cohere.Client, "max_retries"):  # 5.x before 5.16 has no retries to turn off
        settings["max_retries"] = 0
    return settings


# Clients copy `chat` / `chat_stream` into instance attributes when created: after patching.
@pytest.fixture
def client(stub: CohereStub) -> Any:
    return cohere.ClientV2(**options(stub))


@pytest.fixture
def v1_client(stub: CohereStub) -> Any:
    return cohere.Client(**options(stub))


@pytest.fixture
async def async_client(stub: CohereStub) -> AsyncIterator[Any]:
    async with cohere.AsyncClientV2(**options(stub)) as sdk_client:
        yield sdk_client


@pytest.fixture
async def async_v1_client(stub: CohereStub) -> AsyncIterator[Any]:
    async with cohere.AsyncClient(**options(stub)) as sdk_client:
        yield sdk_client


def thinking(**config: Any) -> dict[str, Any]:
    """The `thinking` argument where the SDK has it (cohere 5.16+)."""
    if not accepts(cohere.v2.client.V2Client.chat, "thinking"):
        pytest.skip(f"cohere {cohere.__version__}: chat() takes no thinking")
    return {"thinking": config}


def tokens(p: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(
        p.get(name) for name in ("input_tokens", "output_tokens", "total_tokens", "cached_input_tokens")
    )


def check_chat(p: dict[str, Any], api: str, *, stream: bool = False) -> None:
    assert (p["provider"], p["operation"], p["api"], p["model"]) == ("cohere", "chat_completion", api, MODEL)
    assert p["stream"] is stream and p["latency_ms"] > 0
    assert tokens(p) == TOKENS
    assert (p["finish_reason"], p["tool_call_count"], p["response_preview"]) == ("COMPLETE", 0, STUB_TEXT)
    assert p["server_host"] == "127.0.0.1"
    assert p["request_id"]
    assert p["last_message_role"] == "user"
    if stream:
        assert p["stream_completed"] is True and 0 < p["time_to_first_token_ms"] <= p["latency_ms"]


def test_v2_chat_event(tracked: Any, client: Any, capture: Any, stub: CohereStub) -> None:
    response = client.chat(
        **V2, temperature=0.2, p=0.9, k=40, max_tokens=50, seed=7, safety_mode="CONTEXTUAL"
    )
    assert response.message.content[0].text == STUB_TEXT
    assert stub.requests[-1].headers["authorization"] == f"Bearer {COHERE_KEY}"

    (event,) = sent(capture, 1)
    p = event["event_properties"]
    check_chat(p, "v2.chat")
    assert p["request_id"] == response.id
    assert p["message_count"] == 2
    # Cohere's `p` / `k` are reported under everyone's names.
    assert (p["temperature"], p["top_p"], p["top_k"], p["max_tokens"], p["seed"], p["safety_mode"]) == (
        0.2,
        0.9,
        40,
        50,
        7,
        "CONTEXTUAL",
    )
    assert "SECRET" not in repr(event)


def test_v2_tool_call_with_thinking(tracked: Any, client: Any, capture: Any) -> None:
    response = client.chat(**V2, tools=[V2_TOOL], **thinking(type="enabled", token_budget=256))
    assert response.message.tool_calls
    (p,) = props(capture)
    assert (p["finish_reason"], p["tool_call_count"]) == ("TOOL_CALL", 1)
    assert (p["thinking_type"], p["thinking_budget_tokens"]) == ("enabled", 256)
    assert "response_preview" not in p, "thinking is no generated text"


def test_billed_units_when_no_token_counts(tracked: Any, client: Any, capture: Any, stub: CohereStub) -> None:
    body = {
        "id": "r1",
        "finish_reason": "MAX_TOKENS",
        "message": {"role": "assistant", "content": [{"type": "text", "text": "x" * 800}]},
        "usage": {"billed_units": {"input_tokens": BILLED_INPUT_TOKENS, "output_tokens": 3}},
    }
    stub.enqueue(Reply(json=body))
    client.chat(**V2)
    (p,) = props(capture)
    assert tokens(p) == (BILLED_INPUT_TOKENS, 3, BILLED_INPUT_TOKENS + 3, None)
    assert (p["finish_reason"], len(p["response_preview"])) == ("MAX_TOKENS", 500)


def test_v2_stream_to_the_end(tracked: Any, client: Any, capture: Any) -> None:
    stream = client.chat_stream(**V2)
    texts = [e.delta.message.content.text for e in stream if e.type == "content-delta"]
    assert "".join(texts) == STUB_TEXT
    (p,) = props(capture)
    check_chat(p, "v2.chat_stream", stream=True)


def test_v2_stream_of_a_tool_call(tracked: Any, client: Any, capture: Any) -> None:
    kinds = [e.type for e in client.chat_stream(**V2, tools=[V2_TOOL], **thinking(type="enabled"))]
    assert "tool-call-start" in kinds and "content-delta" in kinds
    (p,) = props(capture)
    assert (p["finish_reason"], p["tool_call_count"], p["thinking_type"]) == ("TOOL_CALL", 1, "enabled")
    assert "response_preview" not in p


# cohere 5.x's v2 streams swallow GeneratorExit (a bare `except:`): their close() raises.
SDK_CLOSE_ERRORS = (RuntimeError,)


def _close(open_stream: Callable[[], Any]) -> None:
    stream = open_stream()
    next(stream)
    with contextlib.suppress(*SDK_CLOSE_ERRORS):
        stream.close()


def _drop(open_stream: Callable[[], Any]) -> None:
    stream = open_stream()
    next(stream)
    del stream
    gc.collect()


def _break(open_stream: Callable[[], Any]) -> None:
    for _ in open_stream():
        break
    gc.collect()


@pytest.mark.parametrize("end", [_close, _drop, _break], ids=["close", "collected", "break"])
@pytest.mark.parametrize("version", ["v2", "v1"])
def test_stream_ended_early(
    tracked: Any, client: Any, v1_client: Any, capture: Any, version: str, end: Callable[[Any], None]
) -> None:
    if version == "v2":
        end(lambda: client.chat_stream(**V2))
    else:
        end(lambda: v1_client.chat_stream(**V1))
    (p,) = props(capture)
    assert p["stream"] is True and p["stream_completed"] is False
    assert "error" not in p and "input_tokens" not in p


def test_dropped_stream(tracked: Any, client: Any, capture: Any, stub: CohereStub) -> None:
    check_dropped_stream(stub, capture, lambda: client.chat_stream(**V2))


def test_error_mid_stream_reported_by_the_api(
    tracked: Any, client: Any, capture: Any, stub: CohereStub
) -> None:
    events = v2_events(dict(V2))
    end = format_sse(
        {"type": "message-end", "delta": {"finish_reason": "ERROR", "error": "overloaded"}},
        event="message-end",
    )
    stub.enqueue(Reply(sse=[*events[:3], end]))
    list(client.chat_stream(**V2))
    (p,) = props(capture)
    assert (p["stream_completed"], p["finish_reason"], p["response_preview"]) == (
        True,
        "ERROR",
        STUB_PIECES[0],
    )


def test_http_errors(tracked: Any, client: Any, capture: Any, stub: CohereStub) -> None:
    stub.enqueue(
        error_reply(401, "invalid api token", headers={"x-request-id": "req-401"}),
        error_reply(429, "slow down", headers={"x-request-id": "req-429"}),
    )
    with pytest.raises(cohere.UnauthorizedError):
        client.chat(**V2)
    # A stream sends its request, and fails, when first read.
    stream = client.chat_stream(**V2)
    with pytest.raises(cohere.TooManyRequestsError):
        next(stream)
    failed, failed_stream = props(capture, 2)
    # Errors keep the response headers since cohere 5.16.
    named = hasattr(cohere.core.ApiError(), "headers")
    assert (failed["error_type"], failed["http_status"]) == ("UnauthorizedError", 401)
    assert "invalid api token" in failed["error"]
    assert failed_stream["http_status"] == 429
    assert (failed.get("request_id"), failed_stream.get("request_id")) == (
        ("req-401", "req-429") if named else (None, None)
    )
    assert failed_stream["stream"] is True and failed_stream["stream_completed"] is False


def test_v2_embed(tracked: Any, client: Any, capture: Any) -> None:
    response = client.embed(**EMBED, embedding_types=["float"], output_dimension=256)
    assert len(response.embeddings.float_) == 3
    (p,) = props(capture)
    assert (p["provider"], p["operation"], p["api"], p["model"]) == (
        "cohere",
        "embedding",
        "v2.embed",
        "embed-v4.0",
    )
    assert (p["input_count"], p["input_tokens"], p["total_tokens"]) == (3, 3 * EMBED_TOKENS_PER_TEXT, 3 * 3)
    assert (p["input_type"], p["dimensions"], p["server_host"]) == ("search_document", 256, "127.0.0.1")
    assert "message_count" not in p and "output_tokens" not in p


def test_v1_chat_and_stream(tracked: Any, v1_client: Any, capture: Any) -> None:
    assert v1_client.chat(**V1, temperature=0.3).text == STUB_TEXT
    kinds = [e.event_type for e in v1_client.chat_stream(**V1)]
    assert kinds[0] == "stream-start" and kinds[-1] == "stream-end"
    chat, stream = props(capture, 2)
    check_chat(chat, "chat")
    check_chat(stream, "chat_stream", stream=True)
    assert (chat["message_count"], chat["temperature"]) == (3, 0.3)


def test_v1_tool_results_and_tool_calls(tracked: Any, v1_client: Any, capture: Any) -> None:
    results = [{"call": {"name": "get_weather", "parameters": {}}, "outputs": [{"temp": 20}]}]
    v1_client.chat(**V1, tools=[V1_TOOL], tool_results=results)
    list(v1_client.chat_stream(**V1, tools=[V1_TOOL]))
    chat, stream = props(capture, 2)
    assert (chat["last_message_role"], chat["tool_call_count"]) == ("tool", 1)
    assert (stream["tool_call_count"], stream["last_message_role"]) == (1, "user")


def test_v1_embed_batches_are_one_call(tracked: Any, v1_client: Any, capture: Any, stub: CohereStub) -> None:
    # The SDK splits more than 96 texts into several requests: the user made one call.
    texts = [f"text {i}" for i in range(100)]
    assert len(v1_client.embed(texts=texts, model="embed-english-v3.0").embeddings) == 100
    assert len(stub.requests) == 2
    (p,) = props(capture)
    assert (p["api"], p["operation"], p["input_count"]) == ("embed", "embedding", 100)
    assert p["input_tokens"] == 100 * EMBED_TOKENS_PER_TEXT


def test_each_call_tracked_once(tracked: Any, client: Any, v1_client: Any, capture: Any) -> None:
    """`ClientV2` inherits both APIs; a v1 client reaches v2 as `client.v2`."""
    client.embed(**EMBED, embedding_types=["float"])
    v1_client.v2.chat(**V2)
    v1_client.embed(**EMBED, batching=False)
    assert [p["api"] for p in props(capture, 3)] == ["v2.embed", "v2.chat", "embed"]


async def test_async_v2(tracked: Any, async_client: Any, capture: Any) -> None:
    assert (await async_client.chat(**V2)).message.content[0].text == STUB_TEXT
    texts = [
        e.delta.message.content.text
        async for e in async_client.chat_stream(**V2)
        if e.type == "content-delta"
    ]
    assert "".join(texts) == STUB_TEXT
    stream = async_client.chat_stream(**V2)
    await stream.__anext__()
    with contextlib.suppress(*SDK_CLOSE_ERRORS):
        await stream.aclose()
    await async_client.embed(**EMBED, embedding_types=["float"])
    chat, streamed, closed, embed = props(capture, 4)
    check_chat(chat, "v2.chat")
    check_chat(streamed, "v2.chat_stream", stream=True)
    assert closed["stream_completed"] is False
    assert (embed["api"], embed["input_count"]) == ("v2.embed", 3)


async def test_async_v1(tracked: Any, async_v1_client: Any, capture: Any, stub: CohereStub) -> None:
    assert (await async_v1_client.chat(**V1)).text == STUB_TEXT
    assert [e.event_type async for e in async_v1_client.chat_stream(**V1)][-1] == "stream-end"
    await async_v1_client.embed(texts=[f"t{i}" for i in range(100)])
    stub.enqueue(error_reply(403, "forbidden"))
    with pytest.raises(cohere.core.ApiError) as raised:
        await async_v1_client.chat(**V1)
    chat, stream, embed, failed = props(capture, 4)
    check_chat(chat, "chat")
    check_chat(stream, "chat_stream", stream=True)
    assert (embed["api"], embed["input_count"]) == ("embed", 100)
    assert (failed["http_status"], failed["error_type"]) == (403, type(raised.value).__name__)


def test_credentials_scrubbed(tracked: Any, stub: CohereStub, capture: Any) -> None:
    """Keys sent back in an error body and a custom auth header never reach Amplitude."""
    client = cohere.ClientV2(**options(stub))
    stub.enqueue(error_reply(400, f"bad key {COHERE_KEY} / {CUSTOM_TOKEN}"))
    with pytest.raises(cohere.BadRequestError):
        client.chat(**V2, request_options={"additional_headers": {"X-Custom-Auth": CUSTOM_TOKEN}})
    (p,) = props(capture)
    assert p["http_status"] == 400 and "bad key" in p["error"]


def test_untracked_calls_pass_through(client: Any, capture: Any) -> None:
    assert client.chat(**V2).message.content[0].text == STUB_TEXT
    assert len(list(client.chat_stream(**V2))) > 0
    assert capture.events == []
