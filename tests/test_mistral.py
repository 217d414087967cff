"""The real mistralai SDK against a loopback Mistral API: the events Amplitude receives."""

from __future__ import annotations

import gc
import importlib
import importlib.metadata
import types
from collections.abc import AsyncIterator, Iterator
from typing import Any, Callable

import pytest

from conftest import accepts, check_dropped_stream, props, sent
from loopback import STUB_PIECES, STUB_TEXT, Reply
from mistral_stub import (
    CACHED_TOKENS,
    COMPLETION_TOKENS,
    EMBEDDING_TOKENS_PER_INPUT,
    MODEL_SUFFIX,
    PROMPT_TOKENS,
    REQUEST_ID_HEADER,
    THINKING_TEXT,
    TOOL_ARGUMENTS,
    TOTAL_TOKENS,
    MistralStub,
    error_reply,
)

mistralai = pytest.importorskip("mistralai")
# 2.0 moved the SDK into `mistralai.client` (`mistralai` became a namespace package).
sdk = importlib.import_module(
    "mistralai.client"
    if hasattr(mistralai, "__path__") and not hasattr(mistralai, "Mistral")
    else "mistralai"
)
Mistral = sdk.Mistral
chat_module = importlib.import_module(f"{sdk.__name__}.chat")
embeddings_module = importlib.import_module(f"{sdk.__name__}.embeddings")
sdk_version = importlib.metadata.version("mistralai")
eventstreaming = importlib.import_module(f"{sdk.__name__}.utils.eventstreaming")
# Streams are `EventStream` objects (with the HTTP response) since about 1.2; plain
# generators before.
SyncStream = getattr(eventstreaming, "EventStream", types.GeneratorType)
AsyncStream = getattr(eventstreaming, "EventStreamAsync", types.AsyncGeneratorType)
# Errors live in `mistralai.client.errors` since 2.0, in `mistralai.models` before.
SDKError = getattr(getattr(sdk, "errors", None), "SDKError", None) or sdk.models.SDKError

from amplitude.ai import _instrument  # noqa: E402 (after the module-level skip, like the SDK)
from amplitude.ai._patching import tracking_switch  # noqa: E402
from amplitude.ai._providers import BUILTIN, Entry  # noqa: E402

# Credentials only these tests use; "DO-NOT-LEAK" puts them under conftest's privacy scan.
MISTRAL_KEY = "mistral-test-DO-NOT-LEAK-0123456789"
CALLABLE_KEY = "mistral-callable-DO-NOT-LEAK-42"
AZURE_KEY = "azure-mistral-DO-NOT-LEAK-77"
MODEL = "mistral-small-latest"
SERVED_MODEL = "mistral-small" + MODEL_SUFFIX
MESSAGES = [
    {"role": "system", "content": "You are terse. SECRET-SYSTEM-PROMPT"},
    {"role": "user", "content": "Say hello. SECRET-PROMPT-CONTENT"},
    {"role": "assistant", "content": "Hi."},
    {"role": "user", "content": "Again, please."},
]
ARGS: dict[str, Any] = {"model": MODEL, "messages": MESSAGES}
WEATHER_TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "description": "Weather", "parameters": {"type": "object"}},
}
# The cached count is no field of the SDK's usage model: it reaches the caller (and the
# event) where the model keeps unknown fields (mistralai 2.x and later).
KEEPS_CACHED = sdk.models.UsageInfo.model_config.get("extra") == "allow"
TOKENS = (PROMPT_TOKENS, COMPLETION_TOKENS, TOTAL_TOKENS, CACHED_TOKENS if KEEPS_CACHED else None)

# The import hook registers the provider once `amplitude.ai._providers.BUILTIN` lists it;
# until then these tests load it the way the hook would.
PROVIDER_MODULE = "amplitude.ai._providers.mistral"
ENTRY = next(
    (entry for entry in BUILTIN if entry.module == PROVIDER_MODULE),
    Entry("mistral", "mistralai", "mistralai", PROVIDER_MODULE, ">=1", ">=1.2,<4"),
)


def _provider_patched() -> bool:
    for cls, name in ((chat_module.Chat, "complete"), (embeddings_module.Embeddings, "create_async")):
        wrapper = vars(cls).get(name)
        if (switch := tracking_switch(wrapper)) is None or not switch.on:
            return False
    return True


@pytest.fixture(autouse=True)
def _mistral_provider() -> None:
    """Patched as the import hook would (again, after a test elsewhere uninstrumented)."""
    if not _provider_patched():
        _instrument._load_provider(ENTRY, mistralai)
    assert _provider_patched()


@pytest.fixture
def stub() -> Iterator[MistralStub]:
    with MistralStub() as server:
        yield server


# Clients are context managers since mistralai 1.2; before, they close when collected.
@pytest.fixture
def client(stub: MistralStub) -> Iterator[Any]:
    sdk_client = Mistral(api_key=MISTRAL_KEY, server_url=stub.base_url)
    yield sdk_client
    if hasattr(sdk_client, "__exit__"):
        sdk_client.__exit__(None, None, None)


@pytest.fixture
async def async_client(stub: MistralStub) -> AsyncIterator[Any]:
    sdk_client = Mistral(api_key=MISTRAL_KEY, server_url=stub.base_url)
    yield sdk_client
    if hasattr(sdk_client, "__aexit__"):
        await sdk_client.__aexit__(None, None, None)


def given(method: Any, **params: Any) -> dict[str, Any]:
    """The parameters the installed SDK's `method` takes (it gained many over 1.x)."""
    return {name: value for name, value in params.items() if accepts(method, name)}


def tokens(p: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(
        p.get(name) for name in ("input_tokens", "output_tokens", "total_tokens", "cached_input_tokens")
    )


def test_complete_event(tracked: Any, client: Any, capture: Any, stub: MistralStub) -> None:
    response = client.chat.complete(
        **ARGS,
        temperature=0.2,
        top_p=0.9,
        max_tokens=50,
        random_seed=7,
        safe_prompt=False,
        **given(chat_module.Chat.complete, metadata={"a": "b"}),
    )
    assert response.choices[0].message.content == STUB_TEXT
    assert stub.requests[-1].headers["authorization"] == f"Bearer {MISTRAL_KEY}"

    (event,) = sent(capture, 1)
    p = event["event_properties"]
    assert (p["provider"], p["operation"], p["api"]) == ("mistral", "chat_completion", "chat.complete")
    assert p["model"] == SERVED_MODEL
    assert p["stream"] is False and p["latency_ms"] > 0
    assert tokens(p) == TOKENS, "prompt_tokens includes the cached ones already"
    assert "reasoning_tokens" not in p
    assert (p["message_count"], p["last_message_role"]) == (4, "user")
    assert (p["finish_reason"], p["tool_call_count"], p["response_preview"]) == ("stop", 0, STUB_TEXT)
    assert (p["temperature"], p["top_p"], p["max_tokens"], p["seed"], p["safe_prompt"]) == (
        0.2,
        0.9,
        50,
        7,
        False,
    )
    assert p["server_host"] == "127.0.0.1"
    assert "request_id" not in p, "a parsed response keeps no headers"
    assert None not in p.values()
    for content in ("SECRET-PROMPT-CONTENT", "SECRET-SYSTEM-PROMPT", "metadata"):
        assert content not in repr(p), "request content stays out of the properties"


def test_messages_as_sdk_models_and_a_long_preview(
    tracked: Any, client: Any, capture: Any, stub: MistralStub
) -> None:
    models = sdk.models
    long_text = "x" * 800
    body = {
        "id": "c1",
        "object": "chat.completion",
        "created": 1,
        "model": SERVED_MODEL,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": long_text}, "finish_reason": "length"}
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 0, "total_tokens": 3},
    }
    stub.enqueue(Reply(json=body))
    client.chat.complete(
        model=MODEL, messages=[models.SystemMessage(content="Be terse."), models.UserMessage(content="Hi")]
    )
    (p,) = props(capture)
    assert (p["message_count"], p["last_message_role"]) == (2, "user")
    assert (p["finish_reason"], p["response_preview"]) == ("length", "x" * 500)
    assert (p["input_tokens"], p["output_tokens"]) == (3, 0), "a reported 0 is a value"
    assert "cached_input_tokens" not in p


def test_tool_call(tracked: Any, client: Any, capture: Any) -> None:
    extra = given(chat_module.Chat.complete, parallel_tool_calls=False)
    response = client.chat.complete(**ARGS, tools=[WEATHER_TOOL], **extra)
    assert response.choices[0].message.tool_calls[0].function.name == "get_weather"
    (p,) = props(capture)
    assert (p["tool_call_count"], p["finish_reason"]) == (1, "tool_calls")
    assert p.get("parallel_tool_calls") == extra.get("parallel_tool_calls")
    assert "response_preview" not in p


def test_thinking_is_not_the_preview(tracked: Any, client: Any, capture: Any) -> None:
    if not hasattr(sdk.models, "ThinkChunk"):
        pytest.skip(f"mistralai {sdk_version} cannot parse thinking chunks")
    extra = given(chat_module.Chat.complete, prompt_mode="reasoning")
    args = {**ARGS, "model": "magistral-small-latest", **extra}
    response = client.chat.complete(**args)
    assert [chunk.type for chunk in response.choices[0].message.content] == ["thinking", "text"]
    chunks = list(client.chat.stream(**args))
    assert any(not isinstance(c.data.choices[0].delta.content, str) for c in chunks)
    for p in props(capture, 2):
        assert p["response_preview"] == STUB_TEXT
        assert THINKING_TEXT not in repr(p)
        assert (p["model"], p.get("prompt_mode")) == (
            "magistral-small" + MODEL_SUFFIX,
            extra.get("prompt_mode"),
        )


def test_parse_is_tracked_through_complete(
    tracked: Any, client: Any, capture: Any, stub: MistralStub
) -> None:
    if not hasattr(chat_module.Chat, "parse"):
        pytest.skip(f"mistralai {sdk_version} has no chat.parse()")
    pydantic = pytest.importorskip("pydantic")

    class Weather(pydantic.BaseModel):
        city: str

    message = {"role": "assistant", "content": TOOL_ARGUMENTS}
    choice = {"index": 0, "message": message, "finish_reason": "stop"}
    usage = {
        "prompt_tokens": PROMPT_TOKENS,
        "completion_tokens": COMPLETION_TOKENS,
        "total_tokens": TOTAL_TOKENS,
    }
    stub.enqueue(
        Reply(
            json={
                "id": "c",
                "object": "chat.completion",
                "created": 1,
                "model": SERVED_MODEL,
                "choices": [choice],
                "usage": usage,
            }
        )
    )
    assert client.chat.parse(Weather, **ARGS).choices[0].message.parsed.city == "Paris"
    (p,) = props(capture)
    assert (p["api"], p["response_preview"], p["input_tokens"]) == (
        "chat.complete",
        TOOL_ARGUMENTS,
        PROMPT_TOKENS,
    )


def test_stream_to_the_end(tracked: Any, client: Any, capture: Any) -> None:
    stream = client.chat.stream(**ARGS, temperature=0.5)
    assert isinstance(stream, SyncStream)
    texts = [event.data.choices[0].delta.content for event in stream]
    assert "".join(texts) == STUB_TEXT and len(texts) == len(STUB_PIECES) + 2

    (p,) = props(capture)
    assert (p["api"], p["operation"], p["stream"], p["stream_completed"]) == (
        "chat.stream",
        "chat_completion",
        True,
        True,
    )
    assert 0 < p["time_to_first_token_ms"] <= p["latency_ms"]
    assert tokens(p) == TOKENS, "read from the final chunk"
    assert (p["model"], p["finish_reason"], p["response_preview"]) == (SERVED_MODEL, "stop", STUB_TEXT)
    assert (p["message_count"], p["temperature"], p["tool_call_count"]) == (4, 0.5, 0)
    if hasattr(stream, "response"):
        assert p["request_id"] == stream.response.headers[REQUEST_ID_HEADER]


def test_stream_tool_call(tracked: Any, client: Any, capture: Any) -> None:
    stream = client.chat.stream(**ARGS, tools=[WEATHER_TOOL])
    calls = [c for e in stream for c in e.data.choices[0].delta.tool_calls or []]
    assert len(calls) == 1
    (p,) = props(capture)
    assert (p["tool_call_count"], p["finish_reason"], p["stream_completed"]) == (1, "tool_calls", True)
    assert "response_preview" not in p


def _end_early(open_stream: Callable[[], Any], how: str) -> None:
    """Read one chunk, then leave the stream: only this frame ever holds it."""
    stream = open_stream()
    if how == "with":
        with stream:
            next(stream)
        return
    next(stream)
    if how == "close":
        stream.close()
    else:
        del stream
        gc.collect()


@pytest.mark.parametrize("how", ["close", "with", "collected"])
def test_stream_ended_early(tracked: Any, client: Any, capture: Any, how: str) -> None:
    if how != "collected" and not hasattr(SyncStream, "__enter__" if how == "with" else "close"):
        pytest.skip(f"mistralai {sdk_version}: its streams have no {how}")
    _end_early(lambda: client.chat.stream(**ARGS), how)
    (p,) = props(capture)
    assert p["stream"] is True and p["stream_completed"] is False
    assert p["model"] == SERVED_MODEL, "the first chunk was seen"
    assert "input_tokens" not in p, "usage comes with the last chunk only"
    assert "error" not in p


def test_dropped_stream(tracked: Any, client: Any, capture: Any, stub: MistralStub) -> None:
    check_dropped_stream(stub, capture, lambda: client.chat.stream(**ARGS))


def test_http_error_is_recorded_and_reraised_unchanged(
    tracked: Any, client: Any, capture: Any, stub: MistralStub
) -> None:
    stub.enqueue(error_reply(404, "Invalid model: nope", "invalid_model"))
    with pytest.raises(SDKError) as raised:
        client.chat.complete(**{**ARGS, "model": "nope"})
    assert raised.value.status_code == 404
    assert raised.traceback[-1].name != "wrapper", "the SDK's frame stays the innermost"
    stub.enqueue(error_reply(429, "Requests rate limit exceeded"))
    with pytest.raises(SDKError):
        client.chat.stream(**ARGS)
    not_found, limited = props(capture, 2)
    assert (not_found["error_type"], not_found["http_status"], not_found["model"]) == (
        "SDKError",
        404,
        "nope",
    )
    assert "Invalid model: nope" in not_found["error"]
    assert not_found["request_id"] == raised.value.raw_response.headers[REQUEST_ID_HEADER]
    assert (limited["http_status"], limited["api"], limited["stream"]) == (429, "chat.stream", True)
    assert "input_tokens" not in not_found


def test_validation_error(tracked: Any, client: Any, capture: Any, stub: MistralStub) -> None:
    detail = [{"loc": ["body", "temperature"], "msg": "too hot", "type": "less_than_equal"}]
    stub.enqueue(Reply(status=422, json={"detail": detail}))
    with pytest.raises(Exception) as raised:
        client.chat.complete(**ARGS, temperature=9.0)
    (p,) = props(capture)
    assert (p["error_type"], p["temperature"]) == (type(raised.value).__name__, 9.0)
    # Before 1.x's `MistralError` base, a validation error kept no HTTP response.
    assert p.get("http_status") == getattr(raised.value, "status_code", None)


def test_keys_in_error_messages_are_scrubbed(
    tracked: Any, client: Any, capture: Any, stub: MistralStub
) -> None:
    stub.enqueue(error_reply(401, f"Unauthorized key {MISTRAL_KEY}", "unauthorized"))
    with pytest.raises(SDKError):
        client.chat.complete(**ARGS)
    # A key the client only gets from a callable, per request: read back from the sent headers.
    keyed = Mistral(api_key=lambda: CALLABLE_KEY, server_url=stub.base_url)
    stub.enqueue(error_reply(401, f"Unauthorized key {CALLABLE_KEY}", "unauthorized"))
    with pytest.raises(SDKError):
        keyed.embeddings.create(model="mistral-embed", inputs="x")
    for p in props(capture, 2):
        assert "[REDACTED]" in p["error"]


def test_embeddings(tracked: Any, client: Any, capture: Any) -> None:
    extra = given(embeddings_module.Embeddings.create, output_dimension=3)
    response = client.embeddings.create(model="mistral-embed", inputs=["a", "b", "c"], **extra)
    assert len(response.data) == 3
    client.embeddings.create(model="mistral-embed", inputs="one")
    listed, single = props(capture, 2)
    assert (listed["provider"], listed["operation"], listed["api"]) == (
        "mistral",
        "embedding",
        "embeddings.create",
    )
    assert (listed["input_count"], listed.get("dimensions")) == (3, extra.get("output_dimension"))
    assert (listed["input_tokens"], listed["total_tokens"]) == (3 * EMBEDDING_TOKENS_PER_INPUT,) * 2
    assert listed["model"] == "mistral-embed" + MODEL_SUFFIX and listed["stream"] is False
    assert single["input_count"] == 1
    for p in (listed, single):
        assert not {"message_count", "response_preview", "tool_call_count"} & set(p)


def test_per_call_server_url(tracked: Any, capture: Any, stub: MistralStub) -> None:
    default_server = Mistral(api_key=MISTRAL_KEY)  # held: older clients close when collected
    default_server.chat.complete(**ARGS, server_url=stub.base_url.replace("127.0.0.1", "localhost"))
    (p,) = props(capture)
    assert p["server_host"] == "localhost"


def test_azure_client(tracked: Any, capture: Any, stub: MistralStub) -> None:
    azure = pytest.importorskip("mistralai.azure.client", reason="MistralAzure joined `mistralai` in 2.0")
    client = azure.MistralAzure(api_key=AZURE_KEY, server_url=stub.base_url)
    client.chat.complete(messages=MESSAGES)
    for _ in client.chat.stream(messages=MESSAGES):
        pass
    stub.enqueue(error_reply(401, f"Bad key {AZURE_KEY}", "unauthorized"))
    with pytest.raises(Exception, match="Bad key"):
        client.chat.complete(messages=MESSAGES)
    assert stub.requests[0].path.startswith("/models/chat/completions?api-version=")
    complete, streamed, failed = props(capture, 3)
    assert [p["api"] for p in (complete, streamed, failed)] == [
        "chat.complete",
        "chat.stream",
        "chat.complete",
    ]
    assert {p["provider"] for p in (complete, streamed, failed)} == {"mistral"}
    assert complete["model"] == streamed["model"] == "azureai" + MODEL_SUFFIX, "the SDK's default model"
    assert tokens(streamed)[:3] == TOKENS[:3] and streamed["response_preview"] == STUB_TEXT
    assert failed["http_status"] == 401 and "[REDACTED]" in failed["error"]


def test_loading_the_provider_again_changes_nothing(tracked: Any, client: Any, capture: Any) -> None:
    _instrument._load_provider(ENTRY, mistralai)
    client.chat.complete(**ARGS)
    for _ in client.chat.stream(**ARGS):
        pass
    sent(capture, 2)


def test_untracked_calls_get_the_sdk_objects(client: Any, capture: Any) -> None:
    stream = client.chat.stream(**ARGS)
    assert type(stream) is SyncStream
    assert len(list(stream)) == len(STUB_PIECES) + 2
    sent(capture, 0)


async def test_async_complete_stream_and_embeddings(tracked: Any, async_client: Any, capture: Any) -> None:
    response = await async_client.chat.complete_async(**ARGS, max_tokens=20)
    assert response.choices[0].message.content == STUB_TEXT
    stream = await async_client.chat.stream_async(**ARGS)
    assert isinstance(stream, AsyncStream)
    texts = [event.data.choices[0].delta.content async for event in stream]
    assert "".join(texts) == STUB_TEXT
    await async_client.embeddings.create_async(model="mistral-embed", inputs=["a", "b"])
    complete, streamed, embedded = props(capture, 3)
    assert (complete["api"], complete["max_tokens"], complete["response_preview"]) == (
        "chat.complete_async",
        20,
        STUB_TEXT,
    )
    assert tokens(complete) == tokens(streamed) == TOKENS
    assert (streamed["api"], streamed["stream_completed"], streamed["response_preview"]) == (
        "chat.stream_async",
        True,
        STUB_TEXT,
    )
    assert 0 < streamed["time_to_first_token_ms"] <= streamed["latency_ms"]
    assert (embedded["api"], embedded["input_count"]) == ("embeddings.create_async", 2)


async def test_async_stream_closed_early_and_errors(
    tracked: Any, async_client: Any, capture: Any, stub: MistralStub
) -> None:
    stream = await async_client.chat.stream_async(**ARGS)
    await stream.__anext__()
    # Left early: by its block where it has one, else closed as the generator it is.
    await (stream.__aexit__(None, None, None) if hasattr(AsyncStream, "__aexit__") else stream.aclose())
    stub.enqueue(error_reply(500, "boom", "internal_error"))
    with pytest.raises(SDKError):
        await async_client.chat.complete_async(**ARGS)
    stub.enqueue(Reply(truncate_after=3))
    stream = await async_client.chat.stream_async(**ARGS)
    with pytest.raises(Exception) as raised:
        async for _ in stream:
            pass
    closed, failed, dropped = props(capture, 3)
    assert (closed["stream_completed"], closed["model"]) == (False, SERVED_MODEL)
    assert (failed["http_status"], failed["api"]) == (500, "chat.complete_async")
    assert (dropped["stream_completed"], dropped["error_type"]) == (False, type(raised.value).__name__)
