"""Real OpenAI exchanges, replayed through the real SDK: the events Amplitude receives.

Each cassette in ``../shared/cassettes/openai`` (vcrpy YAML recorded against the real API,
see that directory's README) is replayed interaction by interaction: the stub serves the
recorded response verbatim while the recorded request body is sent again through the SDK
method matching its URI. Every expected value is derived here from the recorded response
(or, for request-side properties, the recorded request); nothing is copied by hand.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Callable

import pytest

from amplitude.ai._versions import in_range
from conftest import has_resource, openai_v1, sent
from loopback import OpenAIStub, Reply

openai = openai_v1()
PARSED_REQUEST_IDS = in_range(openai.version.VERSION, ">=1.46")

CASSETTES = Path(__file__).resolve().parents[2] / "shared" / "cassettes" / "openai"
if not CASSETTES.is_dir():
    pytest.skip(f"recorded OpenAI cassettes not found at {CASSETTES}", allow_module_level=True)

yaml = pytest.importorskip("yaml", reason="pyyaml is needed to read the vcrpy cassettes")
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# The library documents the preview as the first 500 characters of generated text.
PREVIEW_CHARS = 500

# URI path -> (SDK resource path on the client, event `operation`, event `api`).
ENDPOINTS: dict[str, tuple[str, str, str]] = {
    "/v1/chat/completions": ("chat.completions", "chat_completion", "chat.completions.create"),
    "/v1/embeddings": ("embeddings", "embedding", "embeddings.create"),
    "/v1/responses": ("responses", "response", "responses.create"),
}

# The SDK's exception class per HTTP status (the ones cassettes may hold).
STATUS_ERRORS: dict[int, type[openai.APIStatusError]] = {
    400: openai.BadRequestError,
    401: openai.AuthenticationError,
    403: openai.PermissionDeniedError,
    404: openai.NotFoundError,
    409: openai.ConflictError,
    422: openai.UnprocessableEntityError,
    429: openai.RateLimitError,
}

# Request options of the SDK methods themselves, never request-body fields.
_SDK_OPTIONS = frozenset({"extra_headers", "extra_query", "extra_body", "timeout"})

# Scalar request parameters the event charts, by request field -> event property.
REQUEST_PARAMS: dict[str, str] = {
    "temperature": "temperature",
    "top_p": "top_p",
    "n": "n",
    "seed": "seed",
    "max_tokens": "max_tokens",
    "max_completion_tokens": "max_tokens",
    "max_output_tokens": "max_tokens",
    "service_tier": "service_tier",
    "dimensions": "dimensions",
    "encoding_format": "encoding_format",
}

# Request fields that carry prompt content; their text must never reach Amplitude.
_CONTENT_FIELDS = ("messages", "input", "instructions", "prompt")
# Structural keys inside those fields: their values are labels, not content.
_LABEL_KEYS = frozenset({"role", "type"})

# Cassettes that cannot be replayed meaningfully: stem -> precise reason. None today: every
# recorded request is accepted by the installed SDK as keyword arguments, and every recorded
# response is complete. Cassettes whose recording test misbehaved on the client side (e.g.
# test_responses_create_streaming_user_exception raised inside its loop, *_not_complete
# stopped reading early) still hold the full server response, so they replay as complete
# calls. A stem listed here that is absent is ignored.
SKIPPED: dict[str, str] = {}

TOKEN_PROPS = ("input_tokens", "output_tokens", "total_tokens", "cached_input_tokens", "reasoning_tokens")
DETAIL_PROPS = ("cached_input_tokens", "reasoning_tokens")


# -- reading cassettes ----------------------------------------------------------------------


@dataclass(frozen=True)
class Interaction:
    """One recorded request/response pair, with what the test derives from it."""

    uri_path: str
    request: dict[str, Any]
    status: int
    body: str
    content_type: str
    request_id: str | None

    @property
    def endpoint(self) -> tuple[str, str, str]:
        return ENDPOINTS[self.uri_path]

    @property
    def is_error(self) -> bool:
        return self.status >= 400

    @property
    def is_sse(self) -> bool:
        return self.content_type.split(";")[0].strip().lower() == "text/event-stream"

    @property
    def streamed(self) -> bool:
        return self.request.get("stream") is True


@dataclass
class Expected:
    """What the recorded response says about the call."""

    model: str | None = None
    usage: Mapping[str, Any] | None = None
    finish_reason: str | None = None
    text: str = ""
    tool_call_count: int | None = None
    # Token properties the response reports: event property -> value.
    tokens: dict[str, int] = field(default_factory=dict)


def _header(headers: Mapping[str, Any], name: str) -> str | None:
    for key, value in headers.items():
        if str(key).lower() == name:
            if isinstance(value, list):
                return str(value[0]) if value else None
            return str(value)
    return None


@cache
def load(path: Path) -> tuple[Interaction, ...]:
    with path.open(encoding="utf-8") as handle:
        cassette = yaml.load(handle, Loader=_LOADER)
    interactions = []
    for entry in cassette["interactions"]:
        request, response = entry["request"], entry["response"]
        uri_path = re.sub(r"^https?://[^/]+", "", request["uri"]).split("?")[0]
        raw_body = response["body"]["string"]
        body = raw_body.decode("utf-8") if isinstance(raw_body, bytes) else str(raw_body)
        content_type = _header(response["headers"], "content-type")
        if content_type is None:
            sse = body.lstrip().startswith(("data:", "event:"))
            content_type = "text/event-stream" if sse else "application/json"
        interactions.append(
            Interaction(
                uri_path=uri_path,
                request=json.loads(request["body"]),
                status=int(response["status"]["code"]),
                body=body,
                content_type=content_type,
                request_id=_header(response["headers"], "x-request-id"),
            )
        )
    return tuple(interactions)


def sse_payloads(text: str) -> list[dict[str, Any]]:
    """The JSON payloads of an SSE body, in order, without the ``[DONE]`` sentinel."""
    payloads = []
    for block in re.split(r"\r?\n\r?\n", text):
        lines = [line[5:] for line in block.splitlines() if line.startswith("data:")]
        data = "\n".join(line[1:] if line.startswith(" ") else line for line in lines)
        if data and data != "[DONE]":
            payloads.append(json.loads(data))
    return payloads


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _dig(obj: Any, *names: str) -> Any:
    for name in names:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(name)
    return obj


def _responses_final(interaction: Interaction) -> Mapping[str, Any]:
    if not interaction.is_sse:
        body: Mapping[str, Any] = json.loads(interaction.body)
        return body
    finals = [
        event["response"]
        for event in sse_payloads(interaction.body)
        if event.get("type") in ("response.completed", "response.incomplete", "response.failed")
    ]
    assert len(finals) == 1, "a complete Responses API stream ends with exactly one final event"
    return finals[0]  # type: ignore[no-any-return]


def _chat_expected(interaction: Interaction) -> Expected:
    if not interaction.is_sse:
        body = json.loads(interaction.body)
        choices = body.get("choices") or []
        first = choices[0] if choices else {}
        return Expected(
            model=body.get("model"),
            usage=body.get("usage"),
            finish_reason=first.get("finish_reason"),
            text=_dig(first, "message", "content") or "",
            tool_call_count=sum(len(_dig(c, "message", "tool_calls") or []) for c in choices),
        )
    chunks = sse_payloads(interaction.body)
    models = {chunk["model"] for chunk in chunks if chunk.get("model")}
    assert len(models) <= 1, f"one model per stream, got {models}"
    usages = [chunk["usage"] for chunk in chunks if chunk.get("usage")]
    finishes: list[str] = []
    pieces: list[str] = []
    tool_calls: set[tuple[Any, Any]] = set()
    for chunk in chunks:
        for choice in chunk.get("choices") or []:
            if choice.get("index") in (0, None):
                if choice.get("finish_reason"):
                    finishes.append(choice["finish_reason"])
                pieces.append(_dig(choice, "delta", "content") or "")
            for call in _dig(choice, "delta", "tool_calls") or []:
                tool_calls.add((choice.get("index"), call.get("index")))
    return Expected(
        model=next(iter(models), None),
        usage=usages[-1] if usages else None,
        finish_reason=finishes[0] if finishes else None,
        text="".join(pieces),
        tool_call_count=len(tool_calls),
    )


def _responses_expected(interaction: Interaction) -> Expected:
    final = _responses_final(interaction)
    output = final.get("output") or []
    texts = [
        part.get("text") or ""
        for item in output
        if item.get("type") == "message"
        for part in item.get("content") or []
        if part.get("type") == "output_text"
    ]
    return Expected(
        model=final.get("model"),
        usage=final.get("usage"),
        finish_reason=_dig(final, "incomplete_details", "reason") or final.get("status"),
        text="".join(texts),
        tool_call_count=sum(1 for item in output if str(item.get("type") or "").endswith("_call")),
    )


def expected(interaction: Interaction) -> Expected:
    """Everything the event should say about a successful call, from the recorded response."""
    operation = interaction.endpoint[1]
    if operation == "response":
        result = _responses_expected(interaction)
        paths = {
            "input_tokens": ("input_tokens",),
            "output_tokens": ("output_tokens",),
            "total_tokens": ("total_tokens",),
            "cached_input_tokens": ("input_tokens_details", "cached_tokens"),
            "reasoning_tokens": ("output_tokens_details", "reasoning_tokens"),
        }
    else:
        if operation == "chat_completion":
            result = _chat_expected(interaction)
        else:
            result = Expected(**{key: json.loads(interaction.body).get(key) for key in ("model", "usage")})
        paths = {
            "input_tokens": ("prompt_tokens",),
            "output_tokens": ("completion_tokens",),
            "total_tokens": ("total_tokens",),
            "cached_input_tokens": ("prompt_tokens_details", "cached_tokens"),
            "reasoning_tokens": ("completion_tokens_details", "reasoning_tokens"),
        }
    for prop, names in paths.items():
        value = _int(_dig(result.usage, *names))
        if value is not None:
            result.tokens[prop] = value
    return result


def reported_zero_details(interaction: Interaction) -> list[str]:
    """Cached/reasoning token properties the response reports as exactly 0."""
    if interaction.is_error:
        return []
    tokens = expected(interaction).tokens
    return [prop for prop in DETAIL_PROPS if tokens.get(prop) == 0]


def content_strings(request: Mapping[str, Any]) -> set[str]:
    """Every piece of prompt/message text in a recorded request."""
    found: set[str] = set()

    def walk(value: Any, key: str | None) -> None:
        if isinstance(value, str):
            if key not in _LABEL_KEYS and value.strip():
                found.add(value)
        elif isinstance(value, Mapping):
            for name, item in value.items():
                walk(item, str(name))
        elif isinstance(value, (list, tuple)):
            for item in value:
                walk(item, key)

    for name in _CONTENT_FIELDS:
        walk(request.get(name), name)
    return found


def string_values(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from string_values(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from string_values(item)


# -- replaying ------------------------------------------------------------------------------


def sdk_method(client: Any, interaction: Interaction) -> Callable[..., Any]:
    target: Any = client
    for name in interaction.endpoint[0].split("."):
        target = getattr(target, name)
    return target.create  # type: ignore[no-any-return]


def sdk_kwargs(method: Callable[..., Any], body: Mapping[str, Any]) -> dict[str, Any]:
    """The recorded body as keyword arguments; fields the method does not accept go in extra_body."""
    accepted = set(inspect.signature(method).parameters) - _SDK_OPTIONS
    kwargs = {name: value for name, value in body.items() if name in accepted}
    extra = {name: value for name, value in body.items() if name not in accepted}
    if extra:
        kwargs["extra_body"] = extra
    return kwargs


def serve(stub: OpenAIStub, interaction: Interaction) -> None:
    headers = {"x-request-id": interaction.request_id} if interaction.request_id else None
    stub.enqueue(Reply.recorded(interaction.status, interaction.body, interaction.content_type, headers))


def replay_sync(client: Any, interaction: Interaction) -> openai.APIStatusError | None:
    method = sdk_method(client, interaction)
    kwargs = sdk_kwargs(method, interaction.request)
    if interaction.is_error:
        with pytest.raises(openai.APIStatusError) as raised:
            method(**kwargs)
        return raised.value
    result = method(**kwargs)
    if interaction.streamed:
        assert isinstance(result, openai.Stream)
        assert list(result), "the replayed stream yields chunks"
    return None


async def replay_async(client: Any, interaction: Interaction) -> openai.APIStatusError | None:
    method = sdk_method(client, interaction)
    kwargs = sdk_kwargs(method, interaction.request)
    if interaction.is_error:
        with pytest.raises(openai.APIStatusError) as raised:
            await method(**kwargs)
        return raised.value
    result = await method(**kwargs)
    if interaction.streamed:
        assert isinstance(result, openai.AsyncStream)
        assert [chunk async for chunk in result], "the replayed stream yields chunks"
    return None


async def replay_all(
    interactions: tuple[Interaction, ...], client: Any, stub: OpenAIStub, capture: Any
) -> list[tuple[Interaction, openai.APIStatusError | None, dict[str, Any]]]:
    """Replay every interaction in order; one event must arrive per interaction."""
    is_async = isinstance(client, openai.AsyncOpenAI)
    outcomes = []
    for index, interaction in enumerate(interactions):
        serve(stub, interaction)
        if is_async:
            error = await replay_async(client, interaction)
        else:
            error = replay_sync(client, interaction)
        sent_request = stub.requests[-1]
        assert sent_request.path == interaction.uri_path
        for name, value in interaction.request.items():
            assert sent_request.body.get(name) == value, f"replayed request changed {name!r}"
        events = sent(capture, index + 1)
        outcomes.append((interaction, error, events[-1]))
    return outcomes


# -- parameters -----------------------------------------------------------------------------


def _unreplayable(path: Path) -> str | None:
    """Why the installed SDK cannot replay this cassette, if it cannot."""
    if path.stem in SKIPPED:
        return SKIPPED[path.stem]
    for interaction in load(path):
        resource = interaction.endpoint[0].split(".")[0]
        if not has_resource(resource):
            return f"openai {openai.version.VERSION} has no client.{resource}"
    return None


def _cassette_params() -> list[Any]:
    params = []
    for path in sorted(CASSETTES.glob("*.yaml")):
        reason = _unreplayable(path)
        marks = [pytest.mark.skip(reason=reason)] if reason else []
        params.append(pytest.param(path, id=path.stem, marks=marks))
    return params


def _zero_detail_params() -> list[Any]:
    """One cassette per shape (operation, sync/async client, JSON/SSE) reporting a zero detail.

    Every cassette of a shape goes through the same code path, and each replay costs ~0.13 s
    of fixture setup and teardown; one per shape keeps the module well under its time budget.
    """
    shapes: dict[tuple[str, bool, bool], Any] = {}
    for path in sorted(CASSETTES.glob("*.yaml")):
        if _unreplayable(path):
            continue
        for interaction in load(path):
            zeros = reported_zero_details(interaction)
            operation = interaction.endpoint[1]
            shape = (operation, path.stem.startswith("test_async_"), interaction.is_sse)
            if not zeros or shape in shapes:
                continue
            shapes[shape] = pytest.param(path, id=path.stem)
    return list(shapes.values())


CASSETTE_PARAMS = _cassette_params()
if not CASSETTE_PARAMS:
    pytest.skip(f"no cassettes (*.yaml) in {CASSETTES}", allow_module_level=True)


@pytest.fixture
def client(request: pytest.FixtureRequest, path: Path) -> Any:
    """The SDK client the cassette was named for; only that one is built (each costs ~20 ms)."""
    is_async = path.stem.startswith("test_async_")
    return request.getfixturevalue("async_openai_client" if is_async else "openai_client")


# -- tests ----------------------------------------------------------------------------------


def _check_request_side(p: Mapping[str, Any], interaction: Interaction) -> None:
    request = interaction.request
    _path, operation, api = interaction.endpoint
    assert p["provider"] == "openai"
    assert p["operation"] == operation
    assert p["api"] == api
    assert p["stream"] is interaction.streamed
    assert p["server_host"] == "127.0.0.1"
    items = request.get("messages", request.get("input"))
    count = len(items) if isinstance(items, list) else 1
    if operation == "embedding":
        assert p["input_count"] == count
    else:
        assert p["message_count"] == count
        last = items[-1] if isinstance(items, list) else items
        assert p["last_message_role"] == (last.get("role") if isinstance(last, Mapping) else "user")
    for name, prop in REQUEST_PARAMS.items():
        if name in request:
            assert p[prop] == request[name], prop
    # Before openai 1.46 a parsed (non-streamed) response has no request id to read.
    if interaction.request_id and (interaction.streamed or interaction.is_error or PARSED_REQUEST_IDS):
        assert p["request_id"] == interaction.request_id


def _check_error(p: Mapping[str, Any], interaction: Interaction, error: openai.APIStatusError | None) -> None:
    assert error is not None
    assert type(error) is not openai.APIStatusError, "the SDK raises its status-specific subclass"
    if interaction.status in STATUS_ERRORS:
        assert type(error) is STATUS_ERRORS[interaction.status]
    assert error.status_code == interaction.status
    assert p["http_status"] == interaction.status
    assert p["error_type"] == type(error).__name__
    message = _dig(json.loads(interaction.body), "error", "message")
    if isinstance(message, str):
        assert message in p["error"]
    assert p["model"] == interaction.request["model"], "no response model: the requested one"
    for prop in ("input_tokens", "output_tokens", "total_tokens", "finish_reason", "response_preview"):
        assert prop not in p, prop


def _check_success(p: Mapping[str, Any], interaction: Interaction) -> None:
    want = expected(interaction)
    operation = interaction.endpoint[1]
    assert p["model"] == want.model
    for prop in TOKEN_PROPS:
        value = want.tokens.get(prop)
        if value is None:
            assert prop not in p, f"{prop} sent but not reported by the response"
        else:
            assert p.get(prop) == value, prop
    assert "error_type" not in p and "http_status" not in p
    if interaction.streamed:
        assert p["stream_completed"] is True
        assert 0 < p["time_to_first_token_ms"] <= p["latency_ms"]
    if operation == "embedding":
        assert "finish_reason" not in p and "response_preview" not in p
        return
    assert p.get("finish_reason") == want.finish_reason
    assert p["tool_call_count"] == want.tool_call_count
    if want.text:
        preview = p["response_preview"]
        assert preview == want.text[:PREVIEW_CHARS]
        assert len(preview) == min(len(want.text), PREVIEW_CHARS)
    else:
        assert "response_preview" not in p


def _check_privacy(event: Mapping[str, Any], interaction: Interaction, generated: str) -> None:
    # Content the model legitimately echoed back in its answer may appear via the preview.
    needles = {text for text in content_strings(interaction.request) if text not in generated}
    leaked = {needle for value in string_values(event) for needle in needles if needle in value}
    assert not leaked, f"request content reached Amplitude: {leaked}"
    if not {"user", "safety_identifier"} & interaction.request.keys():
        assert "user_id" not in event, "no end-user id in the request: only the device id identifies it"


@pytest.mark.parametrize("path", CASSETTE_PARAMS)
async def test_cassette(path: Path, tracked: Any, stub: OpenAIStub, capture: Any, client: Any) -> None:
    interactions = load(path)
    assert interactions
    for interaction in interactions:
        assert interaction.uri_path in ENDPOINTS, f"no SDK method for {interaction.uri_path}"
    outcomes = await replay_all(interactions, client, stub, capture)
    for interaction, error, event in outcomes:
        assert event["event_type"] == "llm_operation"
        p = event["event_properties"]
        assert None not in p.values()
        _check_request_side(p, interaction)
        if interaction.is_error:
            _check_error(p, interaction, error)
            generated = ""
        else:
            assert error is None
            _check_success(p, interaction)
            generated = expected(interaction).text
        _check_privacy(event, interaction, generated)


@pytest.mark.parametrize("path", _zero_detail_params())
async def test_reported_zero_token_details_are_sent(
    path: Path, tracked: Any, stub: OpenAIStub, capture: Any, client: Any
) -> None:
    """A cached/reasoning token count the response reports as 0 is a real value: it is sent as 0.

    Regression: chat usage was read as ``cached_tokens or input_tokens_details.cached_tokens``,
    so a reported 0 fell through to the Responses API name, which chat usage lacks, and the
    property was dropped: "0 cached tokens" looked like "not reported".
    """
    outcomes = await replay_all(load(path), client, stub, capture)
    for interaction, _error, event in outcomes:
        p = event["event_properties"]
        for prop in reported_zero_details(interaction):
            assert p.get(prop) == 0, f"{prop}: reported 0, sent {p.get(prop)!r}"
