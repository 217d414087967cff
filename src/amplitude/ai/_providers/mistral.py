"""Mistral Python SDK (`mistralai`, the Speakeasy-generated client `Mistral`, 1.x and later).

Patched: `chat.complete`, `chat.stream`, `embeddings.create` and their `_async` twins, on
`Mistral` clients and (2.0 and later) `MistralAzure` ones.
`chat.parse` / `parse_stream` (and their async twins) call `complete` / `stream` on the
same object and are tracked through them, once. Nothing here imports the SDK.

The classes moved in 2.0, when `mistralai` became a namespace package holding
`mistralai.client` and the Azure and GCP clients: both layouts are declared, and only the
modules the installed version has are ever imported (the import hook watches names).

The wire format is OpenAI's in all but names: `usage.prompt_tokens` counts all input,
cached included (`prompt_tokens_details.cached_tokens`), and streams are SSE of
`CompletionEvent`s whose `data` is an OpenAI-like chunk, the last one with the usage.
Message content is a string or a list of typed chunks (text, thinking, references...).
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
from ._read import PREVIEW_CHARS, as_str, first_int, get, is_scalar, path, preview, seq, without

_CHAT = ("Chat", "chat", ("complete", "stream"), "chat_completion")
_EMBEDDINGS = ("Embeddings", "embeddings", ("create",), "embedding")
# module -> (class, how the caller reaches it: the `api` prefix, methods, operation)
_MODULES = {
    "mistralai.chat": _CHAT,  # 1.x
    "mistralai.embeddings": _EMBEDDINGS,
    "mistralai.client.chat": _CHAT,  # 2.0 and later
    "mistralai.client.embeddings": _EMBEDDINGS,
    "mistralai.azure.client.chat": _CHAT,  # `MistralAzure`, 2.0 and later
}


def _methods() -> tuple[Method, ...]:
    return tuple(
        Method(module, cls, name + suffix, f"{prefix}.{name}{suffix}", operation, bool(suffix))
        for module, (cls, prefix, names, operation) in _MODULES.items()
        for name in names
        for suffix in ("", "_async")
    )


# Scalar request parameters worth charting, under the event's names; content-bearing ones
# (messages, inputs, metadata, prediction, tools) are deliberately absent.
_PARAMS = {
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "max_tokens": "max_tokens",
    "min_tokens": "min_tokens",
    "n": "n",
    "random_seed": "seed",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
    "logprobs": "logprobs",
    "top_logprobs": "top_logprobs",
    "reasoning_effort": "reasoning_effort",
    "prompt_mode": "prompt_mode",
    "service_tier": "service_tier",
    "parallel_tool_calls": "parallel_tool_calls",
    "safe_prompt": "safe_prompt",
    "output_dimension": "dimensions",
    "output_dtype": "output_dtype",
    "encoding_format": "encoding_format",
}
_PARAM_NAMES = frozenset(_PARAMS)
# Mistral's API names the request in these response headers; the SDK keeps them on errors
# and streams only (a parsed response has no headers).
_REQUEST_ID_HEADERS = ("mistral-correlation-id", "x-kong-request-id", "x-request-id")


class _Request:
    """What must be read from the request on the call path: the caller may mutate it after."""

    __slots__ = ("count", "kwargs", "role")

    def __init__(self, kwargs: dict[str, Any], items: Any) -> None:
        self.kwargs = without(kwargs, ("messages", "inputs"))
        self.role: Any = None
        if isinstance(items, str):
            self.count: int | None = 1
        elif isinstance(items, (list, tuple)):
            # Anything else (a generator...) would be consumed by counting it.
            self.count = len(items)
            self.role = get(items[-1], "role") if items else None
        else:
            self.count = None


def _begin(call: Call, instance: Any, kwargs: dict[str, Any]) -> None:
    embedding = call.method.operation == "embedding"
    call.request = _Request(kwargs, kwargs.get("inputs" if embedding else "messages"))
    if call.method.name.startswith("stream"):
        call.stream = True
        call.acc = _StreamState()
        call.fold = _fold


def _on_result(call: Call, result: Any) -> Any:
    if not call.stream:
        call.finish(response=result)
        return result
    # The HTTP response (for its headers), not the stream: the dispatcher holds open calls
    # until they end, and the stream must stay collectable if the caller drops it.
    call.response = getattr(result, "response", None)
    return _streams.track_stream(result, call, call.method.is_async)


# -- stream chunks: folded one by one, on the caller's path ----------------------


class _StreamState:
    __slots__ = ("chars", "finish", "model", "parts", "tool_calls", "usage")

    def __init__(self) -> None:
        self.model: Any = None
        self.usage: Any = None
        self.finish: Any = None
        self.parts: list[str] = []
        self.chars = 0
        self.tool_calls: set[tuple[Any, Any, Any]] = set()


def _fold(acc: _StreamState, event: Any) -> bool:
    """A `CompletionEvent`: plain attribute reads of its parsed chunk. Unset fields are the
    SDK's falsy `UNSET`, so truth tests cover them."""
    chunk = event.data
    if acc.model is None:
        acc.model = chunk.model
    usage = chunk.usage
    if usage:
        acc.usage = usage
    for choice in chunk.choices:
        delta = choice.delta
        tool_calls = delta.tool_calls
        if tool_calls:
            for tool_call in tool_calls:
                # Mistral sends each call whole; the key only guards against repeats.
                acc.tool_calls.add((choice.index, get(tool_call, "id"), get(tool_call, "index")))
        if choice.index:
            continue  # the preview and finish reason are choice 0's
        if choice.finish_reason:
            acc.finish = choice.finish_reason
        content = delta.content
        if content and acc.chars < PREVIEW_CHARS:
            text = content if isinstance(content, str) else "".join(_texts(content))
            acc.parts.append(text)
            acc.chars += len(text)
    return False


def _texts(content: Any) -> list[str]:
    """The generated text of a message's content: a string, or the text chunks of a list
    (thinking and reference chunks are not the answer)."""
    if isinstance(content, str):
        return [content]
    return [as_str(get(part, "text")) or "" for part in seq(content) if get(part, "type") == "text"]


# -- event properties (off the call path) ---------------------------------------


def _properties(call: Call) -> dict[str, Any]:
    request: _Request = call.request
    kwargs = request.kwargs
    props: dict[str, Any] = {"model": as_str(kwargs.get("model")), "server_host": _host(call)}
    for name in _PARAM_NAMES.intersection(kwargs):
        value = kwargs[name]
        if is_scalar(value):
            props[_PARAMS[name]] = value
    if call.method.operation == "embedding":
        props["input_count"] = request.count
    else:
        props["message_count"] = request.count
        props["last_message_role"] = as_str(request.role)
    props["request_id"] = _request_id(call.error) or _request_id(call.response)
    if call.error is not None:
        return props
    if call.stream:
        acc: _StreamState = call.acc
        model, usage, finish = acc.model, acc.usage, acc.finish
        props["tool_call_count"] = len(acc.tool_calls)
        props["response_preview"] = preview(acc.parts)
    else:
        response = call.response
        model, usage = get(response, "model"), get(response, "usage")
        choices = seq(get(response, "choices"))
        first = choices[0] if choices else None
        finish = get(first, "finish_reason")
        if call.method.operation == "chat_completion":
            props["tool_call_count"] = sum(len(seq(path(c, "message", "tool_calls"))) for c in choices)
            props["response_preview"] = preview(_texts(path(first, "message", "content")))
    props["model"] = as_str(model) or props["model"]
    props["finish_reason"] = as_str(finish)
    _read_usage(usage, props)
    return props


def _read_usage(usage: Any, props: dict[str, Any]) -> None:
    # `prompt_tokens` already includes the cached part, as the event's `input_tokens` does.
    props["input_tokens"] = first_int(usage, ("prompt_tokens",))
    props["output_tokens"] = first_int(usage, ("completion_tokens",))
    props["total_tokens"] = first_int(usage, ("total_tokens",))
    # Not fields of the SDK's usage model: kept as extras (plain dicts) when the API sends them.
    props["cached_input_tokens"] = first_int(usage, ("prompt_tokens_details", "cached_tokens"))
    props["reasoning_tokens"] = first_int(usage, ("completion_tokens_details", "reasoning_tokens"))


def _host(call: Call) -> str | None:
    """Host of the base URL: the call's `server_url`, else the client's server."""
    url = as_str(call.request.kwargs.get("server_url"))
    if not url:
        with contextlib.suppress(Exception):
            url = call.instance.sdk_configuration.get_server_details()[0]
    with contextlib.suppress(Exception):
        return as_str(urlsplit(url).hostname) or None
    return None


def _http(outcome: Any) -> Any:
    """The HTTP response of an error (`raw_response`); a stream's call holds its own."""
    return getattr(outcome, "raw_response", None) or outcome


def _request_id(outcome: Any) -> str | None:
    if outcome is None:
        return None
    headers = getattr(_http(outcome), "headers", None)
    if not isinstance(headers, Mapping):
        return None
    return next((rid for rid in (as_str(headers.get(name)) for name in _REQUEST_ID_HEADERS) if rid), None)


def _sent_headers(call: Call) -> Any:
    """The headers the SDK sent: they carry the key an `api_key` callable returned."""
    for outcome in (call.error, call.response):
        try:
            return _http(outcome).request.headers
        except Exception:
            continue  # no outcome, a parsed response, or httpx's RuntimeError for no request
    return None


def _secrets(call: Call) -> Iterable[str]:
    config = getattr(call.instance, "sdk_configuration", None)
    # A callable key (`Mistral(api_key=fn)`) is not called again here: it shows in the sent headers.
    values: list[Any] = [get(getattr(config, "security", None), "api_key")]
    for headers in (
        call.request.kwargs.get("http_headers"),
        getattr(getattr(config, "client", None), "headers", None),
        getattr(getattr(config, "async_client", None), "headers", None),
        _sent_headers(call),
    ):
        values += credential_header_values(headers)
    return [value for value in values if isinstance(value, str)]


PROVIDER = Provider(
    name="mistral",
    methods=_methods(),
    begin=_begin,
    on_result=_on_result,
    properties=_properties,
    secrets=_secrets,
)
