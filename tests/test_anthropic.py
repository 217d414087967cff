"""The real anthropic SDK against a loopback Messages API: the events Amplitude receives."""

from __future__ import annotations

import gc
import importlib.util
import weakref
from collections.abc import AsyncIterator, Iterator
from typing import Any, Callable

import pytest

from anthropic_stub import (
    ALL_INPUT_TOKENS,
    CACHE_READ_TOKENS,
    CACHE_WRITE_TOKENS,
    MODEL_SUFFIX,
    OUTPUT_TOKENS,
    THINKING_TOKENS,
    AnthropicStub,
    error_event,
    error_reply,
    message_events,
)
from conftest import Conversation, accepts, check_dropped_stream, events_held, props, sent
from loopback import STUB_PIECES, STUB_TEXT, Reply, format_sse

anthropic = pytest.importorskip("anthropic")
if importlib.util.find_spec("anthropic.resources.messages") is None:
    pytest.skip(f"anthropic {anthropic.__version__} predates `client.messages`", allow_module_level=True)

import amplitude.ai  # noqa: E402 (after the module-level skip, like the SDK)
from amplitude.ai import _instrument  # noqa: E402
from amplitude.ai._patching import tracking_switch  # noqa: E402
from amplitude.ai._providers import BUILTIN, Entry  # noqa: E402
from amplitude.ai._providers import anthropic as anthropic_provider  # noqa: E402

# Credentials only these tests use; "DO-NOT-LEAK" puts them under conftest's privacy scan.
ANTHROPIC_KEY = "sk-ant-api03-test-DO-NOT-LEAK-0123456789"
VERTEX_TOKEN = "ya29.vertex-token-DO-NOT-LEAK-42"
BEDROCK_KEY = "bedrock-api-key-DO-NOT-LEAK-77"
MODEL = "claude-haiku-4-5"
DATED_MODEL = MODEL + MODEL_SUFFIX
MESSAGES = [
    {"role": "user", "content": "Say hello. SECRET-PROMPT-CONTENT"},
    {"role": "assistant", "content": "Hi."},
    {"role": "user", "content": "Again, please."},
]
SYSTEM = "You are terse. SECRET-SYSTEM-PROMPT"
ARGS: dict[str, Any] = {"model": MODEL, "max_tokens": 50, "messages": MESSAGES}
WEATHER_TOOL = {"name": "get_weather", "description": "Weather", "input_schema": {"type": "object"}}

# The import hook registers the provider once `amplitude.ai._providers.BUILTIN` lists it;
# until then these tests load it the way the hook would.
PROVIDER_MODULE = "amplitude.ai._providers.anthropic"
ENTRY = next(
    (entry for entry in BUILTIN if entry.module == PROVIDER_MODULE),
    Entry("anthropic", "anthropic", "anthropic", PROVIDER_MODULE, ">=0.8", ">=0.16,<3"),
)


def _messages_classes() -> list[type]:
    from anthropic.resources import messages

    return [messages.Messages, messages.AsyncMessages]


def _provider_patched() -> bool:
    for cls in _messages_classes():
        wrapper = vars(cls).get("create")
        if (switch := tracking_switch(wrapper)) is None or not switch.on:
            return False
    return True


@pytest.fixture(autouse=True)
def _anthropic_provider() -> None:
    """Patched as the import hook would (again, after a test elsewhere uninstrumented)."""
    if not _provider_patched():
        _instrument._load_provider(ENTRY, anthropic)
    assert _provider_patched()


def client_options(stub: AnthropicStub) -> dict[str, Any]:
    return {"api_key": ANTHROPIC_KEY, "base_url": stub.base_url, "max_retries": 0}


@pytest.fixture
def stub() -> Iterator[AnthropicStub]:
    with AnthropicStub() as server:
        yield server


@pytest.fixture
def client(stub: AnthropicStub) -> Iterator[Any]:
    with anthropic.Anthropic(**client_options(stub)) as sdk_client:
        yield sdk_client


@pytest.fixture
async def async_client(stub: AnthropicStub) -> AsyncIterator[Any]:
    async with anthropic.AsyncAnthropic(**client_options(stub)) as sdk_client:
        yield sdk_client


def supports(*params: str) -> bool:
    """Whether the installed SDK's `messages.create` takes these arguments."""
    return all(accepts(anthropic.resources.messages.Messages.create, name) for name in params)


def skip_unless_supported(*params: str) -> None:
    if not supports(*params):
        pytest.skip(f"anthropic {anthropic.__version__}: messages.create() takes no {', '.join(params)}")


def sampling(**params: Any) -> dict[str, Any]:
    """Sampling parameters as arguments where the SDK still has them (it dropped temperature,
    top_p and top_k in 2.x), else through `extra_body`."""
    return params if supports(*params) else {"extra_body": params}


def test_finished_call_keeps_neither_message_nor_conversation(
    tracked: Any, client: Any, capture: Any
) -> None:
    """Until its event is built, a finished call holds the values its event needs, not the
    SDK's message or the caller's messages (why: tests/test_openai_chat.py's twin)."""
    with events_held() as held:
        messages = Conversation(MESSAGES)
        message = client.messages.create(model=MODEL, max_tokens=50, messages=messages)
        request_id = getattr(message, "_request_id", None)
        kept = [message, messages, message.usage]
        finished = [weakref.ref(obj) for obj in kept]
        del message, messages, kept
        amplitude.ai.flush()
        assert len(held) == 1, "the event is not built yet"
        assert [ref() for ref in finished] == [None] * len(finished)
        # Only plain values: nothing the app's garbage collector keeps walking.
        gc.collect()
        assert held[0].response is None and not gc.is_tracked(held[0].acc)
    (p,) = props(capture)
    assert (p["message_count"], p["last_message_role"], p["response_preview"]) == (
        len(MESSAGES),
        MESSAGES[-1]["role"],
        STUB_TEXT,
    )
    assert p["input_tokens"] > 0 and p["output_tokens"] > 0
    assert p.get("request_id") == request_id


def test_create_event(tracked: Any, client: Any, capture: Any, stub: AnthropicStub) -> None:
    message = client.messages.create(
        **ARGS,
        system=SYSTEM,
        metadata={"user_id": "end-user-1234"},
        **sampling(temperature=0.2, top_k=40),
    )
    assert message.content[0].text == STUB_TEXT
    sent_headers = stub.requests[-1].headers
    # anthropic 2.x sends the key as a bearer token, earlier versions as x-api-key.
    assert ANTHROPIC_KEY in (
        sent_headers.get("x-api-key"),
        sent_headers.get("authorization", "").removeprefix("Bearer "),
    )

    (event,) = sent(capture, 1)
    assert event["user_id"] == "end-user-1234"
    p = event["event_properties"]
    assert (p["provider"], p["operation"], p["api"]) == ("anthropic", "chat_completion", "messages.create")
    assert p["model"] == DATED_MODEL
    assert p["stream"] is False and p["latency_ms"] > 0
    # Cache reads and writes count as input, as every provider's input count does.
    assert (p["input_tokens"], p["output_tokens"], p["total_tokens"]) == (
        ALL_INPUT_TOKENS,
        OUTPUT_TOKENS,
        ALL_INPUT_TOKENS + OUTPUT_TOKENS,
    )
    assert (p["cached_input_tokens"], p["cache_creation_input_tokens"]) == (
        CACHE_READ_TOKENS,
        CACHE_WRITE_TOKENS,
    )
    assert "reasoning_tokens" not in p, "reported with thinking only"
    assert (p["message_count"], p["last_message_role"]) == (3, "user")
    assert (p["finish_reason"], p["tool_call_count"]) == ("end_turn", 0)
    assert p["response_preview"] == STUB_TEXT
    assert (p["temperature"], p["top_k"], p["max_tokens"]) == (0.2, 40, 50)
    if hasattr(message, "_request_id"):  # anthropic >= 0.3x keeps the header on messages
        assert p["request_id"] == message._request_id
    assert p["server_host"] == "127.0.0.1"
    assert None not in p.values()
    for content in ("SECRET-PROMPT-CONTENT", "SECRET-SYSTEM-PROMPT", "end-user-1234"):
        assert content not in repr(p), "request content and metadata stay out of the properties"


def test_server_host_follows_a_reassigned_base_url(tracked: Any, client: Any, capture: Any) -> None:
    """The host is that of the client's base URL when the call was made (it was read when
    the event was built, a batch delay later)."""
    hosts = ("127.0.0.1", "localhost", "127.0.0.1")
    for host in hosts:
        url = str(client.base_url)
        client.base_url = url.replace("localhost", host).replace("127.0.0.1", host)
        client.messages.create(**ARGS)
    assert [p["server_host"] for p in props(capture, len(hosts))] == list(hosts)


def test_thinking(tracked: Any, client: Any, capture: Any) -> None:
    skip_unless_supported("thinking")
    thinking = {"type": "enabled", "budget_tokens": 1024}
    message = client.messages.create(**ARGS, thinking=thinking)
    assert [block.type for block in message.content] == ["thinking", "text"]
    with client.messages.stream(**ARGS, thinking=thinking) as stream:
        assert "".join(stream.text_stream) == STUB_TEXT
    for p in props(capture, 2):
        assert p["reasoning_tokens"] == THINKING_TOKENS
        assert (p["thinking_type"], p["thinking_budget_tokens"]) == ("enabled", 1024)
        assert p["response_preview"] == STUB_TEXT, "text blocks only, not the thinking"


def test_tool_use_is_counted_and_a_short_user_id_ignored(tracked: Any, client: Any, capture: Any) -> None:
    skip_unless_supported("tools")
    message = client.messages.create(**ARGS, tools=[WEATHER_TOOL], metadata={"user_id": "abc"})
    assert message.stop_reason == "tool_use"
    (event,) = sent(capture, 1)
    assert "user_id" not in event, "Amplitude rejects ids shorter than 5 characters"
    p = event["event_properties"]
    assert (p["tool_call_count"], p["finish_reason"]) == (1, "tool_use")
    assert "response_preview" not in p


def test_stream_to_the_end(tracked: Any, client: Any, capture: Any) -> None:
    stream = client.messages.create(**ARGS, stream=True)
    assert isinstance(stream, anthropic.Stream)
    texts = [e.delta.text for e in stream if e.type == "content_block_delta"]
    assert texts == list(STUB_PIECES)

    (p,) = props(capture)
    assert p["stream"] is True and p["stream_completed"] is True
    assert 0 < p["time_to_first_token_ms"] <= p["latency_ms"]
    # Input and cache counts come from message_start, the output count from message_delta.
    assert (p["input_tokens"], p["output_tokens"]) == (ALL_INPUT_TOKENS, OUTPUT_TOKENS)
    assert p["cached_input_tokens"] == CACHE_READ_TOKENS
    assert (p["model"], p["finish_reason"], p["response_preview"]) == (DATED_MODEL, "end_turn", STUB_TEXT)
    assert p["request_id"] == stream.response.headers["request-id"]


def test_stream_counts_in_message_delta_win(
    tracked: Any, client: Any, capture: Any, stub: AnthropicStub
) -> None:
    """The API's message_delta may repeat the input counts, cumulatively: those are final."""
    final = {"type": "message_delta", "delta": {"stop_reason": "max_tokens", "stop_sequence": None}}
    final["usage"] = {"input_tokens": 30, "cache_read_input_tokens": 0, "output_tokens": 50}
    events = [e for e in message_events(dict(ARGS)) if "message_delta" not in e]
    stub.enqueue(Reply(sse=[*events[:-1], format_sse(final, event="message_delta"), events[-1]]))
    for _ in client.messages.create(**ARGS, stream=True):
        pass
    (p,) = props(capture)
    assert (p["input_tokens"], p["cached_input_tokens"]) == (30 + CACHE_WRITE_TOKENS, 0)
    assert (p["output_tokens"], p["finish_reason"]) == (50, "max_tokens")


def test_stream_of_a_tool_call_with_thinking(tracked: Any, client: Any, capture: Any) -> None:
    skip_unless_supported("tools", "thinking")
    stream = client.messages.create(
        **ARGS, tools=[WEATHER_TOOL], thinking={"type": "enabled", "budget_tokens": 1024}, stream=True
    )
    kinds = {e.content_block.type for e in stream if e.type == "content_block_start"}
    assert kinds == {"thinking", "tool_use"}
    (p,) = props(capture)
    assert (p["tool_call_count"], p["finish_reason"]) == (1, "tool_use")
    assert p["reasoning_tokens"] == THINKING_TOKENS
    assert "response_preview" not in p


# Each takes the call that opens the stream, so that only its own frame holds the stream.
def _close(open_stream: Callable[[], Any]) -> None:
    stream = open_stream()
    next(stream)
    stream.close()


def _exit_block(open_stream: Callable[[], Any]) -> None:
    with open_stream() as stream:
        next(stream)


def _drop(open_stream: Callable[[], Any]) -> None:
    stream = open_stream()
    next(stream)
    del stream
    gc.collect()


@pytest.mark.parametrize("end", [_close, _exit_block, _drop], ids=["close", "with", "collected"])
def test_stream_ended_early(tracked: Any, client: Any, capture: Any, end: Callable[[Any], None]) -> None:
    end(lambda: client.messages.create(**ARGS, stream=True))
    (p,) = props(capture)
    assert p["stream"] is True and p["stream_completed"] is False
    assert p["input_tokens"] == ALL_INPUT_TOKENS, "message_start was seen"
    assert "error" not in p


def test_error_event_mid_stream(tracked: Any, client: Any, capture: Any, stub: AnthropicStub) -> None:
    events = message_events(dict(ARGS))
    stub.enqueue(Reply(sse=[*events[:4], error_event("Overloaded")]))
    stream = client.messages.create(**ARGS, stream=True)
    with pytest.raises(anthropic.APIError) as raised:
        for _ in stream:
            pass
    (p,) = props(capture)
    assert p["error_type"] == type(raised.value).__name__
    assert "Overloaded" in p["error"]
    assert p["stream_completed"] is False
    assert p["request_id"] == raised.value.response.headers["request-id"]


def test_dropped_stream(tracked: Any, client: Any, capture: Any, stub: AnthropicStub) -> None:
    check_dropped_stream(stub, capture, lambda: client.messages.create(**ARGS, stream=True))


@pytest.fixture
def streams_observed_in_place(monkeypatch: pytest.MonkeyPatch) -> None:
    """As with anthropic 0.3x-0.x, whose stream classes reject proxies in `isinstance()`."""
    for cls in (anthropic.Stream, anthropic.AsyncStream):
        monkeypatch.setitem(anthropic_provider._proxy_passes, cls, False)


@pytest.mark.usefixtures("streams_observed_in_place")
def test_streams_observed_in_place(tracked: Any, client: Any, capture: Any) -> None:
    stream = client.messages.create(**ARGS, stream=True)
    assert type(stream) is anthropic.Stream, "the SDK's own object"
    assert "".join(e.delta.text for e in stream if e.type == "content_block_delta") == STUB_TEXT
    (p,) = props(capture)
    assert (p["stream_completed"], p["output_tokens"], p["response_preview"]) == (
        True,
        OUTPUT_TOKENS,
        STUB_TEXT,
    )

    with client.messages.create(**ARGS, stream=True) as stream:
        next(stream)
    raw = client.messages.with_raw_response.create(**ARGS, stream=True)
    assert raw.parse() is raw.parse()
    assert len([e for e in raw.parse() if e.type == "content_block_delta"]) == len(STUB_PIECES)
    # Still referenced: the block's exit ended the first call, not the garbage collector.
    closed, parsed = props(capture, 3)[1:]
    assert (closed["stream_completed"], closed["input_tokens"]) == (False, ALL_INPUT_TOKENS)
    assert (parsed["stream_completed"], parsed["response_preview"]) == (True, STUB_TEXT)
    assert stream.response.is_closed


@pytest.mark.usefixtures("streams_observed_in_place")
async def test_async_streams_observed_in_place(tracked: Any, async_client: Any, capture: Any) -> None:
    stream = await async_client.messages.create(**ARGS, stream=True)
    assert type(stream) is anthropic.AsyncStream
    assert len([e async for e in stream]) > len(STUB_PIECES)
    stream = await async_client.messages.create(**ARGS, stream=True)
    await stream.__anext__()
    await stream.close()
    done, closed = props(capture, 2)
    assert (done["stream_completed"], closed["stream_completed"]) == (True, False)


def test_stream_helper(tracked: Any, client: Any, capture: Any) -> None:
    manager = client.messages.stream(**ARGS)
    assert isinstance(manager, anthropic.lib.streaming.MessageStreamManager)
    with manager as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == STUB_TEXT == final.content[0].text

    (p,) = props(capture)
    assert (p["api"], p["stream"], p["stream_completed"]) == ("messages.stream", True, True)
    assert (p["input_tokens"], p["output_tokens"]) == (ALL_INPUT_TOKENS, OUTPUT_TOKENS)
    assert (p["response_preview"], p["finish_reason"]) == (STUB_TEXT, "end_turn")
    assert p["request_id"] == stream.response.headers["request-id"]
    assert 0 < p["time_to_first_token_ms"] <= p["latency_ms"]


def test_stream_helper_until_done_and_events(tracked: Any, client: Any, capture: Any) -> None:
    with client.messages.stream(**ARGS) as stream:
        first = next(iter(stream))
        stream.until_done()
    assert first.type == "message_start"
    (p,) = props(capture)
    assert p["stream_completed"] is True and p["response_preview"] == STUB_TEXT


def test_stream_helper_left_early(tracked: Any, client: Any, capture: Any) -> None:
    with client.messages.stream(**ARGS) as stream:
        next(iter(stream))
    manager = client.messages.stream(**ARGS)
    next(manager.__enter__())
    del manager  # never exited: the stream goes with the garbage collector
    gc.collect()
    for p in props(capture, 2):
        assert p["stream_completed"] is False and p["input_tokens"] == ALL_INPUT_TOKENS


def test_stream_helper_never_entered_sends_nothing(
    tracked: Any, client: Any, capture: Any, stub: AnthropicStub
) -> None:
    client.messages.stream(**ARGS)
    gc.collect()
    assert not stub.requests
    sent(capture, 0)


def test_stream_helper_http_error(tracked: Any, client: Any, capture: Any, stub: AnthropicStub) -> None:
    stub.enqueue(error_reply(529, "Overloaded", "overloaded_error"))
    with pytest.raises(anthropic.APIStatusError) as raised, client.messages.stream(**ARGS):
        pass
    assert raised.value.status_code == 529
    (p,) = props(capture)
    assert (p["http_status"], p["api"]) == (529, "messages.stream")
    assert p["error_type"] == type(raised.value).__name__
    assert p["request_id"] == raised.value.response.headers["request-id"]


def test_http_error_is_recorded_and_reraised_unchanged(
    tracked: Any, client: Any, capture: Any, stub: AnthropicStub
) -> None:
    stub.enqueue(error_reply(404, "model: nope", "not_found_error"))
    with pytest.raises(anthropic.NotFoundError) as raised:
        client.messages.create(**{**ARGS, "model": "nope"})
    assert raised.traceback[-1].name != "wrapper", "the SDK's frame stays the innermost"
    (p,) = props(capture)
    assert (p["error_type"], p["http_status"], p["model"]) == ("NotFoundError", 404, "nope")
    assert "model: nope" in p["error"]
    assert p["request_id"] == raised.value.response.headers["request-id"]


def test_error_message_with_key_is_scrubbed(
    tracked: Any, client: Any, capture: Any, stub: AnthropicStub
) -> None:
    stub.enqueue(error_reply(401, f"invalid x-api-key: {ANTHROPIC_KEY}", "authentication_error"))
    with pytest.raises(anthropic.AuthenticationError):
        client.messages.create(**ARGS)
    (p,) = props(capture)
    assert "[REDACTED]" in p["error"]


def test_with_raw_response(tracked: Any, client: Any, capture: Any) -> None:
    raw = client.messages.with_raw_response.create(**ARGS)
    assert raw.parse().content[0].text == STUB_TEXT
    (p,) = props(capture)
    assert (p["api"], p["input_tokens"], p["response_preview"]) == (
        "messages.create",
        ALL_INPUT_TOKENS,
        STUB_TEXT,
    )
    assert p["request_id"] == raw.headers["request-id"]


def test_with_raw_response_stream(tracked: Any, client: Any, capture: Any) -> None:
    stream = client.messages.with_raw_response.create(**ARGS, stream=True).parse()
    assert isinstance(stream, anthropic.Stream)
    assert [e.delta.text for e in stream if e.type == "content_block_delta"] == list(STUB_PIECES)
    (p,) = props(capture)
    assert (p["stream"], p["stream_completed"], p["response_preview"]) == (True, True, STUB_TEXT)
    assert p["output_tokens"] == OUTPUT_TOKENS


def test_with_streaming_response(tracked: Any, client: Any, capture: Any) -> None:
    with client.messages.with_streaming_response.create(**ARGS) as response:
        assert response.parse().content[0].text == STUB_TEXT
    with client.messages.with_streaming_response.create(**ARGS, stream=True) as response:
        text = "".join(e.delta.text for e in response.parse() if e.type == "content_block_delta")
    assert text == STUB_TEXT
    first, second = props(capture, 2)
    assert (first["stream"], first["input_tokens"], first["response_preview"]) == (
        False,
        ALL_INPUT_TOKENS,
        STUB_TEXT,
    )
    assert (second["stream"], second["output_tokens"], second["response_preview"]) == (
        True,
        OUTPUT_TOKENS,
        STUB_TEXT,
    )


def test_beta_messages(tracked: Any, client: Any, capture: Any) -> None:
    if not hasattr(getattr(client, "beta", None), "messages"):
        pytest.skip(f"anthropic {anthropic.__version__} has no client.beta.messages")
    client.beta.messages.create(**ARGS)
    for _ in client.beta.messages.create(**ARGS, stream=True):
        pass
    calls = 2
    if hasattr(client.beta.messages, "stream"):  # anthropic >= 0.4x
        with client.beta.messages.stream(**ARGS) as stream:
            stream.until_done()
        calls += 1
    events = props(capture, calls)
    assert [p["api"] for p in events] == ["beta.messages.create"] * 2 + ["beta.messages.stream"] * (calls - 2)
    assert {p["input_tokens"] for p in events} == {ALL_INPUT_TOKENS}
    assert {p["response_preview"] for p in events} == {STUB_TEXT}


def test_parse(tracked: Any, client: Any, capture: Any) -> None:
    if not hasattr(client.messages, "parse"):
        pytest.skip(f"anthropic {anthropic.__version__} has no messages.parse()")
    assert client.messages.parse(**ARGS).content[0].text == STUB_TEXT
    (p,) = props(capture)
    assert (p["api"], p["input_tokens"]) == ("messages.parse", ALL_INPUT_TOKENS)


def test_vertex_client(tracked: Any, capture: Any, stub: AnthropicStub) -> None:
    """Vertex shares the first-party classes, except `beta.messages`, which copies them."""
    with anthropic.AnthropicVertex(
        region="us-east5", project_id="proj", access_token=VERTEX_TOKEN, base_url=stub.base_url, max_retries=0
    ) as vertex:
        stub.enqueue(error_reply(401, f"Invalid token {VERTEX_TOKEN}", "authentication_error"))
        with pytest.raises(anthropic.AuthenticationError):
            vertex.messages.create(**ARGS)
        for _ in vertex.messages.create(**ARGS, stream=True):
            pass
        apis = ["messages.create"] * 2
        if hasattr(vertex, "beta"):  # anthropic >= 0.4x
            vertex.beta.messages.create(**ARGS)
            apis.append("beta.messages.create")
    assert stub.requests[0].path.endswith(f"/models/{MODEL}:rawPredict")
    events = props(capture, len(apis))
    assert [p["api"] for p in events] == apis
    assert "[REDACTED]" in events[0]["error"]
    assert [p.get("model") for p in events] == [MODEL, *[DATED_MODEL] * (len(apis) - 1)]
    assert events[1]["stream"] is True and events[1]["output_tokens"] == OUTPUT_TOKENS


def test_bedrock_client(tracked: Any, capture: Any, stub: AnthropicStub) -> None:
    if not accepts(anthropic.AnthropicBedrock, "api_key"):
        pytest.skip(f"anthropic {anthropic.__version__}: Bedrock takes AWS credentials only (needs boto3)")
    with anthropic.AnthropicBedrock(
        api_key=BEDROCK_KEY, aws_region="us-east-1", base_url=stub.base_url, max_retries=0
    ) as bedrock:
        bedrock.messages.create(**ARGS)
        bedrock.beta.messages.create(**ARGS)
        stub.enqueue(error_reply(403, f"Bad key {BEDROCK_KEY}", "permission_error"))
        with pytest.raises(anthropic.PermissionDeniedError):
            bedrock.messages.create(**ARGS)
    assert stub.requests[0].path == f"/model/{MODEL}/invoke"
    events = props(capture, 3)
    assert [p["api"] for p in events] == ["messages.create", "beta.messages.create", "messages.create"]
    assert events[0]["input_tokens"] == ALL_INPUT_TOKENS
    assert "[REDACTED]" in events[2]["error"]


def test_platform_beta_classes_are_patched_once() -> None:
    """Bedrock and Vertex copy `create` & co. into their own beta classes at import: those
    copies are wrapped, each once (a second wrapper would track every call twice)."""
    bedrock = pytest.importorskip("anthropic.lib.bedrock._beta_messages")
    vertex = pytest.importorskip("anthropic.lib.vertex._beta_messages")
    for cls in (bedrock.Messages, bedrock.AsyncMessages, vertex.Messages, vertex.AsyncMessages):
        for name in ("create", "parse", "stream"):
            wrapper = vars(cls).get(name)
            if wrapper is not None:
                switch = tracking_switch(wrapper)
                assert switch is not None, f"{cls.__module__}.{cls.__name__}.{name}"
                assert tracking_switch(switch.original) is None


def test_loading_the_provider_again_changes_nothing(tracked: Any, client: Any, capture: Any) -> None:
    _instrument._load_provider(ENTRY, anthropic)
    client.messages.create(**ARGS)
    sent(capture, 1)


def test_untracked_calls_get_the_sdk_objects(client: Any, capture: Any) -> None:
    stream = client.messages.create(**ARGS, stream=True)
    assert type(stream) is anthropic.Stream
    stream.close()
    assert type(client.messages.stream(**ARGS)).__name__ == "MessageStreamManager"
    sent(capture, 0)


async def test_async_create_and_stream(tracked: Any, async_client: Any, capture: Any) -> None:
    message = await async_client.messages.create(**ARGS)
    assert message.content[0].text == STUB_TEXT
    stream = await async_client.messages.create(**ARGS, stream=True)
    assert isinstance(stream, anthropic.AsyncStream)
    async with stream:
        texts = [e.delta.text async for e in stream if e.type == "content_block_delta"]
    assert texts == list(STUB_PIECES)
    first, second = props(capture, 2)
    assert first["stream"] is False and first["input_tokens"] == ALL_INPUT_TOKENS
    assert (second["stream"], second["stream_completed"]) == (True, True)
    assert (second["output_tokens"], second["response_preview"]) == (OUTPUT_TOKENS, STUB_TEXT)


async def test_async_stream_helper_and_raw(tracked: Any, async_client: Any, capture: Any) -> None:
    async with async_client.messages.stream(**ARGS) as stream:
        text = "".join([piece async for piece in stream.text_stream])
        final = await stream.get_final_message()
    assert text == STUB_TEXT == final.content[0].text
    async with async_client.messages.stream(**ARGS) as stream:
        await stream.__anext__()
    raw = await async_client.messages.with_raw_response.create(**ARGS)
    assert raw.headers["request-id"]
    async with async_client.messages.with_streaming_response.create(**ARGS, stream=True) as response:
        pieces = [e async for e in await response.parse() if e.type == "content_block_delta"]
    assert len(pieces) == len(STUB_PIECES)
    events = props(capture, 4)
    assert [p["api"] for p in events] == ["messages.stream"] * 2 + ["messages.create"] * 2
    assert [p["stream_completed"] for p in events if p["stream"]] == [True, False, True]
    assert all(p["input_tokens"] == ALL_INPUT_TOKENS for p in events)
    assert events[2]["request_id"] == raw.headers["request-id"]


async def test_async_errors(tracked: Any, async_client: Any, capture: Any, stub: AnthropicStub) -> None:
    stub.enqueue(error_reply(500, "boom", "api_error"))
    with pytest.raises(anthropic.InternalServerError):
        await async_client.messages.create(**ARGS)
    stub.enqueue(Reply(sse=[*message_events(dict(ARGS))[:2], error_event("Overloaded")]))
    stream = await async_client.messages.create(**ARGS, stream=True)
    with pytest.raises(anthropic.APIError):
        async for _ in stream:
            pass
    http_error, stream_error = props(capture, 2)
    assert (http_error["http_status"], http_error["error_type"]) == (500, "InternalServerError")
    assert stream_error["stream"] is True and "Overloaded" in stream_error["error"]
