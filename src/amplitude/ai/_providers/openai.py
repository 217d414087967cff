"""OpenAI Python SDK, v1 and later (`openai.OpenAI`, `AsyncOpenAI`, Azure clients).

Patched: chat.completions.create/parse, completions.create, embeddings.create,
responses.create/parse, sync and async. Everything else reaches these methods:
`.with_raw_response` / `.with_streaming_response` call them with a marker header and
get a raw response object back, and the `.stream(...)` helpers call `create(stream=True)`.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterable, Mapping
from typing import Any

from .. import _streams
from .._call import Call
from .._provider import Method, Provider
from ._read import PREVIEW_CHARS, as_int, as_str, first_int, get, is_scalar, path, preview, seq

_CHAT = "openai.resources.chat.completions.completions"
_CHAT_V1 = "openai.resources.chat.completions"  # a module until 1.6x, a package since
_BETA_CHAT = "openai.resources.beta.chat.completions"  # .parse lived here in 1.40-1.9x
_COMPLETIONS = "openai.resources.completions"
_EMBEDDINGS = "openai.resources.embeddings"
_RESPONSES = "openai.resources.responses.responses"


def _methods() -> tuple[Method, ...]:
    table = [
        (_CHAT, "create", "chat.completions.create", "chat_completion"),
        (_CHAT, "parse", "chat.completions.parse", "chat_completion"),
        (_CHAT_V1, "create", "chat.completions.create", "chat_completion"),
        (_BETA_CHAT, "parse", "beta.chat.completions.parse", "chat_completion"),
        (_COMPLETIONS, "create", "completions.create", "completion"),
        (_EMBEDDINGS, "create", "embeddings.create", "embedding"),
        (_RESPONSES, "create", "responses.create", "response"),
        (_RESPONSES, "parse", "responses.parse", "response"),
    ]
    classes = {
        _CHAT: "Completions",
        _CHAT_V1: "Completions",
        _BETA_CHAT: "Completions",
        _COMPLETIONS: "Completions",
        _EMBEDDINGS: "Embeddings",
        _RESPONSES: "Responses",
    }
    return tuple(
        Method(module, prefix + classes[module], name, api, operation, is_async=bool(prefix))
        for module, name, api, operation in table
        for prefix in ("", "Async")
    )


_RAW_HEADER = "X-Stainless-Raw-Response"
_OPENAI_HOST = "api.openai.com"
# Scalar request parameters worth charting; content-bearing ones (messages, input,
# instructions, metadata, user) are deliberately absent.
_PARAMS = {
    "temperature": "temperature",
    "top_p": "top_p",
    "n": "n",
    "seed": "seed",
    "max_tokens": "max_tokens",
    "max_completion_tokens": "max_tokens",
    "max_output_tokens": "max_tokens",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
    "logprobs": "logprobs",
    "top_logprobs": "top_logprobs",
    "reasoning_effort": "reasoning_effort",
    "service_tier": "service_tier",
    "parallel_tool_calls": "parallel_tool_calls",
    "store": "store",
    "verbosity": "verbosity",
    "truncation": "truncation",
    "max_tool_calls": "max_tool_calls",
    "dimensions": "dimensions",
    "encoding_format": "encoding_format",
    "background": "background",
}


_PARAM_NAMES = frozenset(_PARAMS)


class _Request:
    """What must be read from the request on the call path: the caller may mutate it after."""

    __slots__ = ("count", "kwargs", "last", "raw")

    def __init__(self, kwargs: dict[str, Any], count: int | None, last: Any, raw: Any) -> None:
        self.kwargs = kwargs
        self.count = count
        self.last = last
        self.raw = raw


def _begin(call: Call, instance: Any, kwargs: dict[str, Any]) -> None:
    items = kwargs.get("messages")
    if items is None:
        items = kwargs.get("input")
        if items is None:
            items = kwargs.get("prompt")
    count: int | None = None
    last = None
    if isinstance(items, (list, tuple)):
        count = len(items)
        last = items[-1] if items else None
    elif isinstance(items, str):
        count, last = 1, items
    headers = kwargs.get("extra_headers")
    raw = headers.get(_RAW_HEADER) if isinstance(headers, Mapping) else None
    call.request = _Request(kwargs, count, last, raw)
    if kwargs.get("stream") is True:
        call.stream = True
        call.acc = _StreamState(chat=call.method.operation == "chat_completion")
        call.fold = _FOLDS[call.method.operation]
        if raw is None and call.method.operation in ("chat_completion", "completion"):
            _ask_for_usage(call, instance, kwargs)


def _ask_for_usage(call: Call, instance: Any, kwargs: dict[str, Any]) -> None:
    """On OpenAI's own API, request the usage chunk and hide it from the caller.

    Other hosts (Azure, vLLM, proxies) may reject unknown options: never touch theirs.
    """
    options = kwargs.get("stream_options")
    if isinstance(options, Mapping):
        if "include_usage" in options:
            return
        options = dict(options)
    else:
        options = {}
    if _host(instance) != _OPENAI_HOST:
        return
    options["include_usage"] = True
    kwargs["stream_options"] = options
    call.acc.hide_usage = True


def _host(instance: Any) -> str | None:
    try:
        return str(instance._client.base_url.host) or None
    except Exception:
        return None


# -- results -------------------------------------------------------------------


_stream_classes: tuple[type, type] | None = None


def _sdk_streams() -> tuple[type, type]:
    """openai's (Stream, AsyncStream), imported on first use.

    Not at module level: this module can be imported (directly, or by the import hook
    while `openai` itself is still initialising) before the SDK is usable.
    """
    global _stream_classes
    if _stream_classes is None:
        from openai import AsyncStream, Stream

        _stream_classes = (Stream, AsyncStream)
    return _stream_classes


def _on_result(call: Call, result: Any) -> Any:
    Stream, AsyncStream = _sdk_streams()
    if isinstance(result, Stream):
        call.response = result
        return _streams.TrackedStream(result, call)
    if isinstance(result, AsyncStream):
        call.response = result
        return _streams.TrackedAsyncStream(result, call)
    if call.request.raw is not None and hasattr(result, "http_response"):
        return _raw_response(call, result)
    call.finish(response=result)
    return result


def _raw_response(call: Call, raw: Any) -> Any:
    """`.with_raw_response` / `.with_streaming_response`: observe what the caller parses."""
    call.response = raw
    if not call.stream and call.request.raw != "stream":
        # Raw, non-streamed: the body is already read; the event reads it off the path.
        call.finish(response=raw)
        return raw
    proxy_class = _AsyncRawResponse if _is_coroutine_function(type(raw).parse) else _RawResponse
    proxy = proxy_class(raw, call)
    _streams.watch(proxy, call)
    return proxy


def _is_coroutine_function(func: Any) -> bool:
    return inspect.iscoroutinefunction(func)


class _RawResponse(_streams.ObjectProxy):
    def __init__(self, wrapped: Any, call: Call) -> None:
        super().__init__(wrapped)
        self._self_call = call
        self._self_stream: Any = None

    def _self_parsed(self, result: Any) -> Any:
        Stream, AsyncStream = _sdk_streams()
        if isinstance(result, (Stream, AsyncStream)):
            if self._self_stream is None or self._self_stream.__wrapped__ is not result:
                self._self_stream = _streams.track_stream(
                    result, self._self_call, isinstance(result, AsyncStream)
                )
            return self._self_stream
        self._self_call.finish(response=result)
        return result

    def parse(self, *args: Any, **kwargs: Any) -> Any:
        return self._self_parsed(self.__wrapped__.parse(*args, **kwargs))

    def close(self) -> Any:
        try:
            return self.__wrapped__.close()
        finally:
            self._self_call.finish()


class _AsyncRawResponse(_RawResponse):
    async def parse(self, *args: Any, **kwargs: Any) -> Any:
        return self._self_parsed(await self.__wrapped__.parse(*args, **kwargs))

    async def close(self) -> Any:
        try:
            return await self.__wrapped__.close()
        finally:
            self._self_call.finish()


# -- event properties (off the call path) ---------------------------------------


def _properties(call: Call) -> dict[str, Any]:
    request: _Request = call.request
    kwargs = request.kwargs
    props: dict[str, Any] = {"model": as_str(kwargs.get("model"))}
    client = getattr(call.instance, "_client", None)
    props["server_host"] = _host(call.instance)
    if _is_azure(client, props["server_host"]):
        props["provider"] = "azure_openai"
    for name in _PARAM_NAMES.intersection(kwargs):
        value = kwargs[name]
        if is_scalar(value):
            props.setdefault(_PARAMS[name], value)
    operation = call.method.operation
    if operation == "embedding":
        props["input_count"] = request.count
    else:
        props["message_count"] = request.count
        props["last_message_role"] = _role(request.last)
    props["request_id"] = _request_id(call)
    if call.error is not None:
        props["http_status"] = as_int(getattr(call.error, "status_code", None))
        props["request_id"] = props["request_id"] or as_str(getattr(call.error, "request_id", None))
        return props
    body = _stream_body(call.acc, operation) if call.stream else _body(call.response)
    if body is not None:
        _read_body(body, operation, props)
    return props


def _role(last: Any) -> str | None:
    if isinstance(last, str):
        return "user"
    return as_str(get(last, "role"))


def _is_azure(client: Any, host: str | None) -> bool:
    if client is not None and type(client).__name__ in ("AzureOpenAI", "AsyncAzureOpenAI"):
        return True
    return bool(host) and str(host).endswith((".openai.azure.com", ".cognitiveservices.azure.com"))


def _body(response: Any) -> Any:
    """The response as an SDK object, or as decoded JSON for a raw response."""
    http = getattr(response, "http_response", None)
    if http is None:
        return response
    try:
        return json.loads(http.content)
    except Exception:
        return None  # body not read by the caller, or not JSON


def _request_id(call: Call) -> str | None:
    response = call.response
    rid = as_str(getattr(response, "_request_id", None)) or as_str(getattr(response, "request_id", None))
    if rid:
        return rid
    http = getattr(response, "http_response", None) or getattr(response, "response", None)
    headers = getattr(http, "headers", None)
    try:
        return as_str(headers.get("x-request-id")) if headers is not None else None
    except Exception:
        return None


def _read_body(body: Any, operation: str, props: dict[str, Any]) -> None:
    props["model"] = as_str(get(body, "model")) or props.get("model")
    _read_usage(get(body, "usage"), props)
    if operation == "response":
        props["finish_reason"] = as_str(path(body, "incomplete_details", "reason")) or as_str(
            get(body, "status")
        )
        output = seq(get(body, "output"))
        props["tool_call_count"] = sum(1 for item in output if str(get(item, "type") or "").endswith("_call"))
        texts = [
            as_str(get(part, "text")) or ""
            for item in output
            if get(item, "type") == "message"
            for part in seq(get(item, "content"))
            if get(part, "type") == "output_text"
        ]
    else:
        choices = seq(get(body, "choices"))
        first = choices[0] if choices else None
        props["finish_reason"] = as_str(get(first, "finish_reason"))
        if operation == "chat_completion":
            props["tool_call_count"] = sum(len(seq(path(c, "message", "tool_calls"))) for c in choices)
            texts = [as_str(path(first, "message", "content")) or ""]
        else:
            texts = [as_str(get(first, "text")) or ""]
    if operation != "embedding":
        props["response_preview"] = preview(texts)


def _read_usage(usage: Any, props: dict[str, Any]) -> None:
    # Chat/completions and the Responses API name the same counts differently. A
    # reported 0 is a real value: the first name present wins, not the first truthy one.
    props["input_tokens"] = first_int(usage, ("prompt_tokens",), ("input_tokens",))
    props["output_tokens"] = first_int(usage, ("completion_tokens",), ("output_tokens",))
    props["total_tokens"] = first_int(usage, ("total_tokens",))
    props["cached_input_tokens"] = first_int(
        usage, ("prompt_tokens_details", "cached_tokens"), ("input_tokens_details", "cached_tokens")
    )
    props["reasoning_tokens"] = first_int(
        usage,
        ("completion_tokens_details", "reasoning_tokens"),
        ("output_tokens_details", "reasoning_tokens"),
    )


class _StreamState:
    """What a stream's chunks say, folded as they pass (see `Call.fold`)."""

    __slots__ = ("chars", "chat", "final", "finish", "hide_usage", "model", "parts", "tool_calls", "usage")

    def __init__(self, chat: bool) -> None:
        self.chat = chat
        self.model: Any = None
        self.usage: Any = None
        self.finish: Any = None
        self.final: Any = None  # Responses API: the response of its final event
        self.parts: list[str] = []
        self.chars = 0
        self.tool_calls: set[tuple[Any, Any]] = set()
        self.hide_usage = False  # usage was requested by us: its chunk is not the caller's


# The folds run on the caller's path once per chunk: plain attribute reads of the SDK's
# parsed chunk (whose optional fields default to None), nothing more. A chunk of another
# shape raises, which only stops folding for that stream (see `_streams`).


def _fold_choices(acc: _StreamState, chunk: Any) -> bool:
    """Chat and legacy completion chunks: `choices[].delta.content` or `choices[].text`."""
    if acc.model is None:
        acc.model = chunk.model
    usage = chunk.usage
    if usage is not None:
        acc.usage = usage
    choices = chunk.choices
    if not choices:
        return usage is not None and acc.hide_usage
    for choice in choices:
        if acc.chat:
            delta = choice.delta
            if delta.tool_calls:
                for tool_call in delta.tool_calls:
                    acc.tool_calls.add((choice.index, tool_call.index))
            text = delta.content
        else:
            text = choice.text
        if choice.index:
            continue  # the preview and finish reason are choice 0's
        if choice.finish_reason is not None:
            acc.finish = choice.finish_reason
        if text and acc.chars < PREVIEW_CHARS:
            acc.parts.append(text)
            acc.chars += len(text)
    return False


_FINAL_RESPONSE_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})


def _fold_response(acc: _StreamState, event: Any) -> bool:
    kind = event.type
    if kind == "response.output_text.delta":
        if acc.chars < PREVIEW_CHARS:
            acc.parts.append(event.delta)
            acc.chars += len(event.delta)
    elif kind in _FINAL_RESPONSE_EVENTS:
        acc.final = event.response
    elif kind == "response.created":
        acc.model = event.response.model
    return False


_FOLDS = {
    "chat_completion": _fold_choices,
    "completion": _fold_choices,
    "response": _fold_response,
    "embedding": None,
}


def _stream_body(acc: _StreamState, operation: str) -> Any:
    """A streamed call's folded state, in the shape of a non-streamed body."""
    text = "".join(acc.parts)
    if operation == "response":
        if acc.final is not None:
            return acc.final
        # Ended before its final event: what was seen so far.
        return {
            "model": acc.model,
            "output": [{"type": "message", "content": [{"type": "output_text", "text": text}]}],
        }
    message = {"content": text, "tool_calls": [None] * len(acc.tool_calls)}
    return {
        "model": acc.model,
        "usage": acc.usage,
        "choices": [{"finish_reason": acc.finish, "message": message, "text": text}],
    }


def _secrets(call: Call) -> Iterable[str]:
    client = getattr(call.instance, "_client", None)
    if client is None:
        return []
    values = [
        getattr(client, name, None) for name in ("api_key", "organization", "project", "webhook_secret")
    ]
    values.append(getattr(client, "_azure_ad_token", None))
    for headers in (getattr(client, "_custom_headers", None), (call.request.kwargs.get("extra_headers"))):
        if isinstance(headers, Mapping):
            values.extend(v for k, v in headers.items() if _is_credential_header(str(k)))
    return [v for v in values if isinstance(v, str)]


def _is_credential_header(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in ("auth", "key", "token", "secret", "cookie"))


def _user_id(call: Call) -> str | None:
    kwargs = call.request.kwargs
    return as_str(kwargs.get("user")) or as_str(kwargs.get("safety_identifier"))


PROVIDER = Provider(
    name="openai",
    methods=_methods(),
    begin=_begin,
    on_result=_on_result,
    properties=_properties,
    secrets=_secrets,
    user_id=_user_id,
)
