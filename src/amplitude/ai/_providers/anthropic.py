"""Anthropic Python SDK (`anthropic.Anthropic`, `AsyncAnthropic`, Vertex, Bedrock, Foundry).

Patched: `messages.create` / `.parse` / `.stream()` and their `beta.messages` twins (and
0.2x's `beta.tools.messages`, 0.3x-0.4x's `beta.prompt_caching.messages`), sync and
async. One user call is tracked once: `.stream()` never calls `create()` but posts the
request itself, lazily, when its manager is entered; `.with_raw_response` /
`.with_streaming_response` call `create()` with a marker header; threads and tool runners
call `beta.messages.create()` per turn. The Vertex and Bedrock clients use the same
resource classes, except their `beta.messages`, whose classes copy the functions at
import time and are patched too.

Since 0.16 the SDK has `client.messages` (before, only `client.beta.messages`), in a
module that later became a package; both paths are declared, and patching the same class
twice is a no-op. Nothing here imports the SDK: it is only read through the objects its
methods take and return.

Anthropic counts cache reads and writes apart from `input_tokens`; the event's
`input_tokens` includes them, as every provider's does, with `cached_input_tokens` (cache
reads) and `cache_creation_input_tokens` (writes) besides.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Iterable, Mapping
from typing import Any, Callable

from .. import _streams
from .._call import Call
from .._log import report_failure
from .._provider import Method, Provider

# The raw-response proxies and the HTTP-level readers are the SDK generator's (Stainless),
# which openai and anthropic share: what they hold is the same, not just alike.
from ._http import (
    base_url,
    body,
    credential_header_values,
    exchange,
    host,
    raw_response,
    sent_headers,
)
from ._read import (
    PREVIEW_CHARS,
    as_int,
    as_str,
    first_int,
    get,
    is_scalar,
    path,
    preview,
    seq,
    without,
)

_OPERATION = "chat_completion"
# module -> how the caller reaches its classes (`api` prefix)
_MODULES = {
    "anthropic.resources.messages": "messages",  # a module until 0.4x, then a package
    "anthropic.resources.messages.messages": "messages",
    "anthropic.resources.beta.messages": "beta.messages",  # a module in 0.8-0.15
    "anthropic.resources.beta.messages.messages": "beta.messages",
    "anthropic.resources.beta.tools.messages": "beta.tools.messages",  # 0.2x, before tools were GA
    "anthropic.resources.beta.prompt_caching.messages": "beta.prompt_caching.messages",
    "anthropic.lib.vertex._beta_messages": "beta.messages",
    "anthropic.lib.bedrock._beta_messages": "beta.messages",
}


def _methods() -> tuple[Method, ...]:
    # `stream()` returns its manager without awaiting anything, on the async class too.
    return tuple(
        Method(
            module, prefix + "Messages", name, f"{api}.{name}", _OPERATION, bool(prefix) and name != "stream"
        )
        for module, api in _MODULES.items()
        for name in ("create", "parse", "stream")
        for prefix in ("", "Async")
    )


_RAW_HEADER = "X-Stainless-Raw-Response"
# Scalar request parameters worth charting; `extra_body` may carry those the SDK version
# has no argument for (anthropic 2.x dropped temperature, top_p and top_k).
_PARAMS = ("temperature", "top_p", "top_k", "max_tokens", "service_tier", "speed", "inference_geo")
# Credentials the platform clients keep: Anthropic's key or token, Vertex's access token,
# Bedrock's AWS keys. Tokens fetched per request only show in the sent headers.
_CLIENT_SECRETS = (
    "api_key",
    "auth_token",
    "webhook_key",
    "access_token",
    "aws_access_key",
    "aws_secret_key",
    "aws_session_token",
)


class _Request:
    """What must be read from the request on the call path: the caller may mutate it after."""

    __slots__ = ("base_url", "count", "kwargs", "raw", "role")

    def __init__(self, kwargs: dict[str, Any], raw: Any, base_url: Any) -> None:
        self.base_url = base_url
        self.kwargs = without(kwargs, ("messages",))
        self.raw = raw
        messages = kwargs.get("messages")
        if isinstance(messages, (list, tuple)):
            # Anything else (a generator...) would be consumed by counting it.
            self.count: int | None = len(messages)
            self.role = get(messages[-1], "role") if messages else None
        else:
            self.count = self.role = None


def _begin(call: Call, instance: Any, kwargs: dict[str, Any]) -> None:
    headers = kwargs.get("extra_headers")
    # `is not None` first: an isinstance() check against an ABC costs ~0.15 us (warm) per call.
    raw = headers.get(_RAW_HEADER) if headers is not None and isinstance(headers, Mapping) else None
    call.request = _Request(kwargs, raw, base_url(instance))
    if kwargs.get("stream") is True or call.method.name == "stream":
        call.stream = True
        call.acc = _StreamState()
        call.fold = _fold


def _on_result(call: Call, result: Any) -> Any:
    if call.method.name == "stream":
        manager = _AsyncStreamManager if hasattr(result, "__aenter__") else _StreamManager
        return manager(result, call)
    if call.request.raw is not None and hasattr(result, "http_response"):
        return raw_response(call, result, _track_stream)
    if call.stream:
        return _track_stream(call, result)
    read = _read_parsed(result)
    if read is None:
        call.finish(response=result)
    else:
        call.acc = read
        call.finish()
    return result


def _read_parsed(message: Any) -> tuple[Any, ...] | None:
    """The values a parsed message's event needs, read as its call ends (`_read_values`
    makes them properties off the path); None to keep the whole message instead, read off
    the path by `_read_body`. Both give the same properties: a property test holds them
    equal, whatever the server sent.

    Why read here, and a flat tuple of raw values: a kept message would stay alive until
    its event is built, and so would dicts copied in its shape; the collector stops
    tracking a tuple of strings, ints and None at its first look (the openai provider's
    `_read_parsed` says more). Kept whole: a usage that is no pydantic v2 model.
    """
    try:
        fields = message.__dict__
        usage = fields.get("usage")
        counts: dict[str, Any] = {}
        if usage is not None:
            extra = getattr(usage, "__pydantic_extra__", True)
            if extra is True:
                return None  # no pydantic v2 model
            # With the fields its class does not declare (older SDKs hold newer counts that
            # way), as `_read_message` reads them: attributes, which they are.
            counts = {**usage.__dict__, **extra} if extra else usage.__dict__
        tool_calls = 0
        text = ""
        for block in seq(fields.get("content")):
            kind = get(block, "type")
            if kind == "text":
                part = as_str(get(block, "text"))
                if part and len(text) < PREVIEW_CHARS:
                    text += part[: PREVIEW_CHARS - len(text)]  # the preview is all that is kept
            elif _is_tool_use(kind):
                tool_calls += 1
        return (
            fields.get("model"),
            getattr(message, "_request_id", None),
            fields.get("stop_reason"),
            counts.get("input_tokens"),
            counts.get("cache_read_input_tokens"),
            counts.get("cache_creation_input_tokens"),
            counts.get("output_tokens"),
            get(counts.get("output_tokens_details"), "thinking_tokens"),
            tool_calls,
            text,
        )
    except Exception:
        return None


def _read_values(read: tuple[Any, ...], props: dict[str, Any]) -> None:
    """The event properties of what `_read_parsed` read, as `_read_body` reads them."""
    model, request_id, stop_reason, uncached, cache_read, cache_write, output, thinking, tools, text = read
    props["request_id"] = as_str(request_id) or None
    usage = {
        "input_tokens": uncached,
        "cache_read_input_tokens": cache_read,
        "cache_creation_input_tokens": cache_write,
        "output_tokens": output,
        "output_tokens_details": {"thinking_tokens": thinking},
    }
    _read_message(model, (usage,), stop_reason, props)
    props["tool_call_count"] = tools
    props["response_preview"] = text or None


# -- streams ---------------------------------------------------------------------

# Stream class -> whether a proxy of its instances passes `isinstance(proxy, cls)`.
_proxy_passes: dict[type, bool] = {}


def _track_stream(call: Call, stream: Any) -> Any:
    """What the caller gets for a stream: our proxy, or the SDK's own object observed in
    place where a proxy would fail `isinstance(s, anthropic.Stream)` (from 0.3x to the
    last 0.x the stream classes' metaclass accepts their exact instances only)."""
    call.response = _exchange(stream)
    is_async = call.method.is_async
    cls = type(stream)
    passes = _proxy_passes.get(cls)
    if passes is None:
        passes = _proxy_passes[cls] = isinstance(_streams.ObjectProxy(stream), cls)
    if passes:
        return _streams.track_stream(stream, call, is_async)
    # Those versions' `__iter__` / `__next__` read `_iterator`, and `__exit__` calls
    # `close()`: the instance attributes shadow them for this stream only.
    stream._iterator = _streams.track_stream(stream._iterator, call, is_async)
    stream.close = (_closing_async if is_async else _closing)(stream.close, call)
    return stream


def _exchange(stream: Any) -> Any:
    """What the event needs of a stream, not the stream: the dispatcher holds open calls
    until they end, and the stream must stay collectable if the caller drops it."""
    return exchange(stream, "request-id")


def _closing(close: Callable[[], Any], call: Call) -> Callable[[], Any]:
    def closing() -> Any:
        try:
            return close()
        finally:
            call.finish()

    return closing


def _closing_async(close: Callable[[], Awaitable[Any]], call: Call) -> Callable[[], Awaitable[Any]]:
    async def closing() -> Any:
        try:
            return await close()
        finally:
            call.finish()

    return closing


# -- `.stream()`: a manager that sends the request when entered ------------------


def _entering(call: Call) -> None:
    # The request leaves now, not when the manager was made: time the call from here.
    call.wall_time = time.time()
    call.started_at = time.perf_counter()


def _entered(call: Call, stream: Any, is_async: bool) -> Any:
    """Observe the helper's `MessageStream` (`AsyncMessageStream`).

    Its iteration, `text_stream`, `until_done()` and `get_final_message()` all pull from
    its `_iterator` (in every SDK version since 0.8), which yields the raw stream events
    among its own: the proxy goes there. Proxying the stream object itself would miss
    every read it makes of itself.
    """
    call.response = _exchange(stream)
    try:
        stream._iterator = _streams.track_stream(stream._iterator, call, is_async)
    except Exception as exc:
        # The caller's stream is untouched; the event still comes, without what it says.
        report_failure("observing an anthropic message stream", exc)
    return stream


class _Manager(_streams.ObjectProxy):
    def __init__(self, wrapped: Any, call: Call) -> None:
        super().__init__(wrapped)
        self._self_call = call


class _StreamManager(_Manager):
    """Proxy of `MessageStreamManager`: the call ends when its block exits, if not before."""

    def __enter__(self) -> Any:
        call = self._self_call
        _entering(call)
        try:
            stream = self.__wrapped__.__enter__()
        except BaseException as exc:
            call.finish(error=exc)
            raise
        return _entered(call, stream, is_async=False)

    def __exit__(self, *exc_info: Any) -> Any:
        try:
            return self.__wrapped__.__exit__(*exc_info)
        finally:
            self._self_call.finish()


class _AsyncStreamManager(_Manager):
    """Proxy of `AsyncMessageStreamManager` (`async with`)."""

    async def __aenter__(self) -> Any:
        call = self._self_call
        _entering(call)
        try:
            stream = await self.__wrapped__.__aenter__()
        except BaseException as exc:
            call.finish(error=exc)
            raise
        return _entered(call, stream, is_async=True)

    async def __aexit__(self, *exc_info: Any) -> Any:
        try:
            return await self.__wrapped__.__aexit__(*exc_info)
        finally:
            self._self_call.finish()


# -- stream events: folded one by one, on the caller's path ----------------------


class _StreamState:
    __slots__ = ("chars", "delta_usage", "model", "parts", "start_usage", "stop_reason", "tool_calls")

    def __init__(self) -> None:
        self.model: Any = None
        self.start_usage: Any = None  # message_start: input and cache counts
        self.delta_usage: Any = None  # message_delta: cumulative counts, output at least
        self.stop_reason: Any = None
        self.parts: list[str] = []
        self.chars = 0
        self.tool_calls = 0


def _fold(acc: _StreamState, event: Any) -> bool:
    """Raw stream events, most frequent first; the `.stream()` helper's own events in
    between (`text`, `input_json`, ...) repeat what the raw ones say and are skipped."""
    kind = event.type
    if kind == "content_block_delta":
        delta = event.delta
        if delta.type == "text_delta" and acc.chars < PREVIEW_CHARS:
            acc.parts.append(delta.text)
            acc.chars += len(delta.text)
    elif kind == "content_block_start":
        if _is_tool_use(event.content_block.type):
            acc.tool_calls += 1
    elif kind == "message_delta":
        acc.stop_reason = event.delta.stop_reason
        acc.delta_usage = event.usage
    elif kind == "message_start":
        acc.model = event.message.model
        acc.start_usage = event.message.usage
    return False


def _is_tool_use(kind: Any) -> bool:
    # Client tools, and the server / MCP tools the API runs itself: calls the model made.
    return isinstance(kind, str) and kind.endswith("tool_use")


# -- event properties (off the call path) ---------------------------------------


def _properties(call: Call) -> dict[str, Any]:
    request: _Request = call.request
    kwargs = request.kwargs
    props: dict[str, Any] = {
        "model": as_str(kwargs.get("model")),
        "message_count": request.count,
        "last_message_role": as_str(request.role),
    }
    _read_params(kwargs, props)
    props["server_host"] = host(request.base_url)
    # The core reports an error and its `status_code`. An API error names its request; a
    # stream that broke off has its response's.
    failed = call.error is not None
    if failed:
        props["request_id"] = _request_id(call.error) or _request_id(call.response)
        return props
    if call.acc is not None and not call.stream:  # read as the call ended (`_read_parsed`)
        _read_values(call.acc, props)
        return props
    props["request_id"] = _request_id(call.response)
    if call.stream:
        acc: _StreamState = call.acc
        _read_message(acc.model, (acc.delta_usage, acc.start_usage), acc.stop_reason, props)
        props["tool_call_count"] = acc.tool_calls
        props["response_preview"] = preview(acc.parts)
        return props
    message = body(call.response)
    if message is not None:
        _read_body(message, props)
    return props


def _read_body(message: Any, props: dict[str, Any]) -> None:
    """What a message (an SDK object, or decoded JSON) says."""
    _read_message(get(message, "model"), (get(message, "usage"),), get(message, "stop_reason"), props)
    blocks = seq(get(message, "content"))
    props["tool_call_count"] = sum(1 for block in blocks if _is_tool_use(get(block, "type")))
    props["response_preview"] = preview(
        [as_str(get(block, "text")) or "" for block in blocks if get(block, "type") == "text"]
    )


def _read_params(kwargs: dict[str, Any], props: dict[str, Any]) -> None:
    extra = kwargs.get("extra_body")
    # `extra_body` wins, as in the request the SDK sends.
    sources = (extra, kwargs) if isinstance(extra, Mapping) else (kwargs,)
    for name in _PARAMS:
        for source in sources:
            value = source.get(name)
            if is_scalar(value):
                props[name] = value
                break
    thinking = kwargs.get("thinking")
    props["thinking_type"] = as_str(get(thinking, "type"))
    props["thinking_budget_tokens"] = as_int(get(thinking, "budget_tokens"))
    props["reasoning_effort"] = as_str(path(kwargs.get("output_config"), "effort"))


def _read_message(model: Any, usages: tuple[Any, ...], stop_reason: Any, props: dict[str, Any]) -> None:
    """Model, tokens and finish reason; `usages` most authoritative first (a stream's
    message_delta counts are cumulative and win over its message_start ones)."""
    props["model"] = as_str(model) or props["model"]
    props["finish_reason"] = as_str(stop_reason)

    def reported(*names: str) -> int | None:
        return next((n for n in (first_int(u, names) for u in usages) if n is not None), None)

    uncached = reported("input_tokens")
    cache_read = reported("cache_read_input_tokens")
    cache_write = reported("cache_creation_input_tokens")
    output = reported("output_tokens")
    # Anthropic's `input_tokens` leaves cache reads and writes out; every other provider's
    # input count has them in, and so does ours.
    total_input = None if uncached is None else uncached + (cache_read or 0) + (cache_write or 0)
    props["input_tokens"] = total_input
    props["cached_input_tokens"] = cache_read
    props["cache_creation_input_tokens"] = cache_write
    props["output_tokens"] = output
    if total_input is not None and output is not None:
        props["total_tokens"] = total_input + output
    props["reasoning_tokens"] = reported("output_tokens_details", "thinking_tokens")


def _request_id(outcome: Any) -> str | None:
    """The `request-id` header: recent SDKs keep it on messages (`_request_id`), raw
    responses and errors (`request_id`); those but messages hold the HTTP response, and
    streams are recorded as theirs."""
    rid = as_str(get(outcome, "_request_id")) or as_str(get(outcome, "request_id"))
    if rid is None:
        http: Any = getattr(outcome, "http_response", None) or getattr(outcome, "response", None) or outcome
        with contextlib.suppress(Exception):
            rid = as_str(http.headers.get("request-id"))
    return rid


def _secrets(call: Call) -> Iterable[str]:
    client = getattr(call.instance, "_client", None)
    values: list[Any] = [getattr(client, name, None) for name in _CLIENT_SECRETS]
    for headers in (
        getattr(client, "_custom_headers", None),
        getattr(client, "_credential_headers", None),  # from a credentials file (2.x)
        call.request.kwargs.get("extra_headers"),
        sent_headers(call),
    ):
        values += credential_header_values(headers)
    return [value for value in values if isinstance(value, str)]


def _user_id(call: Call) -> str | None:
    return as_str(get(call.request.kwargs.get("metadata"), "user_id"))


PROVIDER = Provider(
    name="anthropic",
    methods=_methods(),
    begin=_begin,
    on_result=_on_result,
    properties=_properties,
    secrets=_secrets,
    user_id=_user_id,
)
