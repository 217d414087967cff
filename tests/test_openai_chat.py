"""Chat completions through the real openai SDK: the events Amplitude receives."""

from __future__ import annotations

import contextlib
import gc
import weakref
from typing import Any

import pytest

import amplitude.ai
from conftest import (
    OPENAI_KEY,
    Conversation,
    accepts,
    check_dropped_stream,
    events_held,
    openai_v1,
    props,
    requires_sdk,
    sent,
)
from loopback import (
    CACHED_TOKENS,
    COMPLETION_TOKENS,
    MODEL_SUFFIX,
    PROMPT_TOKENS,
    REASONING_TOKENS,
    STUB_PIECES,
    STUB_TEXT,
    TOTAL_TOKENS,
    Reply,
)

openai = openai_v1()
Completions: Any = openai.resources.chat.Completions

MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Say hello. SECRET-PROMPT-CONTENT"},
]

requires_tools = requires_sdk("tools parameter", accepts(Completions.create, "tools"), "1.1")
requires_stream_close = requires_sdk("Stream.close()", hasattr(openai.Stream, "close"), "1.6")
requires_stream_options = requires_sdk(
    "stream_options", accepts(Completions.create, "stream_options"), "1.26"
)
requires_stream_helper = requires_sdk("chat.completions.stream()", hasattr(Completions, "stream"), "1.92")
requires_parse = requires_sdk("chat.completions.parse()", hasattr(Completions, "parse"), "1.92")
requires_streaming_response = requires_sdk(
    "with_streaming_response", hasattr(Completions, "with_streaming_response"), "1.8"
)


def test_chat_create_event(tracked: Any, openai_client: Any, capture: Any) -> None:
    # Both limits are reported as max_tokens; max_completion_tokens exists since 1.45, seed since 1.1.
    limit = "max_completion_tokens" if accepts(Completions.create, "max_completion_tokens") else "max_tokens"
    params: dict[str, Any] = {"temperature": 0.2, limit: 50, "seed": 7}
    if not accepts(Completions.create, "seed"):
        del params["seed"]
    completion = openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, **params)
    assert completion.choices[0].message.content == STUB_TEXT

    (event,) = sent(capture, 1)
    assert event["event_type"] == "llm_operation"
    assert event["device_id"].startswith("llm-host-")
    assert "user_id" not in event
    p = event["event_properties"]
    assert p["model"] == "gpt-4o" + MODEL_SUFFIX
    assert p["provider"] == "openai"
    assert p["operation"] == "chat_completion"
    assert p["api"] == "chat.completions.create"
    assert p["stream"] is False
    assert isinstance(p["latency_ms"], float) and p["latency_ms"] > 0
    assert (p["input_tokens"], p["output_tokens"], p["total_tokens"]) == (
        PROMPT_TOKENS,
        COMPLETION_TOKENS,
        TOTAL_TOKENS,
    )
    assert p["cached_input_tokens"] == CACHED_TOKENS
    assert p["reasoning_tokens"] == REASONING_TOKENS
    assert p["message_count"] == 2
    assert p["last_message_role"] == "user"
    assert p["finish_reason"] == "stop"
    assert p["tool_call_count"] == 0
    assert p["response_preview"] == STUB_TEXT
    assert (p["temperature"], p["max_tokens"], p.get("seed")) == (0.2, 50, params.get("seed"))
    if hasattr(completion, "_request_id"):
        assert p["request_id"] == completion._request_id
    else:  # parsed responses carry no request id before openai 1.46
        assert "request_id" not in p
    assert p["server_host"] == "127.0.0.1"
    assert None not in p.values()
    assert "SECRET-PROMPT-CONTENT" not in repr(event), "request content must not be sent"


@pytest.mark.parametrize("tools", [False, True], ids=["text", "tool-call"])
def test_finished_call_keeps_neither_response_nor_conversation(
    tracked: Any, openai_client: Any, capture: Any, tools: bool
) -> None:
    """Until its event is built (up to a batch delay later), a finished call holds only the
    values its event needs, not the SDK's response or the caller's messages.

    Regression: both were kept, so in a busy caller they outlived young-generation garbage
    collections and brought on full ones (~10 us a call in benchmarks/overhead.py).
    """
    if tools and not accepts(Completions.create, "tools"):
        pytest.skip("tools parameter: openai >= 1.1")
    with events_held() as held:
        messages = Conversation(MESSAGES)
        extra = {"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]}
        completion = openai_client.chat.completions.create(
            model="gpt-4o", messages=messages, **(extra if tools else {})
        )
        request_id = getattr(completion, "_request_id", None)
        usage = completion.usage
        kept = [completion, messages, usage]
        if not getattr(usage, "__pydantic_extra__", True):
            # Nor the usage's details models (an older SDK, not declaring them, holds them
            # as dicts among the usage's undeclared fields).
            kept += [usage.prompt_tokens_details, usage.completion_tokens_details]
        finished = [weakref.ref(obj) for obj in kept]
        del completion, usage, kept, messages
        amplitude.ai.flush()
        assert len(held) == 1, "the event is not built yet"
        assert [ref() for ref in finished] == [None] * len(finished)
        # Only plain values: nothing the app's garbage collector keeps walking.
        gc.collect()
        assert held[0].response is None and not gc.is_tracked(held[0].acc)
    (p,) = props(capture)
    assert (p["model"], p["input_tokens"], p["output_tokens"], p["total_tokens"]) == (
        "gpt-4o" + MODEL_SUFFIX,
        PROMPT_TOKENS,
        COMPLETION_TOKENS,
        TOTAL_TOKENS,
    )
    assert (p["cached_input_tokens"], p["reasoning_tokens"]) == (CACHED_TOKENS, REASONING_TOKENS)
    assert (p["message_count"], p["last_message_role"]) == (2, "user")
    assert p.get("request_id") == request_id
    if tools:
        assert (p["finish_reason"], p["tool_call_count"]) == ("tool_calls", 1)
        assert "response_preview" not in p
    else:
        assert (p["finish_reason"], p["tool_call_count"], p["response_preview"]) == ("stop", 0, STUB_TEXT)


def test_finished_stream_is_not_kept(tracked: Any, openai_client: Any, capture: Any) -> None:
    """Until its event is built, a finished stream's call holds its request id and sent
    headers, not the SDK's stream (and with it the HTTP response and connection objects).

    Regression: the stream was kept (~40 objects a stream, ~30 us of the app's garbage
    collections per stream in a busy caller).
    """
    with events_held() as held:
        stream = openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
        request_id = stream.response.headers["x-request-id"]
        sdk_stream = weakref.ref(stream.__wrapped__)
        text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
        del stream
        amplitude.ai.flush()
        assert len(held) == 1, "the event is not built yet"
        assert sdk_stream() is None
    (p,) = props(capture)
    assert (p["request_id"], p["response_preview"], p["stream_completed"]) == (request_id, text, True)


def test_request_user_becomes_user_id(tracked: Any, openai_client: Any, capture: Any) -> None:
    openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, user="end-user-1234")
    (event,) = sent(capture, 1)
    assert event["user_id"] == "end-user-1234"


def test_parameters_sent_through_extra_body(tracked: Any, openai_client: Any, capture: Any) -> None:
    """`extra_body` goes into the request body over the arguments: how callers of an older SDK
    send parameters it has no argument for.

    Regression: only keyword arguments were read, so such parameters were not reported.
    """
    openai_client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, temperature=0.2, extra_body={"temperature": 0.7, "top_k": 5}
    )
    (p,) = props(capture)
    assert p["temperature"] == 0.7, "the value the server received"
    assert "top_k" not in p, "only the charted parameters"


@requires_tools
def test_tool_calls_are_counted(tracked: Any, openai_client: Any, capture: Any) -> None:
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, tools=tools)
    (p,) = props(capture)
    assert p["tool_call_count"] == 1
    assert p["finish_reason"] == "tool_calls"
    assert "response_preview" not in p


def test_stream_to_the_end(tracked: Any, openai_client: Any, capture: Any, stub: Any) -> None:
    stream = openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    assert isinstance(stream, openai.Stream)
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == STUB_TEXT

    (p,) = props(capture)
    assert p["stream"] is True and p["stream_completed"] is True
    assert 0 < p["time_to_first_token_ms"] <= p["latency_ms"]
    assert p["response_preview"] == STUB_TEXT
    assert p["finish_reason"] == "stop"
    assert p["model"] == "gpt-4o" + MODEL_SUFFIX
    # Not OpenAI's own host: the request is left alone and no usage is reported.
    assert "stream_options" not in stub.requests[-1].body
    assert "input_tokens" not in p


def test_server_host_follows_a_reassigned_base_url(tracked: Any, openai_client: Any, capture: Any) -> None:
    """The host is cached per base URL object (reading it is on a stream's call path): a
    client pointed elsewhere is reported, and decided on, with its new host."""
    hosts = ("127.0.0.1", "localhost", "127.0.0.1")
    for host in hosts:
        url = str(openai_client.base_url)
        openai_client.base_url = url.replace("localhost", host).replace("127.0.0.1", host)
        if host not in str(openai_client.base_url):
            pytest.skip("this openai's base_url setter leaves base_url as it was (openai 1.0)")
        chunks = openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == STUB_TEXT
        openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    reported = [p["server_host"] for p in props(capture, 2 * len(hosts))]
    assert reported == [host for host in hosts for _call in ("stream", "call")]


@requires_stream_options
def test_stream_with_usage_requested_by_caller(tracked: Any, openai_client: Any, capture: Any) -> None:
    chunks = list(
        openai_client.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[-1].choices == [] and chunks[-1].usage is not None, "the caller sees the usage chunk"
    (p,) = props(capture)
    assert (p["input_tokens"], p["output_tokens"], p["total_tokens"]) == (
        PROMPT_TOKENS,
        COMPLETION_TOKENS,
        TOTAL_TOKENS,
    )


@requires_stream_close
def test_stream_break_then_close(tracked: Any, openai_client: Any, capture: Any) -> None:
    stream = openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    for _chunk in stream:
        break
    stream.close()
    (p,) = props(capture)
    assert p["stream_completed"] is False
    assert "error" not in p


@requires_stream_close
def test_stream_context_manager(tracked: Any, openai_client: Any, capture: Any) -> None:
    with openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True) as stream:
        first = next(iter(stream))
        assert first.choices[0].delta.role == "assistant"
    assert stream.response.is_closed
    (p,) = props(capture)
    assert p["stream_completed"] is False


def test_stream_abandoned_is_sent_when_collected(tracked: Any, openai_client: Any, capture: Any) -> None:
    stream = openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    next(stream)
    del stream
    gc.collect()
    (p,) = props(capture)
    assert p["stream"] is True and p["stream_completed"] is False


def test_stream_iterated_after_its_proxy_is_dropped(tracked: Any, openai_client: Any, capture: Any) -> None:
    """`for chunk in client...create(stream=True)` keeps only the iterator, not the stream.

    Regression: the call ended when the stream object was collected, at the loop's start,
    so its event could be built before any chunk was read.
    """
    with events_held() as held:
        chunks = iter(openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
        gc.collect()
        amplitude.ai.flush()
        assert held == [], "ended before its chunks were read"
        text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
        amplitude.ai.flush()
        assert len(held) == 1
    (p,) = props(capture)
    assert (p["stream_completed"], p["response_preview"]) == (True, text)


def test_stream_error_mid_way(tracked: Any, openai_client: Any, capture: Any, stub: Any) -> None:
    check_dropped_stream(
        stub,
        capture,
        lambda: openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True),
    )


def test_http_error_is_recorded_and_reraised_unchanged(
    tracked: Any, openai_client: Any, capture: Any, stub: Any
) -> None:
    stub.enqueue(Reply.error(404, "The model `nope` does not exist", code="model_not_found"))
    with pytest.raises(openai.NotFoundError) as raised:
        openai_client.chat.completions.create(model="nope", messages=MESSAGES)
    assert raised.value.status_code == 404
    assert raised.traceback[-1].name != "wrapper", "the SDK's frame stays the innermost"
    (p,) = props(capture)
    assert p["error_type"] == "NotFoundError"
    assert p["http_status"] == 404
    assert "does not exist" in p["error"]
    assert p["model"] == "nope"


def test_error_message_with_key_is_scrubbed(
    tracked: Any, openai_client: Any, capture: Any, stub: Any
) -> None:
    stub.enqueue(Reply.error(401, f"Incorrect API key provided: {OPENAI_KEY}", code="invalid_api_key"))
    with pytest.raises(openai.AuthenticationError):
        openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    (p,) = props(capture)
    assert "[REDACTED]" in p["error"]


@requires_stream_helper
def test_stream_helper(tracked: Any, openai_client: Any, capture: Any) -> None:
    with openai_client.chat.completions.stream(model="gpt-4o", messages=MESSAGES) as stream:
        deltas = [e.delta for e in stream if e.type == "content.delta"]
        final = stream.get_final_completion()
    assert "".join(deltas) == STUB_TEXT == final.choices[0].message.content
    (p,) = props(capture)
    assert p["api"] == "chat.completions.create" and p["stream"] is True
    assert p["response_preview"] == STUB_TEXT


@requires_parse
def test_parse(tracked: Any, openai_client: Any, capture: Any) -> None:
    completion = openai_client.chat.completions.parse(model="gpt-4o", messages=MESSAGES)
    assert completion.choices[0].message.content == STUB_TEXT
    (p,) = props(capture)
    assert p["api"] == "chat.completions.parse"
    assert p["input_tokens"] == PROMPT_TOKENS


def test_with_raw_response(tracked: Any, openai_client: Any, capture: Any) -> None:
    raw = openai_client.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES)
    assert raw.headers.get("x-request-id")
    assert raw.parse().choices[0].message.content == STUB_TEXT
    (p,) = props(capture)
    assert p["api"] == "chat.completions.create"
    assert p["input_tokens"] == PROMPT_TOKENS
    assert p["response_preview"] == STUB_TEXT
    assert p["request_id"] == raw.headers["x-request-id"]


def test_with_raw_response_stream(tracked: Any, openai_client: Any, capture: Any) -> None:
    raw = openai_client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=MESSAGES, stream=True
    )
    stream = raw.parse()
    assert isinstance(stream, openai.Stream)
    assert [c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content] == list(
        STUB_PIECES
    )
    (p,) = props(capture)
    assert p["stream"] is True and p["response_preview"] == STUB_TEXT


@requires_streaming_response
def test_with_streaming_response(tracked: Any, openai_client: Any, capture: Any) -> None:
    with openai_client.chat.completions.with_streaming_response.create(
        model="gpt-4o", messages=MESSAGES
    ) as response:
        completion = response.parse()
    assert completion.choices[0].message.content == STUB_TEXT
    (p,) = props(capture)
    assert p["input_tokens"] == PROMPT_TOKENS and p["response_preview"] == STUB_TEXT


@requires_streaming_response
def test_with_streaming_response_stream(tracked: Any, openai_client: Any, capture: Any) -> None:
    with openai_client.chat.completions.with_streaming_response.create(
        model="gpt-4o", messages=MESSAGES, stream=True
    ) as response:
        text = "".join(c.choices[0].delta.content or "" for c in response.parse() if c.choices)
    assert text == STUB_TEXT
    (p,) = props(capture)
    assert p["stream"] is True and p["response_preview"] == STUB_TEXT


async def test_async_create_and_stream(tracked: Any, async_openai_client: Any, capture: Any) -> None:
    completion = await async_openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert completion.choices[0].message.content == STUB_TEXT
    stream = await async_openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    assert isinstance(stream, openai.AsyncStream)
    async with contextlib.AsyncExitStack() as stack:
        if hasattr(openai.AsyncStream, "__aenter__"):  # a context manager since openai 1.6
            await stack.enter_async_context(stream)
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == STUB_TEXT
    first, second = props(capture, 2)
    assert first["stream"] is False and first["input_tokens"] == PROMPT_TOKENS
    assert second["stream"] is True and second["stream_completed"] is True
    assert second["response_preview"] == STUB_TEXT


@requires_stream_helper
async def test_async_stream_helper_and_raw(tracked: Any, async_openai_client: Any, capture: Any) -> None:
    async with async_openai_client.chat.completions.stream(model="gpt-4o", messages=MESSAGES) as stream:
        final = await stream.get_final_completion()
    assert final.choices[0].message.content == STUB_TEXT
    raw = await async_openai_client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=MESSAGES
    )
    assert raw.parse().choices[0].message.content == STUB_TEXT
    async with async_openai_client.chat.completions.with_streaming_response.create(
        model="gpt-4o", messages=MESSAGES
    ) as response:
        parsed = await response.parse()
    assert parsed.choices[0].message.content == STUB_TEXT
    events = props(capture, 3)
    assert [e["stream"] for e in events] == [True, False, False]
    assert all(e["response_preview"] == STUB_TEXT for e in events)


async def test_async_error(tracked: Any, async_openai_client: Any, capture: Any, stub: Any) -> None:
    stub.enqueue(Reply.error(500, "boom", type_="server_error"))
    with pytest.raises(openai.InternalServerError):
        await async_openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    (p,) = props(capture)
    assert p["http_status"] == 500 and p["error_type"] == "InternalServerError"
