"""Provider-side faults, fuzzed response shapes and injected bugs of ours.

Each call runs twice against the same canned answer, untracked then tracked: the app
must see the same result (or the same exception), and the tracked run must deliver
exactly one event saying what can be known.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import socket
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import pydantic
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import amplitude.ai
from amplitude.ai import _dispatch, _event, _log
from anthropic_stub import AnthropicStub, message_events
from conftest import openai_options, openai_v1, sent
from loopback import (
    COMPLETION_TOKENS,
    MODEL_SUFFIX,
    PROMPT_TOKENS,
    SSE_DONE,
    STUB_PIECES,
    STUB_TEXT,
    TOTAL_TOKENS,
    AmplitudeCapture,
    OpenAIStub,
    ProviderStub,
    Reply,
    format_sse,
)

openai = openai_v1()
anthropic = pytest.importorskip("anthropic")

ANTHROPIC_KEY = "sk-ant-api03-faults-DO-NOT-LEAK-0123456789"
MESSAGES = [{"role": "user", "content": "Say hello. SECRET-PROMPT-CONTENT"}]
OPENAI_MODEL = "gpt-4o"
ANTHROPIC_MODEL = "claude-haiku-4-5"
# Long enough for a loaded CI machine; the timeout case sets its own, far shorter.
CALL_TIMEOUT_S = 20.0
READ_TIMEOUT_S = 0.3
LOGGER = "amplitude.ai"


@pytest.fixture(autouse=True)
def _instrumented() -> None:
    """Patched again if a test elsewhere uninstrumented."""
    amplitude.ai.instrument()


# -- canned answers: fixed ids, so both runs get byte-identical bodies ----------------


@dataclass(frozen=True)
class Wire:
    """One provider's canned answers, and how it names the model in them."""

    body: dict[str, Any]
    blocks: list[str]
    bad_block: str
    model: str


def _openai_chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fault",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": OPENAI_MODEL + MODEL_SUFFIX,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }


OPENAI_WIRE = Wire(
    body={
        "id": "chatcmpl-fault",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": OPENAI_MODEL + MODEL_SUFFIX,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": STUB_TEXT, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": PROMPT_TOKENS,
            "completion_tokens": COMPLETION_TOKENS,
            "total_tokens": TOTAL_TOKENS,
        },
    },
    blocks=[
        format_sse(_openai_chunk({"role": "assistant", "content": ""})),
        *(format_sse(_openai_chunk({"content": piece})) for piece in STUB_PIECES),
        format_sse(_openai_chunk({}, "stop")),
        SSE_DONE,
    ],
    bad_block='data: {"id": "chatcmpl-fault", "choices": [\n\n',
    model=OPENAI_MODEL + MODEL_SUFFIX,
)

ANTHROPIC_WIRE = Wire(
    body={
        "id": "msg_fault",
        "type": "message",
        "role": "assistant",
        "model": ANTHROPIC_MODEL + "-20251001",
        "content": [{"type": "text", "text": STUB_TEXT}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": PROMPT_TOKENS, "output_tokens": COMPLETION_TOKENS},
    },
    # Built once: both runs of a case replay the same ids.
    blocks=message_events({"messages": MESSAGES}, ANTHROPIC_MODEL + "-20251001"),
    bad_block=format_sse(
        '{"type": "content_block_delta", "index": 0, "delta": {', event="content_block_delta"
    ),
    model=ANTHROPIC_MODEL + "-20251001",
)


# -- the app's view of one call ---------------------------------------------------------


@dataclass
class Outcome:
    """What the app saw: the result's class and content, or the exception it got."""

    cls: type
    value: Any = None
    chunks: list[Any] = field(default_factory=list)
    error: str | None = None
    status: int | None = None

    @property
    def raised(self) -> bool:
        return self.error is not None


def dump(obj: Any) -> Any:
    """An SDK object as plain data; the SDKs build models from bad bodies without
    validating them, and serialising such a model warns about every misfit."""
    if not hasattr(obj, "model_dump"):
        return obj
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return obj.model_dump()


def failed(exc: Exception, chunks: list[Any]) -> Outcome:
    return Outcome(type(exc), chunks=chunks, error=str(exc), status=getattr(exc, "status_code", None))


def settle(run: Callable[[], Any], stream: bool) -> Outcome:
    chunks: list[Any] = []
    try:
        result = run()
        if not stream:
            # `type()`, not `__class__`: a non-streamed result is handed back unwrapped.
            return Outcome(type(result), dump(result))
        cls = result.__class__
        for chunk in result:
            chunks.append(dump(chunk))
        return Outcome(cls, chunks=chunks)
    except Exception as exc:
        return failed(exc, chunks)


async def asettle(run: Callable[[], Any], stream: bool) -> Outcome:
    chunks: list[Any] = []
    try:
        result = await run()
        if not stream:
            return Outcome(type(result), dump(result))
        cls = result.__class__
        async for chunk in result:
            chunks.append(dump(chunk))
        return Outcome(cls, chunks=chunks)
    except Exception as exc:
        return failed(exc, chunks)


@dataclass(frozen=True)
class Surface:
    """One way the app calls a provider: which SDK method, sync or async, streamed or not."""

    name: str
    provider: str
    api: str
    is_async: bool
    stream: bool

    @property
    def wire(self) -> Wire:
        return OPENAI_WIRE if self.provider == "openai" else ANTHROPIC_WIRE

    @property
    def model(self) -> str:
        return OPENAI_MODEL if self.provider == "openai" else ANTHROPIC_MODEL

    def stub(self) -> ProviderStub:
        return OpenAIStub() if self.provider == "openai" else AnthropicStub()

    def call(
        self, stub: ProviderStub, base_url: str | None = None, timeout: float = CALL_TIMEOUT_S
    ) -> Outcome:
        """Make the call through a fresh client of the SDK; `base_url` overrides the stub's."""
        if self.provider == "openai":
            options = openai_options(stub)
            kwargs: dict[str, Any] = {"model": self.model, "messages": MESSAGES}
            sdk_sync, sdk_async = openai.OpenAI, openai.AsyncOpenAI
        else:
            options = {"api_key": ANTHROPIC_KEY, "base_url": stub.base_url, "max_retries": 0}
            kwargs = {"model": self.model, "max_tokens": 50, "messages": MESSAGES}
            sdk_sync, sdk_async = anthropic.Anthropic, anthropic.AsyncAnthropic
        options.update(timeout=timeout, base_url=base_url or options["base_url"])
        if self.stream:
            kwargs["stream"] = True
        if not self.is_async:
            with sdk_sync(**options) as client:
                return settle(lambda: create(client, self.provider)(**kwargs), self.stream)

        async def main() -> Outcome:
            async with sdk_async(**options) as client:
                return await asettle(lambda: create(client, self.provider)(**kwargs), self.stream)

        return asyncio.run(main())


def create(client: Any, provider: str) -> Callable[..., Any]:
    return client.chat.completions.create if provider == "openai" else client.messages.create


SURFACES = [
    Surface("openai", "openai", "chat.completions.create", is_async=False, stream=False),
    Surface("openai-async", "openai", "chat.completions.create", is_async=True, stream=False),
    Surface("openai-stream", "openai", "chat.completions.create", is_async=False, stream=True),
    Surface("openai-async-stream", "openai", "chat.completions.create", is_async=True, stream=True),
    Surface("anthropic", "anthropic", "messages.create", is_async=False, stream=False),
    Surface("anthropic-stream", "anthropic", "messages.create", is_async=False, stream=True),
]
OPENAI_SYNC, _, OPENAI_STREAM, *_ = SURFACES


def dead_url() -> str:
    """A loopback URL nothing listens on: connecting is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def twice(
    surface: Surface, stub: ProviderStub, amp: Any, reply: Reply | None, timeout: float = CALL_TIMEOUT_S
) -> tuple[Outcome, Outcome]:
    """The same call against the same answer, untracked then tracked (`reply` None: no server)."""
    base_url = None if reply is not None else dead_url()
    outcomes = []
    for scope in (contextlib.nullcontext(), amplitude.ai.tracking(amp)):
        if reply is not None:
            stub.enqueue(reply)
        with scope:
            outcomes.append(surface.call(stub, base_url, timeout))
    untracked, tracked = outcomes
    assert tracked == untracked, "tracking changed what the app sees"
    return untracked, tracked


def failures(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Failures of ours reported by `_log.report_failure` (at WARNING or DEBUG)."""
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and " failed" in r.getMessage()]


def check_event(p: dict[str, Any], surface: Surface, outcome: Outcome, model: str) -> None:
    assert (p["provider"], p["api"], p["operation"]) == (surface.provider, surface.api, "chat_completion")
    assert p["model"] == model
    assert p["stream"] is surface.stream
    if surface.stream:
        assert p["stream_completed"] is not outcome.raised
    if outcome.raised:
        assert p["error_type"] == outcome.cls.__name__
        assert p["error"]
        assert p.get("http_status") == outcome.status
    else:
        assert "error_type" not in p and "http_status" not in p


# -- 1. provider faults, differentially -------------------------------------------------

JSON = {"content-type": "application/json"}
STATUSES = (400, 401, 404, 429, 500, 503)


@dataclass(frozen=True)
class Fault:
    """A provider answer (None: no server at all) and whether its model reaches the app."""

    name: str
    reply: Callable[[Wire, bool], Reply | None]
    answers: bool = False
    timeout: float = CALL_TIMEOUT_S
    streams_only: bool = False


def answer(wire: Wire, stream: bool) -> Reply:
    return Reply(sse=wire.blocks) if stream else Reply(json=wire.body)


def _status(status: int, json_body: bool) -> Callable[[Wire, bool], Reply]:
    # A bodyless error reply gets the provider's JSON error body from the stub.
    if json_body:
        return lambda wire, stream: Reply(status=status)
    return lambda wire, stream: Reply(
        status=status, raw=b"<html>upstream unavailable</html>", headers={"content-type": "text/html"}
    )


def _cut(wire: Wire, stream: bool) -> Reply:
    # Chunked framing without its last chunk: the connection drops inside a JSON body.
    text = json.dumps(wire.body)
    return Reply(sse=[text[:40], text[40:]], truncate_after=1, headers=JSON)


FAULTS = [
    Fault("ok", answer, answers=True),
    *(Fault(f"http-{s}-json", _status(s, json_body=True)) for s in STATUSES),
    *(Fault(f"http-{s}-html", _status(s, json_body=False)) for s in STATUSES),
    Fault(
        "read-timeout",
        lambda wire, stream: Reply(**{**vars(answer(wire, stream)), "delay": 30.0}),
        timeout=READ_TIMEOUT_S,
    ),
    Fault("connection-refused", lambda wire, stream: None),
    Fault("dropped-mid-body", _cut),
    Fault(
        "malformed-json",
        lambda wire, stream: Reply(raw=json.dumps(wire.body)[:-15].encode(), headers=JSON),
    ),
    Fault(
        "non-json-content-type",
        lambda wire, stream: Reply(raw=b"<html>Hello</html>", headers={"content-type": "text/html"}),
    ),
    Fault("truncated-sse", lambda wire, stream: Reply(sse=wire.blocks, truncate_after=3), streams_only=True),
    Fault(
        "malformed-sse-event",
        lambda wire, stream: Reply(sse=[wire.blocks[0], wire.bad_block, *wire.blocks[1:]]),
        streams_only=True,
    ),
]


# The HTTP errors share one test per surface: a test's own setup costs more than a call.
FAULT_GROUPS = [[fault] for fault in FAULTS if not fault.name.startswith("http-")]
FAULT_GROUPS.append([fault for fault in FAULTS if fault.name.startswith("http-")])


@pytest.mark.parametrize(
    ("surface", "faults"),
    [
        pytest.param(
            surface, faults, id=f"{surface.name}-{faults[0].name if len(faults) == 1 else 'http-errors'}"
        )
        for surface in SURFACES
        for faults in FAULT_GROUPS
        if surface.stream or not faults[0].streams_only
    ],
)
def test_app_sees_what_it_would_untracked(
    surface: Surface,
    faults: list[Fault],
    amp: Any,
    capture: AmplitudeCapture,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    with surface.stub() as stub:
        for count, fault in enumerate(faults, start=1):
            _, outcome = twice(surface, stub, amp, fault.reply(surface.wire, surface.stream), fault.timeout)
            if fault.answers:
                assert not outcome.raised
            event = sent(capture, count)[-1]
            model = surface.wire.model if fault.answers else surface.model
            check_event(event["event_properties"], surface, outcome, model)
    assert failures(caplog) == []


# -- 2. fuzzed response shapes ----------------------------------------------------------

# Serialisable JSON only: NaN would compare unequal to itself in the differential check.
JUNK = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
COUNT = st.integers(-(2**70), 2**70) | st.integers(0, 100) | JUNK
USAGE = JUNK | st.fixed_dictionaries(
    {},
    optional={
        "prompt_tokens": COUNT,
        "completion_tokens": COUNT,
        "total_tokens": COUNT,
        "prompt_tokens_details": JUNK | st.fixed_dictionaries({}, optional={"cached_tokens": COUNT}),
        "completion_tokens_details": JUNK | st.fixed_dictionaries({}, optional={"reasoning_tokens": COUNT}),
    },
)
MODEL = st.text(max_size=12) | st.integers() | st.none()
CONTENT = st.none() | st.text(max_size=12) | st.integers() | st.lists(JUNK, max_size=3)
FINISH = st.sampled_from(["stop", "length", "tool_calls"]) | JUNK
MESSAGE = JUNK | st.fixed_dictionaries(
    {}, optional={"role": st.just("assistant") | JUNK, "content": CONTENT, "tool_calls": JUNK}
)
CHOICE = JUNK | st.fixed_dictionaries(
    {}, optional={"index": st.integers(0, 2) | JUNK, "message": MESSAGE, "finish_reason": FINISH}
)
CHAT_BODY = st.fixed_dictionaries(
    {"id": st.just("chatcmpl-fuzz"), "object": st.just("chat.completion"), "created": st.just(1)},
    optional={"model": MODEL, "choices": st.lists(CHOICE, max_size=3) | JUNK, "usage": USAGE},
)
DELTA = JUNK | st.fixed_dictionaries(
    {},
    optional={
        "role": st.just("assistant") | JUNK,
        "content": CONTENT,
        "tool_calls": st.lists(st.fixed_dictionaries({"index": st.integers(0, 2)}) | JUNK, max_size=2) | JUNK,
    },
)
CHUNK_CHOICE = st.fixed_dictionaries(
    {"index": st.integers(0, 1) | JUNK, "delta": DELTA}, optional={"finish_reason": FINISH}
)
CHUNK = st.fixed_dictionaries(
    {
        "id": st.just("chatcmpl-fuzz"),
        "object": st.just("chat.completion.chunk"),
        "created": st.just(1),
        "model": MODEL,
        "choices": st.just([]) | st.lists(CHUNK_CHOICE, min_size=1, max_size=2) | JUNK,
    },
    optional={"usage": USAGE},
)


def with_usage_chunk(drawn: tuple[list[dict[str, Any]], Any]) -> list[dict[str, Any]]:
    chunks, usage = drawn
    return chunks if usage is None else [*chunks, {**_openai_chunk({}), "choices": [], "usage": usage}]


# Usage on no chunk, on some, or (as the real API sends it) on a last chunk without choices.
CHUNKS = st.tuples(st.lists(CHUNK, max_size=5), st.none() | USAGE).map(with_usage_chunk)
FUZZ = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    # The servers and the Amplitude client are shared by the examples on purpose: each
    # example checks the events it added.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


USAGE_NAMES = {
    "input_tokens": "prompt_tokens",
    "output_tokens": "completion_tokens",
    "total_tokens": "total_tokens",
}


def known_usage(usage: Any) -> dict[str, Any]:
    """The token properties an event must carry for `usage` as the provider sent it."""
    if not isinstance(usage, dict):
        return {}
    names = {
        "input_tokens": "prompt_tokens",
        "output_tokens": "completion_tokens",
        "total_tokens": "total_tokens",
    }
    return {
        prop: count(usage.get(name)) for prop, name in names.items() if count(usage.get(name)) is not None
    }


def fuzz_once(
    surface: Surface, stub: ProviderStub, amp: Any, capture: AmplitudeCapture, reply: Reply
) -> tuple[Outcome, dict[str, Any]]:
    """One example: the differential check, then exactly one new event."""
    before = len(capture.events)
    _, outcome = twice(surface, stub, amp, reply)
    return outcome, sent(capture, before + 1)[-1]["event_properties"]


def check_tokens(p: dict[str, Any], usage: Any) -> None:
    expected = known_usage(usage)
    assert {
        name: p[name] for name in ("input_tokens", "output_tokens", "total_tokens") if name in p
    } == expected


@FUZZ
@given(body=CHAT_BODY)
def test_fuzzed_chat_bodies(
    body: dict[str, Any],
    stub: OpenAIStub,
    amp: Any,
    capture: AmplitudeCapture,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    caplog.clear()
    outcome, p = fuzz_once(OPENAI_SYNC, stub, amp, capture, Reply(json=body))
    model = body.get("model")
    check_event(p, OPENAI_SYNC, outcome, model if isinstance(model, str) and model else OPENAI_MODEL)
    if not outcome.raised:
        check_tokens(p, body.get("usage"))
    assert failures(caplog) == []


COMPLETION_CHOICE = JUNK | st.fixed_dictionaries(
    {}, optional={"index": st.integers(0, 2) | JUNK, "text": CONTENT, "finish_reason": FINISH}
)
COMPLETION_BODY = st.fixed_dictionaries(
    {"id": st.just("cmpl-fuzz"), "object": st.just("text_completion"), "created": st.just(1)},
    optional={"model": MODEL, "choices": st.lists(COMPLETION_CHOICE, max_size=3) | JUNK, "usage": USAGE},
)
# Fields the SDK's usage models do not declare, some of which `_read_usage` also reads.
USAGE_EXTRAS = st.fixed_dictionaries(
    {},
    optional={
        "prompt_tokens": COUNT,
        "completion_tokens": COUNT,
        "input_tokens": COUNT,
        "output_tokens": COUNT,
        "input_tokens_details": JUNK | st.fixed_dictionaries({}, optional={"cached_tokens": COUNT}),
        "output_tokens_details": JUNK | st.fixed_dictionaries({}, optional={"reasoning_tokens": COUNT}),
    },
)
EMBEDDING_BODY = st.fixed_dictionaries(
    {"object": st.just("list"), "data": st.just([])}, optional={"model": MODEL, "usage": USAGE}
)


@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(
    case=st.one_of(
        st.tuples(st.just("chat_completion"), CHAT_BODY),
        st.tuples(st.just("completion"), COMPLETION_BODY),
        st.tuples(st.just("embedding"), EMBEDDING_BODY),
    ),
    data=st.data(),
)
def test_response_read_on_the_path_reads_as_the_whole_response(
    case: tuple[str, dict[str, Any]], data: st.DataObject
) -> None:
    """What a finished call reads of a parsed response on the caller's path (and keeps
    instead of it) gives the event exactly what the whole response would (read off the
    path), whatever the server sent; only what it cannot read alike is kept whole."""
    from amplitude.ai._providers.openai import _read_body, _read_parsed, _read_values

    operation, body = case
    if isinstance(body.get("usage"), dict) and data.draw(st.booleans()):
        body = {**body, "usage": {**body["usage"], **data.draw(USAGE_EXTRAS)}}
    model_class = {
        "chat_completion": openai.types.chat.ChatCompletion,
        "completion": openai.types.Completion,
        "embedding": openai.types.CreateEmbeddingResponse,
    }[operation]
    # As the SDK builds a response model from the body: no validation, nested models too.
    response = model_class.construct(**body)
    read = _read_parsed(response, operation)
    # Kept whole only for choices lacking what is read of them (and for embeddings holding
    # fields their class does not declare: none here).
    assert (read is not None) == _choices_read_on_the_path(operation, response.__dict__.get("choices"))
    if read is None:
        return
    read_properties: dict[str, Any] = {}
    _read_values(read, read_properties)
    assert read_properties.pop("request_id") is None  # a body's fields never set it
    whole: dict[str, Any] = {}
    _read_body(response, operation, whole)
    assert _known(read_properties) == _known(whole)
    assert_untracked_when_plain(read)


def assert_untracked_when_plain(read: tuple[Any, ...]) -> None:
    """What a finished call keeps, when it holds plain values only (strings, ints, None):
    nothing the garbage collector keeps walking."""
    if all(value is None or type(value) in (str, int) for value in read):
        gc.collect()
        assert not gc.is_tracked(read), "plain values: nothing the garbage collector keeps walking"


def _known(properties: dict[str, Any]) -> dict[str, Any]:
    """The properties that have a value (an event drops the others)."""
    return {name: value for name, value in properties.items() if value is not None}


def _choices_read_on_the_path(operation: str, choices: Any) -> bool:
    """Whether `_read_parsed` reads a response's choices itself: what it reads of each is
    there (how the SDK builds a choice the body leaves fields out of depends on its version)."""
    if operation == "embedding" or not isinstance(choices, list) or not choices:
        return True
    first = choices[0]
    if operation == "completion":
        return hasattr(first, "finish_reason") and hasattr(first, "text")
    return (
        hasattr(first, "finish_reason")
        and all(hasattr(choice, "message") for choice in choices)
        and hasattr(first.message, "content")
    )


ANTHROPIC_USAGE = JUNK | st.fixed_dictionaries(
    {},
    optional={
        "input_tokens": COUNT,
        "output_tokens": COUNT,
        "cache_read_input_tokens": COUNT,
        "cache_creation_input_tokens": COUNT,
        "output_tokens_details": JUNK | st.fixed_dictionaries({}, optional={"thinking_tokens": COUNT}),
        "undeclared": COUNT,
    },
)
BLOCK = JUNK | st.fixed_dictionaries(
    {"type": st.sampled_from(["text", "tool_use", "server_tool_use", "thinking"]) | JUNK},
    optional={"text": CONTENT, "id": st.just("toolu_1"), "name": st.just("f"), "input": JUNK},
)
MESSAGE_BODY = st.fixed_dictionaries(
    {"id": st.just("msg_fuzz"), "type": st.just("message"), "role": st.just("assistant")},
    optional={
        "model": MODEL,
        "content": st.lists(BLOCK, max_size=3) | JUNK,
        "stop_reason": FINISH,
        "usage": ANTHROPIC_USAGE,
    },
)


@settings(max_examples=100, deadline=None, derandomize=True, database=None)
@given(body=MESSAGE_BODY)
def test_message_read_on_the_path_reads_as_the_whole_message(body: dict[str, Any]) -> None:
    """`test_response_read_on_the_path_reads_as_the_whole_response`, for Anthropic messages
    (usages holding a field their class does not declare included); kept whole only for a
    usage that is no model."""
    from amplitude.ai._providers.anthropic import _read_body, _read_parsed, _read_values

    # As the SDK builds a message model from the body: no validation, nested models too.
    message = anthropic.types.Message.construct(**body)
    read = _read_parsed(message)
    usage = message.__dict__.get("usage")
    assert (read is None) == (usage is not None and not isinstance(usage, pydantic.BaseModel))
    if read is None:
        return
    read_properties: dict[str, Any] = {"model": None}
    _read_values(read, read_properties)
    assert read_properties.pop("request_id") is None  # a body's fields never set it
    whole: dict[str, Any] = {"model": None}
    _read_body(message, whole)
    assert read_properties == whole
    assert_untracked_when_plain(read)


@FUZZ
@given(chunks=CHUNKS)
def test_fuzzed_chat_streams(
    chunks: list[dict[str, Any]],
    stub: OpenAIStub,
    amp: Any,
    capture: AmplitudeCapture,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    caplog.clear()
    reply = Reply(sse=[*map(format_sse, chunks), SSE_DONE])
    outcome, p = fuzz_once(OPENAI_STREAM, stub, amp, capture, reply)
    # A chunk of a shape the fold cannot read stops folding (by design): the event then
    # has what the core knows; otherwise what the chunks said (first model, last usage).
    unread = [m for m in failures(caplog) if "stream chunk" in m]
    assert failures(caplog) == unread
    model = next((chunk["model"] for chunk in chunks if chunk["model"]), None)
    usage = next((chunk["usage"] for chunk in reversed(chunks) if chunk.get("usage") is not None), None)
    if unread:
        model = p["model"]
    check_event(p, OPENAI_STREAM, outcome, model if isinstance(model, str) else OPENAI_MODEL)
    if not outcome.raised and not unread:
        check_tokens(p, usage)


# -- 3. bugs of ours, injected ----------------------------------------------------------


class Injected(RuntimeError):
    pass


def _raise(*args: Any, **kwargs: Any) -> Any:
    raise Injected("injected bug")


# Where a bug is injected, and where `report_failure` says it happened.
INJECTIONS = {
    "build": ((_event, "build"), "building or sending an event"),
    "send": ((_event, "send"), "building or sending an event"),
    "core-properties": ((_event, "core_properties"), "building or sending an event"),
    "dispatch-handler": ((_dispatch.dispatcher, "_handle"), "building or sending an event"),
    "submit": ((_dispatch, "submit"), "queueing an event"),
}


@pytest.mark.parametrize("site", list(INJECTIONS))
def test_injected_bug_leaves_the_app_unaffected_and_is_logged_once(
    site: str,
    stub: OpenAIStub,
    amp: Any,
    capture: AmplitudeCapture,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (target, name), where = INJECTIONS[site]
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    monkeypatch.setattr(_log, "_reported", set())  # as in a fresh process
    with monkeypatch.context() as fault:
        fault.setattr(target, name, _raise)
        for surface in (OPENAI_SYNC, OPENAI_STREAM, OPENAI_SYNC):
            twice(surface, stub, amp, answer(OPENAI_WIRE, surface.stream))
        amplitude.ai.flush()
    assert capture.events == []
    reports = [r for r in caplog.records if r.name == LOGGER and where in r.getMessage()]
    # Once at WARNING, then at DEBUG: a persistent bug must not flood the app's logs.
    assert [r.levelno for r in reports] == [logging.WARNING] + [logging.DEBUG] * 2
    assert "the LLM call itself is unaffected" in reports[0].getMessage()
    # The bug gone, events flow again.
    _, outcome = twice(OPENAI_STREAM, stub, amp, answer(OPENAI_WIRE, stream=True))
    (event,) = sent(capture, 1)
    check_event(event["event_properties"], OPENAI_STREAM, outcome, OPENAI_WIRE.model)


@pytest.mark.parametrize("error", [Injected, SystemExit])
def test_a_bug_on_one_call_costs_no_other_event(
    error: type[BaseException],
    stub: OpenAIStub,
    amp: Any,
    capture: AmplitudeCapture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Calls are built in batches on the worker: one failing must not lose the rest, and
    nothing a provider's code raises (SystemExit included: a regression) ends the worker."""
    build = _event.build
    streamed: list[Any] = []

    def build_all_but_streams(call: Any) -> Any:
        if call.stream:
            streamed.append(call)
            raise error("injected bug")
        return build(call)

    monkeypatch.setattr(_event, "build", build_all_but_streams)
    with amplitude.ai.tracking(amp):
        for surface in (OPENAI_SYNC, OPENAI_STREAM, OPENAI_SYNC, OPENAI_STREAM, OPENAI_SYNC):
            stub.enqueue(answer(OPENAI_WIRE, surface.stream))
            assert not surface.call(stub).raised
    events = sent(capture, 3)
    assert len(streamed) == 2
    assert [e["event_properties"]["stream"] for e in events] == [False] * 3


def test_stream_delta_content_of_parts_keeps_what_is_known(
    stub: OpenAIStub, amp: Any, capture: AmplitudeCapture
) -> None:
    """Regression: a delta whose content is a list of parts (as some OpenAI-compatible
    servers send) broke the preview's join, and the event lost its model and usage."""
    parts = _openai_chunk({"content": [{"type": "text", "text": STUB_TEXT}]})
    usage = {
        "prompt_tokens": PROMPT_TOKENS,
        "completion_tokens": COMPLETION_TOKENS,
        "total_tokens": TOTAL_TOKENS,
    }
    chunks = with_usage_chunk(([parts], usage))
    outcome, p = fuzz_once(OPENAI_STREAM, stub, amp, capture, Reply(sse=[*map(format_sse, chunks), SSE_DONE]))
    check_event(p, OPENAI_STREAM, outcome, OPENAI_WIRE.model)
    check_tokens(p, usage)
