"""Cohere Python SDK (`cohere.ClientV2`, `AsyncClientV2`, and the v1 `Client`, `AsyncClient`).

Patched where the methods are defined, so that each user call is tracked once:

- v2 (`/v2/chat`, `/v2/embed`): `V2Client` / `AsyncV2Client` `chat`, `chat_stream`,
  `embed`. `ClientV2` inherits them ahead of the v1 ones, and `Client.v2` is a `V2Client`.
- v1 (`/v1/chat`, `/v1/embed`): `BaseCohere` / `AsyncBaseCohere` `chat`, `chat_stream`,
  and `Client` / `AsyncClient` `embed`. The latter splits a long `texts` list into
  batches, each through `BaseCohere.embed`: patching that one instead would report one
  event per batch, and patching both would report the call twice.

`chat_stream` is a generator function (an async generator function on the async
classes): calling it sends nothing and returns the generator, which is proxied; the
request, and any HTTP error, come with the first chunk. The clients copy `chat` and
`chat_stream` into instance attributes when they are created, so a client created
before patching keeps the untracked methods.

Cohere's responses name no model (the request's is reported) and its token counts are
JSON numbers the SDK types as floats. `usage.tokens` (v2) / `meta.tokens` (v1) are the
tokens the model processed; `billed_units` (what is charged) is the fallback. The SDK
hands back no response headers on success, so `request_id` is the response's own id
(v2 `id`, v1 `response_id` / stream `generation_id`); for HTTP errors it is the
`x-request-id` header when the server sent one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from .. import _streams
from .._call import Call
from .._provider import Method, Provider
from ._http import credential_header_values
from ._read import PREVIEW_CHARS, as_str, get, is_scalar, path, preview, seq, without

_CHAT = "chat_completion"
_EMBEDDING = "embedding"
_V2 = "cohere.v2.client"
_V1 = "cohere.base_client"
_V1_EMBED = "cohere.client"

# (module, sync class, async class, method, api, operation)
_DECLARED = (
    (_V2, "V2Client", "AsyncV2Client", "chat", "v2.chat", _CHAT),
    (_V2, "V2Client", "AsyncV2Client", "chat_stream", "v2.chat_stream", _CHAT),
    (_V2, "V2Client", "AsyncV2Client", "embed", "v2.embed", _EMBEDDING),
    (_V1, "BaseCohere", "AsyncBaseCohere", "chat", "chat", _CHAT),
    (_V1, "BaseCohere", "AsyncBaseCohere", "chat_stream", "chat_stream", _CHAT),
    (_V1_EMBED, "Client", "AsyncClient", "embed", "embed", _EMBEDDING),
)


def _methods() -> tuple[Method, ...]:
    # An async `chat_stream` returns its async generator without awaiting anything.
    return tuple(
        Method(module, cls, name, api, operation, is_async and name != "chat_stream")
        for module, sync_cls, async_cls, name, api, operation in _DECLARED
        for cls, is_async in ((sync_cls, False), (async_cls, True))
    )


# Request argument -> event property: Cohere's `k` / `p` are everyone else's top_k / top_p.
_PARAMS = {
    "temperature": "temperature",
    "p": "top_p",
    "k": "top_k",
    "max_tokens": "max_tokens",
    "max_input_tokens": "max_input_tokens",
    "seed": "seed",
    "frequency_penalty": "frequency_penalty",
    "presence_penalty": "presence_penalty",
    "logprobs": "logprobs",
    "safety_mode": "safety_mode",
    "strict_tools": "strict_tools",
    "priority": "priority",
    "prompt_truncation": "prompt_truncation",
    "citation_quality": "citation_quality",
    "search_queries_only": "search_queries_only",
    "force_single_step": "force_single_step",
    "raw_prompting": "raw_prompting",
    "input_type": "input_type",
    "truncate": "truncate",
    "output_dimension": "dimensions",
}


# Arguments carrying the conversation or the inputs: counted on the call path, not kept.
_CONTENT_ARGS = (
    "messages",
    "message",
    "chat_history",
    "tool_results",
    "documents",
    "texts",
    "inputs",
    "images",
)


class _Request:
    """What must be read from the request on the call path: the caller may mutate it after."""

    __slots__ = ("count", "kwargs", "role")

    def __init__(self, kwargs: dict[str, Any], count: int | None, role: Any) -> None:
        self.kwargs = without(kwargs, _CONTENT_ARGS)
        self.count = count
        self.role = role


def _v2_messages(kwargs: dict[str, Any]) -> tuple[int | None, Any]:
    messages = kwargs.get("messages")
    if not isinstance(messages, (list, tuple)):
        # Anything else (a generator...) would be consumed by counting it.
        return None, None
    return len(messages), get(messages[-1], "role") if messages else None


def _v1_messages(kwargs: dict[str, Any]) -> tuple[int | None, Any]:
    """v1 sends the new user turn as `message`, beside the earlier `chat_history`; a turn
    that hands tool results back to the model may leave `message` empty."""
    history = kwargs.get("chat_history")
    earlier = len(history) if isinstance(history, (list, tuple)) else 0
    role = "tool" if seq(kwargs.get("tool_results")) else "user"
    return earlier + 1, role


def _inputs(kwargs: dict[str, Any]) -> tuple[int | None, Any]:
    for name in ("texts", "inputs", "images"):
        items = kwargs.get(name)
        if isinstance(items, (list, tuple)):
            return len(items), None
    return None, None


def _begin(call: Call, instance: Any, kwargs: dict[str, Any]) -> None:
    method = call.method
    if method.operation == _EMBEDDING:
        count, role = _inputs(kwargs)
    elif method.module == _V2:
        count, role = _v2_messages(kwargs)
    else:
        count, role = _v1_messages(kwargs)
    call.request = _Request(kwargs, count, role)
    if method.name == "chat_stream":
        call.stream = True
        call.acc = _StreamState()
        call.fold = _fold_v2 if method.module == _V2 else _fold_v1


def _on_result(call: Call, result: Any) -> Any:
    if call.stream:
        return _streams.track_stream(result, call, hasattr(result, "__aiter__"))
    call.finish(response=result)
    return result


# -- stream events: folded one by one, on the caller's path ----------------------


class _StreamState:
    __slots__ = ("chars", "finish_reason", "id", "meta", "parts", "tool_calls", "usage")

    def __init__(self) -> None:
        self.id: Any = None
        self.usage: Any = None  # v2 message-end
        self.meta: Any = None  # v1 stream-end's response
        self.finish_reason: Any = None
        self.parts: list[str] = []
        self.chars = 0
        self.tool_calls = 0


def _add_text(acc: _StreamState, text: Any) -> None:
    if isinstance(text, str) and acc.chars < PREVIEW_CHARS:
        acc.parts.append(text)
        acc.chars += len(text)


def _fold_v2(acc: _StreamState, event: Any) -> bool:
    """v2 events, most frequent first; `content-delta` carries text or thinking."""
    kind = event.type
    if kind == "content-delta":
        _add_text(acc, path(event.delta, "message", "content", "text"))
    elif kind == "tool-call-start":
        acc.tool_calls += 1
    elif kind == "message-end":
        acc.finish_reason = path(event.delta, "finish_reason")
        acc.usage = path(event.delta, "usage")
    elif kind == "message-start":
        acc.id = event.id
    return False


def _fold_v1(acc: _StreamState, event: Any) -> bool:
    kind = event.event_type
    if kind == "text-generation":
        _add_text(acc, event.text)
    elif kind == "tool-calls-generation":
        acc.tool_calls += len(seq(event.tool_calls))
    elif kind == "stream-end":
        acc.finish_reason = event.finish_reason
        acc.meta = path(event.response, "meta")
        acc.id = path(event.response, "response_id") or acc.id
    elif kind == "stream-start":
        acc.id = event.generation_id
    return False


# -- event properties (off the call path) ---------------------------------------


def _properties(call: Call) -> dict[str, Any]:
    request: _Request = call.request
    kwargs = request.kwargs
    props: dict[str, Any] = {"model": as_str(kwargs.get("model"))}
    if call.method.operation == _EMBEDDING:
        props["input_count"] = request.count
    else:
        props["message_count"] = request.count
        props["last_message_role"] = as_str(request.role)
    _read_params(kwargs, props)
    props["server_host"] = _server_host(call.instance)
    if call.error is not None:
        props["request_id"] = _error_request_id(call.error)
        return props
    if call.stream:
        acc: _StreamState = call.acc
        _read_usage(acc.usage or acc.meta, props)
        props["request_id"] = as_str(acc.id)
        props["finish_reason"] = as_str(acc.finish_reason)
        props["tool_call_count"] = acc.tool_calls
        props["response_preview"] = preview(acc.parts)
        return props
    response = call.response
    if call.method.module == _V2:
        _read_usage(get(response, "usage") or get(response, "meta"), props)
        props["request_id"] = as_str(get(response, "id"))
    else:
        _read_usage(get(response, "meta"), props)
        props["request_id"] = as_str(get(response, "response_id")) or as_str(get(response, "id"))
    if call.method.operation == _CHAT:
        _read_reply(call.method.module == _V2, response, props)
    return props


def _read_params(kwargs: dict[str, Any], props: dict[str, Any]) -> None:
    for name, prop in _PARAMS.items():
        value = kwargs.get(name)
        if is_scalar(value):
            props[prop] = value
    thinking = kwargs.get("thinking")
    props["thinking_type"] = as_str(get(thinking, "type"))
    props["thinking_budget_tokens"] = _count(get(thinking, "token_budget"))


def _read_reply(is_v2: bool, response: Any, props: dict[str, Any]) -> None:
    props["finish_reason"] = as_str(get(response, "finish_reason"))
    if is_v2:
        message = get(response, "message")
        props["tool_call_count"] = len(seq(get(message, "tool_calls")))
        blocks = seq(get(message, "content"))
        texts = [as_str(get(block, "text")) or "" for block in blocks if get(block, "type") == "text"]
    else:
        props["tool_call_count"] = len(seq(get(response, "tool_calls")))
        texts = [as_str(get(response, "text")) or ""]
    props["response_preview"] = preview(texts)


def _count(value: Any) -> int | None:
    """A token count: the SDK types them as floats, so 12 arrives as 12.0."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer() and value >= 0:
        return int(value)
    return None


def _read_usage(usage: Any, props: dict[str, Any]) -> None:
    """v2 `usage` and v1 `meta` have the same shape: `tokens` (what the model processed,
    the preamble included) is preferred over `billed_units` (what is charged)."""
    if usage is None:
        return
    sources = (get(usage, "tokens"), get(usage, "billed_units"))

    def reported(name: str) -> int | None:
        return next((n for n in (_count(get(s, name)) for s in sources) if n is not None), None)

    input_tokens = reported("input_tokens")
    output_tokens = reported("output_tokens")
    props["input_tokens"] = input_tokens
    props["output_tokens"] = output_tokens
    # Cache hits are part of the prompt Cohere counts in `input_tokens`.
    props["cached_input_tokens"] = _count(get(usage, "cached_tokens"))
    if input_tokens is not None and output_tokens is not None:
        props["total_tokens"] = input_tokens + output_tokens
    elif input_tokens is not None and props.get("input_count") is not None:
        props["total_tokens"] = input_tokens  # embeddings generate no tokens


def _client_wrapper(instance: Any) -> Any:
    # `BaseCohere` and `ClientV2` hold it; a `V2Client` reached as `client.v2` only
    # through its raw client.
    wrapper = getattr(instance, "_client_wrapper", None)
    if wrapper is None:
        wrapper = getattr(getattr(instance, "_raw_client", None), "_client_wrapper", None)
    return wrapper


def _server_host(instance: Any) -> str | None:
    with contextlib.suppress(Exception):
        return urlsplit(_client_wrapper(instance).get_base_url()).hostname or None
    return None


def _error_request_id(error: BaseException) -> str | None:
    headers = getattr(error, "headers", None)
    if not isinstance(headers, Mapping):
        return None
    for name, value in headers.items():
        if isinstance(name, str) and name.lower() == "x-request-id":
            return as_str(value)
    return None


def _secrets(call: Call) -> Iterable[str]:
    wrapper = _client_wrapper(call.instance)
    # A token callable is not called: it may fetch a fresh token with side effects.
    values: list[Any] = [getattr(wrapper, "_token", None)]
    values += credential_header_values(getattr(wrapper, "_headers", None))
    values += credential_header_values(get(call.request.kwargs.get("request_options"), "additional_headers"))
    return [value for value in values if isinstance(value, str) and value]


PROVIDER = Provider(
    name="cohere",
    methods=_methods(),
    begin=_begin,
    on_result=_on_result,
    properties=_properties,
    secrets=_secrets,
)
