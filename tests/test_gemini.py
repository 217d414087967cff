"""The real google-genai SDK against a loopback Gemini API: the events Amplitude receives."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any, Callable

import pytest

from conftest import check_dropped_stream, props, sent
from gemini_stub import (
    CACHED_TOKENS,
    MODEL_SUFFIX,
    OUTPUT_TOKENS,
    PROMPT_TOKENS,
    THOUGHTS_TOKENS,
    TOTAL_TOKENS,
    GeminiStub,
    error_chunk,
    error_reply,
    stream_chunks,
)
from loopback import STUB_PIECES, STUB_TEXT, Reply

genai = pytest.importorskip("google.genai")

from google.genai import errors, models, types  # noqa: E402 (after the skip, like the SDK)

from amplitude.ai import _instrument  # noqa: E402
from amplitude.ai._patching import tracking_switch  # noqa: E402
from amplitude.ai._providers import BUILTIN, Entry  # noqa: E402

# "DO-NOT-LEAK" puts it under conftest's privacy scan.
GEMINI_KEY = "AIzaSy-test-DO-NOT-LEAK-0123456789"
MODEL = "gemini-2.5-flash"
VERSIONED_MODEL = MODEL + MODEL_SUFFIX
CONTENTS = [
    {"role": "user", "parts": [{"text": "Say hello. SECRET-PROMPT-CONTENT"}]},
    {"role": "model", "parts": [{"text": "Hi."}]},
    {"role": "user", "parts": [{"text": "Again, please."}]},
]
SYSTEM = "You are terse. SECRET-SYSTEM-PROMPT"
WEATHER_TOOL = {"function_declarations": [{"name": "get_weather", "description": "Weather"}]}
THINKING = {"thinking_budget": 1024, "include_thoughts": True}

# The import hook registers the provider once `amplitude.ai._providers.BUILTIN` lists it;
# until then these tests load it the way the hook would.
PROVIDER_MODULE = "amplitude.ai._providers.gemini"
ENTRY = next(
    (entry for entry in BUILTIN if entry.module == PROVIDER_MODULE),
    Entry("gemini", "google.genai", "google-genai", PROVIDER_MODULE, ">=1.0", ">=1.0,<4"),
)


def has_field(model: type, name: str) -> bool:
    """Whether the installed SDK's pydantic type has `name` (1.0 lacks many)."""
    return name in model.model_fields  # type: ignore[attr-defined]


# Response ids arrived after 1.0; before, an event has none.
HAS_RESPONSE_ID = has_field(types.GenerateContentResponse, "response_id")


def _provider_patched() -> bool:
    for cls in (models.Models, models.AsyncModels):
        for name in ("generate_content", "generate_content_stream", "embed_content"):
            wrapper = vars(cls).get(name)
            if (switch := tracking_switch(wrapper)) is None or not switch.on:
                return False
    return True


@pytest.fixture(autouse=True)
def _gemini_provider() -> None:
    """Patched as the import hook would (again, after a test elsewhere uninstrumented)."""
    if not _provider_patched():
        _instrument._load_provider(ENTRY, genai)
    assert _provider_patched()


@pytest.fixture
def stub() -> Iterator[GeminiStub]:
    with GeminiStub() as server:
        yield server


@pytest.fixture
def client(stub: GeminiStub) -> Iterator[Any]:
    sdk_client = genai.Client(api_key=GEMINI_KEY, http_options={"base_url": stub.base_url})
    yield sdk_client
    close = getattr(sdk_client, "close", None)  # 1.0 keeps its connections open
    if close is not None:
        close()


def generate(client: Any, **config: Any) -> Any:
    return client.models.generate_content(model=MODEL, contents=CONTENTS, config=config or None)


def stream(client: Any, **config: Any) -> Any:
    return client.models.generate_content_stream(model=MODEL, contents=CONTENTS, config=config or None)


def test_generate_content_event(tracked: Any, client: Any, capture: Any, stub: GeminiStub) -> None:
    response = generate(
        client,
        system_instruction=SYSTEM,
        temperature=0.2,
        top_k=40,
        max_output_tokens=50,
        candidate_count=1,
        seed=7,
    )
    assert response.text == STUB_TEXT
    assert stub.requests[-1].headers["x-goog-api-key"] == GEMINI_KEY

    (event,) = sent(capture, 1)
    p = event["event_properties"]
    assert (p["provider"], p["operation"], p["api"]) == (
        "gemini",
        "chat_completion",
        "models.generate_content",
    )
    assert p["model"] == VERSIONED_MODEL
    assert p["stream"] is False and p["latency_ms"] > 0
    assert (p["input_tokens"], p["cached_input_tokens"]) == (PROMPT_TOKENS, CACHED_TOKENS)
    assert (p["output_tokens"], p["total_tokens"]) == (OUTPUT_TOKENS, TOTAL_TOKENS)
    assert "reasoning_tokens" not in p, "reported with thinking only"
    assert (p["message_count"], p["last_message_role"]) == (3, "user")
    assert (p["finish_reason"], p["tool_call_count"]) == ("STOP", 0)
    assert p["response_preview"] == STUB_TEXT
    assert (p["temperature"], p["top_k"], p["max_tokens"], p["n"], p["seed"]) == (0.2, 40, 50, 1, 7)
    assert p.get("request_id") == getattr(response, "response_id", None)
    assert p["server_host"] == "127.0.0.1"
    assert None not in p.values()
    for content in ("SECRET-PROMPT-CONTENT", "SECRET-SYSTEM-PROMPT"):
        assert content not in repr(event), "request content stays out of the event"


def test_typed_config_and_thinking(tracked: Any, client: Any, capture: Any) -> None:
    if not has_field(types.ThinkingConfig, "thinking_budget"):
        pytest.skip(f"google-genai {genai.__version__} has no thinking budget")
    config = types.GenerateContentConfig(
        temperature=0.5, thinking_config=types.ThinkingConfig(thinking_budget=1024, include_thoughts=True)
    )
    response = client.models.generate_content(model=MODEL, contents=CONTENTS, config=config)
    assert response.candidates[0].content.parts[0].thought is True
    for _ in stream(client, thinking_config=THINKING):
        pass
    for p in props(capture, 2):
        assert p["reasoning_tokens"] == THOUGHTS_TOKENS
        # As for the other providers, output counts the reasoning too.
        assert p["output_tokens"] == OUTPUT_TOKENS + THOUGHTS_TOKENS
        assert p["total_tokens"] == TOTAL_TOKENS + THOUGHTS_TOKENS
        assert p["thinking_budget_tokens"] == 1024
        assert p["response_preview"] == STUB_TEXT, "answer text only, not the thoughts"


def test_thinking_level(tracked: Any, client: Any, capture: Any) -> None:
    if not has_field(types.ThinkingConfig, "thinking_level"):
        pytest.skip(f"google-genai {genai.__version__} has no thinking levels")
    generate(client, thinking_config={"thinking_level": "HIGH"})
    (p,) = props(capture)
    assert (p["reasoning_effort"], p["reasoning_tokens"]) == ("high", THOUGHTS_TOKENS)


def test_function_call_is_counted(tracked: Any, client: Any, capture: Any) -> None:
    response = generate(client, tools=[WEATHER_TOOL])
    assert response.function_calls[0].name == "get_weather"
    for _ in stream(client, tools=[WEATHER_TOOL]):
        pass
    for p in props(capture, 2):
        assert (p["tool_call_count"], p["finish_reason"]) == (1, "STOP")
        assert "response_preview" not in p


@pytest.mark.parametrize(
    ("contents", "count", "role"),
    [
        ("Hello", 1, "user"),
        (["Hello", "there"], 1, "user"),  # bare parts: one user message
        ([*CONTENTS[:2], "More", {"text": "and more"}], 3, "user"),
        (CONTENTS[:2], 2, "model"),
    ],
    ids=["string", "parts", "mixed", "contents"],
)
def test_message_count(
    tracked: Any, client: Any, capture: Any, stub: GeminiStub, contents: Any, count: int, role: str
) -> None:
    client.models.generate_content(model=MODEL, contents=contents)
    if len(stub.requests[-1].body["contents"]) != count:
        # Later SDKs group bare parts into one user message: the count follows them.
        pytest.skip(f"google-genai {genai.__version__} sends each bare part as a message")
    (p,) = props(capture)
    assert (p["message_count"], p["last_message_role"]) == (count, role)


def test_stream_to_the_end(tracked: Any, client: Any, capture: Any) -> None:
    chunks = list(stream(client, temperature=0.1))
    assert [chunk.text for chunk in chunks] == list(STUB_PIECES)

    (p,) = props(capture)
    assert (p["api"], p["operation"]) == ("models.generate_content_stream", "chat_completion")
    assert p["stream"] is True and p["stream_completed"] is True
    assert 0 < p["time_to_first_token_ms"] <= p["latency_ms"]
    # Every chunk carries the counts so far: the last ones are final.
    assert (p["input_tokens"], p["output_tokens"], p["total_tokens"]) == (
        PROMPT_TOKENS,
        OUTPUT_TOKENS,
        TOTAL_TOKENS,
    )
    assert p["cached_input_tokens"] == CACHED_TOKENS
    assert (p["model"], p["finish_reason"], p["response_preview"]) == (VERSIONED_MODEL, "STOP", STUB_TEXT)
    assert (p.get("request_id"), p["temperature"]) == (getattr(chunks[0], "response_id", None), 0.1)


# Each takes the call that opens the stream, so that only its own frame holds the stream.
def _close(open_stream: Callable[[], Any]) -> None:
    chunks = open_stream()
    next(chunks)
    chunks.close()


def _drop(open_stream: Callable[[], Any]) -> None:
    chunks = open_stream()
    next(chunks)
    del chunks
    gc.collect()


@pytest.mark.parametrize("end", [_close, _drop], ids=["close", "collected"])
def test_stream_ended_early(tracked: Any, client: Any, capture: Any, end: Callable[[Any], None]) -> None:
    end(lambda: stream(client))
    (p,) = props(capture)
    assert p["stream"] is True and p["stream_completed"] is False
    assert p["input_tokens"] == PROMPT_TOKENS, "the first chunk was seen"
    assert "output_tokens" not in p and "error" not in p


def test_stream_never_iterated_sends_no_request(
    tracked: Any, client: Any, capture: Any, stub: GeminiStub
) -> None:
    chunks = stream(client)
    del chunks
    gc.collect()
    assert not stub.requests
    (p,) = props(capture)
    assert (p["stream_completed"], "time_to_first_token_ms" in p) == (False, False)


def test_error_chunk_mid_stream(tracked: Any, client: Any, capture: Any, stub: GeminiStub) -> None:
    stub.enqueue(Reply(sse=[*stream_chunks({})[:2], error_chunk(503, "The model is overloaded.")]))
    try:
        for _ in stream(client):
            pass
    except errors.ServerError as exc:
        raised: errors.ServerError | None = exc
    else:
        raised = None  # google-genai 1.0 hands the error chunk over as a response
    (p,) = props(capture)
    if raised is None:
        assert p["stream_completed"] is True and "error" not in p
        return
    assert (p["error_type"], p["http_status"]) == ("ServerError", raised.code)
    assert "overloaded" in p["error"]
    assert p["stream_completed"] is False


def test_dropped_stream(tracked: Any, client: Any, capture: Any, stub: GeminiStub) -> None:
    check_dropped_stream(stub, capture, lambda: stream(client))  # type: ignore[arg-type]


def test_stream_http_error(tracked: Any, client: Any, capture: Any, stub: GeminiStub) -> None:
    stub.enqueue(error_reply(429, "Resource has been exhausted"))
    chunks = stream(client)
    with pytest.raises(errors.ClientError):
        next(chunks)
    (p,) = props(capture)
    assert (p["http_status"], p["error_type"], p["stream"]) == (429, "ClientError", True)


def test_http_error_is_recorded_and_reraised_unchanged(
    tracked: Any, client: Any, capture: Any, stub: GeminiStub
) -> None:
    stub.enqueue(error_reply(404, "models/nope is not found"))
    with pytest.raises(errors.ClientError) as raised:
        client.models.generate_content(model="models/nope", contents="Hi")
    assert raised.value.code == 404
    assert raised.traceback[-1].name != "wrapper", "the SDK's frame stays the innermost"
    (p,) = props(capture)
    assert (p["error_type"], p["http_status"], p["model"]) == ("ClientError", 404, "nope")
    assert "models/nope is not found" in p["error"]


def test_error_message_with_key_is_scrubbed(
    tracked: Any, client: Any, capture: Any, stub: GeminiStub
) -> None:
    stub.enqueue(error_reply(400, f"API key not valid: {GEMINI_KEY}"))
    with pytest.raises(errors.ClientError):
        generate(client)
    (p,) = props(capture)
    assert "[REDACTED]" in p["error"] and p["http_status"] == 400


def test_per_call_headers_are_scrubbed(tracked: Any, client: Any, capture: Any, stub: GeminiStub) -> None:
    token = "per-call-token-DO-NOT-LEAK-99"
    stub.enqueue(error_reply(401, f"Bad credentials {token}"))
    with pytest.raises(errors.ClientError):
        generate(client, http_options={"headers": {"Authorization": f"Bearer {token}"}})
    (p,) = props(capture)
    assert "[REDACTED]" in p["error"]


def test_embed_content(tracked: Any, client: Any, capture: Any, stub: GeminiStub) -> None:
    response = client.models.embed_content(
        model="text-embedding-004", contents=["one", "two"], config={"output_dimensionality": 4}
    )
    assert len(response.embeddings) == 2
    assert stub.requests[-1].path.endswith("/models/text-embedding-004:batchEmbedContents")
    (p,) = props(capture)
    assert (p["operation"], p["api"], p["model"]) == (
        "embedding",
        "models.embed_content",
        "text-embedding-004",
    )
    assert (p["input_count"], p["dimensions"], p["stream"]) == (2, 4, False)
    assert "message_count" not in p and "response_preview" not in p


def test_chat_session_calls_are_tracked_once_each(tracked: Any, client: Any, capture: Any) -> None:
    chat = client.chats.create(model=MODEL)
    assert chat.send_message("Hello").text == STUB_TEXT
    assert "".join(chunk.text for chunk in chat.send_message_stream("Again")) == STUB_TEXT
    first, second = props(capture, 2)
    assert (first["api"], first["message_count"]) == ("models.generate_content", 1)
    assert (second["api"], second["message_count"]) == ("models.generate_content_stream", 3)


def test_loading_the_provider_again_changes_nothing(tracked: Any, client: Any, capture: Any) -> None:
    _instrument._load_provider(ENTRY, genai)
    generate(client)
    sent(capture, 1)


def test_untracked_calls_get_the_sdk_objects(client: Any, capture: Any) -> None:
    chunks = stream(client)
    assert type(chunks).__name__ == "generator"
    assert [chunk.text for chunk in chunks] == list(STUB_PIECES)
    generate(client)
    sent(capture, 0)


async def test_async_calls(tracked: Any, client: Any, capture: Any) -> None:
    response = await client.aio.models.generate_content(model=MODEL, contents=CONTENTS)
    assert response.text == STUB_TEXT
    chunks = await client.aio.models.generate_content_stream(model=MODEL, contents=CONTENTS)
    assert [chunk.text async for chunk in chunks] == list(STUB_PIECES)
    early = await client.aio.models.generate_content_stream(model=MODEL, contents=CONTENTS)
    await early.__anext__()
    await early.aclose()
    await client.aio.models.embed_content(model="text-embedding-004", contents="one")
    events = props(capture, 4)
    apis = ["generate_content", "generate_content_stream", "generate_content_stream", "embed_content"]
    assert [p["api"] for p in events] == [f"models.{name}" for name in apis]
    whole, done, closed, embedded = events
    assert (whole["input_tokens"], whole["response_preview"]) == (PROMPT_TOKENS, STUB_TEXT)
    assert (done["stream_completed"], done["output_tokens"], done["response_preview"]) == (
        True,
        OUTPUT_TOKENS,
        STUB_TEXT,
    )
    assert 0 < done["time_to_first_token_ms"] <= done["latency_ms"]
    assert (closed["stream_completed"], closed["input_tokens"]) == (False, PROMPT_TOKENS)
    assert (embedded["operation"], embedded["input_count"]) == ("embedding", 1)


async def test_async_errors(tracked: Any, client: Any, capture: Any, stub: GeminiStub) -> None:
    stub.enqueue(error_reply(500, "Internal error"))
    with pytest.raises(errors.ServerError):
        await client.aio.models.generate_content(model=MODEL, contents=CONTENTS)
    chunks = await client.aio.models.generate_content_stream(model=MODEL, contents=CONTENTS)
    stub.enqueue(error_reply(404, "Not found"))
    with pytest.raises(errors.ClientError):
        async for _ in chunks:
            pass
    http_error, stream_error = props(capture, 2)
    assert (http_error["http_status"], http_error["error_type"]) == (500, "ServerError")
    assert (stream_error["http_status"], stream_error["stream"]) == (404, True)
    assert stream_error["stream_completed"] is False
