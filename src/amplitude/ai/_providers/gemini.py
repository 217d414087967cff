"""Google Gen AI SDK (`google-genai`, `from google import genai`): Gemini API and Vertex AI.

Patched: `client.models.generate_content`, `generate_content_stream` and `embed_content`
and their `client.aio.models` twins. These public methods are the one place a user call
passes once: automatic function calling and automatic continuation loop over private
`_generate_content*` requests beneath them, and chats (`client.chats`) call them per
message. Nothing here imports the SDK: it is only read through the objects its methods
take and return.

`generate_content_stream` is a generator (an async generator once awaited): nothing is
sent before its first chunk is asked for, so an HTTP error surfaces mid-iteration, and
the call is timed from the method call, as the caller sees it.

Gemini's `prompt_token_count` already includes the cached tokens it reports apart
(`cached_content_token_count`), which is what the event's `input_tokens` means.
`candidates_token_count` leaves the thinking tokens out (`thoughts_token_count`, reported
as `reasoning_tokens`); `total_token_count` is Gemini's own and has both.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from enum import Enum
from typing import Any
from urllib.parse import urlsplit

from .. import _streams
from .._call import Call
from .._provider import Method, Provider
from ._http import credential_header_values
from ._read import PREVIEW_CHARS, as_int, as_str, get, is_scalar, path, preview, without

_MODULE = "google.genai.models"
_CHAT = "chat_completion"
_METHODS = (
    ("generate_content", _CHAT),
    ("generate_content_stream", _CHAT),
    ("embed_content", "embedding"),
)

# GenerateContentConfig / EmbedContentConfig field -> event property (the shared schema's
# name where Gemini's differs).
_PARAMS = {
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "seed": "seed",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
    "max_output_tokens": "max_tokens",
    "candidate_count": "n",
    "response_logprobs": "logprobs",
    "logprobs": "top_logprobs",
    "service_tier": "service_tier",
    "store": "store",
    "output_dimensionality": "dimensions",
}


def _methods() -> tuple[Method, ...]:
    return tuple(
        Method(_MODULE, prefix + "Models", name, f"models.{name}", operation, bool(prefix))
        for name, operation in _METHODS
        for prefix in ("", "Async")
    )


class _Request:
    """What must be read on the call path: automatic function calling appends the turns
    it runs to the caller's `contents` list."""

    __slots__ = ("count", "kwargs", "role")

    def __init__(self, kwargs: dict[str, Any], operation: str) -> None:
        self.kwargs = without(kwargs, ("contents",))
        contents = kwargs.get("contents")
        if operation == _CHAT:
            self.count, self.role = _messages(contents)
        else:
            # Each item of a list is embedded on its own.
            self.role = None
            self.count = None if contents is None else len(contents) if isinstance(contents, list) else 1


def _messages(contents: Any) -> tuple[int | None, str | None]:
    """Message count and last role as the SDK sends `contents`: a list's `Content`s each
    make one message, and each run of bare parts (strings, `Part`s, images) one user
    message; anything but a list is a single message."""
    if contents is None:
        return None, None
    if not isinstance(contents, (list, tuple)):
        return 1, as_str(get(contents, "role")) or "user"
    count = 0
    role: str | None = None
    in_parts = False
    for item in contents:
        if get(item, "parts") is not None or get(item, "role") is not None:
            count += 1
            role = as_str(get(item, "role")) or "user"
            in_parts = False
        elif not in_parts:
            count += 1
            role = "user"
            in_parts = True
    return count, role


def _begin(call: Call, instance: Any, kwargs: dict[str, Any]) -> None:
    call.request = _Request(kwargs, call.method.operation)
    if call.method.name == "generate_content_stream":
        call.stream = True
        call.acc = _Reply()
        call.fold = _fold


def _on_result(call: Call, result: Any) -> Any:
    if call.stream:
        return _streams.track_stream(result, call, call.method.is_async)
    call.finish(response=result)
    return result


# -- responses: a stream's chunks and a whole response read alike -----------------


class _Reply:
    __slots__ = ("chars", "finish_reason", "model", "parts", "response_id", "tool_calls", "usage")

    def __init__(self) -> None:
        self.model: Any = None
        self.response_id: Any = None
        self.usage: Any = None
        self.finish_reason: Any = None
        self.parts: list[str] = []
        self.chars = 0
        self.tool_calls = 0


def _fold(acc: _Reply, response: Any) -> bool:
    """One `GenerateContentResponse`: a stream chunk, or a whole response. A chunk's
    usage is cumulative, so the last one reported wins."""
    acc.model = response.model_version or acc.model
    acc.response_id = acc.response_id or getattr(response, "response_id", None)  # none in 1.0
    acc.usage = response.usage_metadata or acc.usage
    candidates = response.candidates
    if not candidates:
        return False
    candidate = candidates[0]
    if candidate.finish_reason is not None:
        acc.finish_reason = candidate.finish_reason
    content = candidate.content
    for part in (content.parts if content is not None else None) or ():
        if part.function_call is not None:
            acc.tool_calls += 1
        elif part.text and not part.thought and acc.chars < PREVIEW_CHARS:
            acc.parts.append(part.text)
            acc.chars += len(part.text)
    return False


# -- event properties (off the call path) ---------------------------------------


def _properties(call: Call) -> dict[str, Any]:
    request: _Request = call.request
    kwargs = request.kwargs
    config = kwargs.get("config")
    props: dict[str, Any] = {"model": _model_name(kwargs.get("model"))}
    if call.method.operation == _CHAT:
        props["message_count"] = request.count
        props["last_message_role"] = request.role
    else:
        props["input_count"] = request.count
    _read_params(config, props)
    props["server_host"] = _server_host(call, config)
    error = call.error
    if error is not None:
        # The SDK's APIError names its status `code`, where the core looks for `status_code`.
        status = as_int(getattr(error, "code", None))
        if status is not None and status >= 400:
            props["http_status"] = status
        return props
    if call.stream:
        _read_reply(call.acc, props)
    elif call.method.operation == _CHAT:
        if call.response is not None:
            reply = _Reply()
            _fold(reply, call.response)
            _read_reply(reply, props)
    else:
        _read_usage(get(call.response, "usage_metadata"), props)
    return props


def _model_name(model: Any) -> str | None:
    # The API answers with a bare `model_version`: the request's resource prefix goes too.
    name = as_str(model)
    return name.removeprefix("models/") if name else None


def _plain(value: Any) -> Any:
    """A scalar as the event carries it: the SDK's enums (str subclasses) by value."""
    if isinstance(value, Enum):
        value = value.value
    return value if is_scalar(value) else None


def _read_params(config: Any, props: dict[str, Any]) -> None:
    for field, name in _PARAMS.items():
        value = _plain(get(config, field))
        if value is not None:
            props[name] = value
    thinking = get(config, "thinking_config")
    props["thinking_budget_tokens"] = as_int(get(thinking, "thinking_budget"))
    level = _plain(get(thinking, "thinking_level"))
    props["reasoning_effort"] = level.lower() if isinstance(level, str) else None


def _read_reply(reply: _Reply, props: dict[str, Any]) -> None:
    props["model"] = as_str(reply.model) or props["model"]
    props["request_id"] = as_str(reply.response_id)
    finish = _plain(reply.finish_reason)
    props["finish_reason"] = finish if isinstance(finish, str) else None
    props["tool_call_count"] = reply.tool_calls
    props["response_preview"] = preview(reply.parts)
    _read_usage(reply.usage, props)


def _read_usage(usage: Any, props: dict[str, Any]) -> None:
    props["input_tokens"] = as_int(get(usage, "prompt_token_count"))
    props["cached_input_tokens"] = as_int(get(usage, "cached_content_token_count"))
    # Like OpenAI's and Anthropic's output counts, ours include the reasoning tokens;
    # Gemini reports them apart from the candidates'.
    candidates = as_int(get(usage, "candidates_token_count"))
    thoughts = as_int(get(usage, "thoughts_token_count"))
    props["output_tokens"] = candidates + (thoughts or 0) if candidates is not None else thoughts
    props["reasoning_tokens"] = thoughts
    props["total_tokens"] = as_int(get(usage, "total_token_count"))


def _api_client(call: Call) -> Any:
    return getattr(call.instance, "_api_client", None)


def _server_host(call: Call, config: Any) -> str | None:
    base_url = as_str(path(config, "http_options", "base_url"))
    if base_url is None:
        base_url = as_str(path(_api_client(call), "_http_options", "base_url"))
    with contextlib.suppress(ValueError):
        return urlsplit(base_url).hostname if base_url else None
    return None


def _secrets(call: Call) -> Iterable[str]:
    client = _api_client(call)
    values: list[Any] = [
        getattr(client, "api_key", None),
        path(getattr(client, "_credentials", None), "token"),  # Vertex AI's OAuth token
    ]
    config = call.request.kwargs.get("config")
    for headers in (path(client, "_http_options", "headers"), path(config, "http_options", "headers")):
        if isinstance(headers, Mapping):
            values += credential_header_values(headers)
    return [value for value in values if isinstance(value, str) and value]


PROVIDER = Provider(
    name="gemini",
    methods=_methods(),
    begin=_begin,
    on_result=_on_result,
    properties=_properties,
    secrets=_secrets,
)
