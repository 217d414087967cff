"""OpenAI Python SDK, v1 and later (`openai.OpenAI`, `AsyncOpenAI`, Azure clients).

Patched: chat.completions.create/parse, completions.create, embeddings.create,
responses.create/parse, sync and async. Everything else reaches these methods:
`.with_raw_response` / `.with_streaming_response` call them with a marker header and
get a raw response object back, and the `.stream(...)` helpers call `create(stream=True)`.

Azure clients are reported as `azure_openai` with their deployment; any other base URL
(vLLM, Ollama, LiteLLM, OpenRouter...) stays `openai` with its `server_host`. The readers
of the OpenAI wire format (requests, responses, stream chunks) also serve the pre-1.0
SDK's provider (`openai_legacy`): the HTTP API is the same.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote

from .. import _streams
from .._call import Call
from .._provider import Method, Provider
from ._http import (
    base_url,
    body,
    credential_header_values,
    exchange,
    host,
    http_response,
    raw_response,
    sent_headers,
)
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
_REQUEST_ID_HEADER = "x-request-id"
OPENAI_HOST = "api.openai.com"
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


# The request argument that carries the conversation, by API; counted on the call path,
# not kept. A kept conversation would live on until its event is built, and objects kept
# alive that long make the app's garbage collector work harder (see `_read_parsed`).
_CONTENT_ARGS = ("messages", "input", "prompt")


# The call path (`_begin`, `Request`, `_on_result`, `_read_parsed`) runs cold, after the
# SDK's millions of instructions: there each line costs several times what it does in a
# warm loop, and each Python-level call ~0.3 us. So it calls no helpers of ours where it
# can do without, and leaves checks and conversions to the dispatch thread (together: our
# code in place went from ~9 to ~6.6 us a call, benchmarks/overhead.py).


class Request:
    """What must be read from the request on the call path: the caller may mutate it after."""

    __slots__ = ("base_url", "count", "kwargs", "raw", "role")

    def __init__(self, kwargs: dict[str, Any], raw: Any) -> None:
        # The client's, as of the call (`_begin` sets it): the client may be pointed
        # elsewhere before the event is built.
        self.base_url: Any = None
        kept = kwargs.copy()
        items = None
        for name in _CONTENT_ARGS:  # none is kept; the first one given is counted
            value = kept.pop(name, None)
            if items is None:
                items = value
        self.kwargs = kept
        self.count: int | None = None
        self.role: Any = None
        if isinstance(items, (list, tuple)):
            self.count = len(items)
            if items:
                last = items[-1]
                # Read as is: `request_properties` checks it, off the path.
                self.role = last.get("role") if type(last) is dict else _role(last)
        elif isinstance(items, str):
            self.count, self.role = 1, "user"
        self.raw = raw


def _begin(call: Call, instance: Any, kwargs: dict[str, Any]) -> None:
    headers = kwargs.get("extra_headers")
    # `is not None` first: an isinstance() check against an ABC costs ~0.3 us per call.
    raw = headers.get(_RAW_HEADER) if headers is not None and isinstance(headers, Mapping) else None
    request = call.request = Request(kwargs, raw)
    try:  # noqa: SIM105 (contextlib.suppress: a call and a context manager on this path)
        request.base_url = instance._client._base_url  # `_http.base_url`, without a call
    except AttributeError:
        pass  # `_base_url` reads it as `_http.base_url` does, when the event is built
    if (
        kwargs.get("stream") is True  # `start_stream` checks it too; this spares the call
        and start_stream(call, kwargs)
        and raw is None
        and host(_base_url(call)) == OPENAI_HOST
        and _takes_stream_options(type(instance), call.method.name)
    ):
        ask_for_usage(call, kwargs)


def start_stream(call: Call, kwargs: dict[str, Any]) -> bool:
    """Set up folding for a streamed call; True when tracking may ask for its usage chunk.

    Only chat and completion streams report usage in a chunk of their own, and only a
    caller who said nothing about it leaves the choice to us.
    """
    if kwargs.get("stream") is not True:
        return False
    operation = call.method.operation
    call.stream = True
    call.acc = _StreamState(chat=operation == "chat_completion")
    call.fold = _FOLDS[operation]
    options = kwargs.get("stream_options")
    # `is not None` first: an isinstance() check against an ABC costs ~0.3 us.
    decided = options is not None and isinstance(options, Mapping) and "include_usage" in options
    return operation in ("chat_completion", "completion") and not decided


def ask_for_usage(call: Call, kwargs: dict[str, Any]) -> None:
    """Request the usage chunk (OpenAI's own API only) and hide it from the caller.

    Other hosts (Azure, vLLM, proxies) may reject unknown options: callers check the host.
    """
    options = kwargs.get("stream_options")
    options = dict(options) if isinstance(options, Mapping) else {}
    options["include_usage"] = True
    kwargs["stream_options"] = options
    call.acc.hide_usage = True


_stream_options_support: dict[tuple[type, str], bool] = {}


def _takes_stream_options(cls: type, name: str) -> bool:
    """Whether `cls.name` accepts `stream_options` (openai >= 1.26): an older SDK would
    raise TypeError on the caller's call if we added it."""
    key = (cls, name)
    known = _stream_options_support.get(key)
    if known is None:
        try:
            known = "stream_options" in inspect.signature(getattr(cls, name)).parameters
        except Exception:
            known = False  # cannot tell: leave the request alone
        _stream_options_support[key] = known
    return known


def _base_url(call: Call) -> Any:
    """The base URL of the client the call was made with, as of the call."""
    url = call.request.base_url
    return url if url is not None else base_url(call.instance)


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
    streams = _stream_classes if _stream_classes is not None else _sdk_streams()
    if isinstance(result, streams):
        call.response = exchange(result, _REQUEST_ID_HEADER)
        if isinstance(result, streams[0]):
            return _streams.TrackedStream(result, call)
        return _streams.TrackedAsyncStream(result, call)
    if call.request.raw is not None and hasattr(result, "http_response"):
        return raw_response(call, result, _track_stream)
    read = _read_parsed(result, call.method.operation)
    if read is None:
        call.finish(response=result)
    else:
        call.acc = read
        call.finish()
    return result


def _read_parsed(result: Any, operation: str) -> tuple[Any, ...] | None:
    """The values a parsed response's event needs, read as its call ends (`_read_values`
    makes them properties off the path); None to keep the whole response instead, read off
    the path by `_read_body`. Both give the same properties: a property test holds them
    equal, whatever the server sent.

    Why read here: a kept response would stay alive until its event is built, up to a
    batch delay later, and objects kept that long survive the app's young-generation
    garbage collections and bring on older ones. Kept instead: a tuple of raw values,
    normally strings, ints and None, which the collector stops tracking at its first look
    (the values copied in the response's shape, as kept before, left ~5 tracked objects a
    call). Raw: checks and conversions are `_read_values`' (see above). Plain reads of a
    pydantic v2 model's `__dict__`: a name not in it is one its class does not declare,
    which `_read_usage` reads as None too. Kept whole: embeddings holding fields their
    class does not declare, choices lacking what is read of them, Responses API results.
    """
    if operation == "response":
        return None
    try:
        fields = result.__dict__
        usage = fields.get("usage")
        if usage is None:
            prompt = completion = total = cached = reasoning = None
        elif getattr(usage, "__pydantic_extra__", True):
            # Fields its class does not declare (SDKs before ~1.45 hold the details the API
            # sends today that way), or no pydantic v2 model: read as `_read_usage` reads
            # them, names it falls back to included (~2 us more, on those SDKs only).
            read: dict[str, Any] = {}
            _read_usage(usage, read)
            prompt, completion, total = read["input_tokens"], read["output_tokens"], read["total_tokens"]
            cached, reasoning = read["cached_input_tokens"], read["reasoning_tokens"]
        else:
            counts = usage.__dict__
            prompt = counts.get("prompt_tokens")
            completion = counts.get("completion_tokens")
            total = counts.get("total_tokens")
            cached = getattr(counts.get("prompt_tokens_details"), "cached_tokens", None)
            reasoning = getattr(counts.get("completion_tokens_details"), "reasoning_tokens", None)
        finish = tool_calls = text = None
        if operation == "embedding":
            if getattr(result, "__pydantic_extra__", True):
                return None
        else:
            choices = fields.get("choices")
            if not isinstance(choices, list):
                choices = []  # as `_read_body` reads it
            chat = operation == "chat_completion"
            if choices:
                first = choices[0]
                finish = first.finish_reason
                text = first.message.content if chat else first.text
                if type(text) is str:
                    text = text[:PREVIEW_CHARS]  # the preview is all that is kept of it
            if chat:
                tool_calls = 0
                for choice in choices:
                    # Not declared before openai 1.1: read as the whole response would be.
                    calls = getattr(choice.message, "tool_calls", None)
                    if isinstance(calls, (list, tuple)):
                        tool_calls += len(calls)
        return (
            fields.get("model"),
            getattr(result, "_request_id", None),
            prompt,
            completion,
            total,
            cached,
            reasoning,
            finish,
            tool_calls,
            text,
        )
    except Exception:
        return None


def _read_values(read: tuple[Any, ...], props: dict[str, Any]) -> None:
    """The event properties of what `_read_parsed` read, as `_read_body` reads them."""
    model, request_id, prompt, completion, total, cached, reasoning, finish, tool_calls, text = read
    props["model"] = as_str(model) or props.get("model")
    props["request_id"] = as_str(request_id) or None
    props["input_tokens"] = as_int(prompt)
    props["output_tokens"] = as_int(completion)
    props["total_tokens"] = as_int(total)
    props["cached_input_tokens"] = as_int(cached)
    props["reasoning_tokens"] = as_int(reasoning)
    props["finish_reason"] = as_str(finish)
    props["tool_call_count"] = tool_calls
    props["response_preview"] = preview([as_str(text) or ""])


def _track_stream(call: Call, stream: Any) -> Any:
    call.response = exchange(stream, _REQUEST_ID_HEADER)
    return _streams.track_stream(stream, call)


# -- event properties (off the call path) ---------------------------------------


def _properties(call: Call) -> dict[str, Any]:
    props = request_properties(call)
    client = getattr(call.instance, "_client", None)
    props["server_host"] = server = host(_base_url(call))
    if _is_azure(client, server):
        props["provider"] = AZURE_PROVIDER
        props["deployment"] = _deployment(call)
    props["request_id"] = _request_id(call)
    if call.error is not None:
        return props
    response_properties(call, props)
    return props


def request_properties(call: Call) -> dict[str, Any]:
    """What the request says: the requested model, charted parameters, message counts."""
    request: Request = call.request
    kwargs = request.kwargs
    props: dict[str, Any] = {"model": as_str(kwargs.get("model"))}
    # `extra_body` is merged over the keyword arguments into the request body: it wins, and
    # is how callers of an older SDK send parameters their version has no argument for.
    extra_body = kwargs.get("extra_body")
    for fields in (extra_body, kwargs) if isinstance(extra_body, Mapping) else (kwargs,):
        for name in _PARAM_NAMES.intersection(fields):
            value = fields[name]
            if is_scalar(value):
                props.setdefault(_PARAMS[name], value)
    if call.method.operation == "embedding":
        props["input_count"] = request.count
    else:
        props["message_count"] = request.count
        props["last_message_role"] = as_str(request.role)
    return props


def response_properties(call: Call, props: dict[str, Any]) -> None:
    """What a successful call's response (or its folded stream) says."""
    operation = call.method.operation
    if call.stream:
        found = _stream_body(call.acc, operation)
    elif call.acc is not None:  # read as the call ended (`_read_parsed`)
        _read_values(call.acc, props)
        return
    else:
        found = body(call.response)
    if found is not None:
        _read_body(found, operation, props)


def _role(last: Any) -> str | None:
    if isinstance(last, str):
        return "user"
    return as_str(get(last, "role"))


AZURE_PROVIDER = "azure_openai"
AZURE_HOST_SUFFIXES = (".openai.azure.com", ".cognitiveservices.azure.com")
_AZURE_CLIENTS = frozenset({"AzureOpenAI", "AsyncAzureOpenAI"})
# Endpoints the Azure client routes through `/deployments/<name>/`; the others (the
# Responses API) name the deployment in the request's `model`.
_DEPLOYMENT_OPERATIONS = frozenset({"chat_completion", "completion", "embedding"})
_DEPLOYMENT_SEGMENT = re.compile(r"/deployments/([^/]+)")


def _is_azure(client: Any, host: str | None) -> bool:
    if client is not None and any(cls.__name__ in _AZURE_CLIENTS for cls in type(client).__mro__):
        return True
    return is_azure_host(host)


def is_azure_host(host: str | None) -> bool:
    return bool(host) and str(host).endswith(AZURE_HOST_SUFFIXES)


def _deployment(call: Call) -> str | None:
    """The Azure deployment the request went to, as the SDK routes it: the client's base
    URL names it, else the Azure client puts the `model` argument in the URL."""
    if call.method.operation in _DEPLOYMENT_OPERATIONS:
        try:
            match = _DEPLOYMENT_SEGMENT.search(str(_base_url(call).path))
        except Exception:
            match = None
        if match:
            return unquote(match.group(1))
    return as_str(call.request.kwargs.get("model"))


def _request_id(call: Call) -> str | None:
    for outcome in (call.response, call.error):
        if outcome is None:
            continue
        # Parsed models carry `_request_id` since openai 1.46, errors `request_id` since 1.2x;
        # before, only the HTTP response's headers have it.
        rid = as_str(get(outcome, "_request_id")) or as_str(get(outcome, "request_id"))
        if rid:
            return rid
        headers = getattr(http_response(outcome), "headers", None)
        try:
            rid = as_str(headers.get(_REQUEST_ID_HEADER)) if headers is not None else None
        except Exception:
            rid = None
        if rid:
            return rid
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
# parsed chunk, nothing more. Some fields may be missing: `usage` (chunk models before
# openai 1.26 have none) and the delta's `content` / `tool_calls` (the pre-1.0 SDK's
# chunks are dicts holding only the keys the server sent); a try costs nothing where they
# exist, unlike getattr() with a default. A chunk of another shape raises, which only
# stops folding for that stream (see `_streams`).


def _fold_choices(acc: _StreamState, chunk: Any) -> bool:
    """Chat and legacy completion chunks: `choices[].delta.content` or `choices[].text`."""
    if not acc.model:
        # Not `is None`: Azure opens with a content-filter chunk whose model is "".
        acc.model = getattr(chunk, "model", None)
    try:
        usage = chunk.usage
    except AttributeError:
        usage = None
    if usage is not None:
        acc.usage = usage
    choices = chunk.choices
    if not choices:
        return usage is not None and acc.hide_usage
    for choice in choices:
        if acc.chat:
            delta = choice.delta
            try:
                tool_calls, text = delta.tool_calls, delta.content
            except AttributeError:
                tool_calls, text = getattr(delta, "tool_calls", None), getattr(delta, "content", None)
            if tool_calls:
                for tool_call in tool_calls:
                    # A dict where the SDK's chunk model predates tool calls (openai 1.0).
                    acc.tool_calls.add((choice.index, get(tool_call, "index")))
        else:
            text = choice.text
        if choice.index:
            continue  # the preview and finish reason are choice 0's
        if choice.finish_reason is not None:
            acc.finish = choice.finish_reason
        # Some OpenAI-compatible servers stream content as a list of parts: no preview
        # then, but the rest of the stream (its usage) is still read.
        if text and acc.chars < PREVIEW_CHARS and isinstance(text, str):
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
    names = ("api_key", "admin_api_key", "organization", "project", "webhook_secret", "_azure_ad_token")
    values = [getattr(client, name, None) for name in names]
    for headers in (
        getattr(client, "_custom_headers", None),
        call.request.kwargs.get("extra_headers"),
        sent_headers(call),
    ):
        values.extend(credential_header_values(headers))
    return [v for v in values if isinstance(v, str)]


def user_id(call: Call) -> str | None:
    kwargs = call.request.kwargs
    return as_str(kwargs.get("user")) or as_str(kwargs.get("safety_identifier"))


PROVIDER = Provider(
    name="openai",
    methods=_methods(),
    begin=_begin,
    on_result=_on_result,
    properties=_properties,
    secrets=_secrets,
    user_id=user_id,
)
