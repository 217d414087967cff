"""OpenAI Python SDK before 1.0: `openai.ChatCompletion.create(...)` and friends.

Patched: `ChatCompletion`, `Completion` and `Embedding` `create` / `acreate`, the
classmethods in each class's own ``__dict__``, which are what users call. They reach
the HTTP request through their base class's `EngineAPIResource.create` (called via
`super()`, in a retry loop while a model warms up), which is left alone: one user
call is tracked once, however many attempts it takes.

Configuration is module-level (`openai.api_key`, `api_base`, `api_type`) or per call
(`api_key=`, `api_base=`, `api_type=`, `engine=` / `deployment_id=` for Azure); it is
read per call. Credentials are only ever used to scrub events. Responses and stream
chunks are `OpenAIObject`s (dicts): the v1 provider's readers of the OpenAI wire format
read them as they are.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from .. import _streams
from .._call import Call
from .._provider import Method, Provider
from ._http import credential_header_values
from ._read import as_int, as_str
from .openai import (
    AZURE_PROVIDER,
    OPENAI_HOST,
    Request,
    ask_for_usage,
    is_azure_host,
    request_properties,
    response_properties,
    start_stream,
    user_id,
)

_RESOURCES = (
    ("openai.api_resources.chat_completion", "ChatCompletion", "chat_completion"),
    ("openai.api_resources.completion", "Completion", "completion"),
    ("openai.api_resources.embedding", "Embedding", "embedding"),
)
_AZURE_API_TYPES = frozenset({"azure", "azure_ad", "azuread"})


def _methods() -> tuple[Method, ...]:
    return tuple(
        Method(module, cls, name, f"{cls}.{name}", operation, is_async=name == "acreate")
        for module, cls, operation in _RESOURCES
        for name in ("create", "acreate")
    )


class _LegacyRequest(Request):
    """Also the module-level configuration in force when the call was made."""

    __slots__ = ("api_base", "api_type", "credentials")

    def __init__(self, kwargs: dict[str, Any], sdk: Any) -> None:
        super().__init__(kwargs, None)
        self.api_base = kwargs.get("api_base") or getattr(sdk, "api_base", None)
        self.api_type = kwargs.get("api_type") or getattr(sdk, "api_type", None)
        self.credentials = (getattr(sdk, "api_key", None), getattr(sdk, "organization", None))


def _begin(call: Call, instance: Any, kwargs: dict[str, Any]) -> None:
    request = _LegacyRequest(kwargs, sys.modules.get("openai"))
    call.request = request
    # The legacy SDK sends any extra keyword as a body field, so asking for usage needs
    # no support from it; other hosts are left alone as on v1.
    if start_stream(call, kwargs) and not _is_azure(request) and _hostname(request.api_base) == OPENAI_HOST:
        ask_for_usage(call, kwargs)


def _on_result(call: Call, result: Any) -> Any:
    # `stream=True` returns a generator (an async one from `acreate`) of chunks.
    if call.stream and not isinstance(result, dict):
        return _streams.track_stream(result, call)
    call.finish(response=result)
    return result


def _properties(call: Call) -> dict[str, Any]:
    request: _LegacyRequest = call.request
    props = request_properties(call)
    props["server_host"] = _hostname(request.api_base)
    if _is_azure(request):
        kwargs = request.kwargs
        props["provider"] = AZURE_PROVIDER
        # As the SDK resolves it: `engine` wins over `deployment_id`.
        props["deployment"] = as_str(kwargs.get("engine")) or as_str(kwargs.get("deployment_id"))
    error = call.error
    if error is not None:
        props["http_status"] = as_int(getattr(error, "http_status", None))
        props["request_id"] = as_str(getattr(error, "request_id", None)) or _header(
            getattr(error, "headers", None), "x-request-id"
        )
        return props
    response_properties(call, props)
    return props


def _is_azure(request: _LegacyRequest) -> bool:
    api_type = request.api_type
    return (isinstance(api_type, str) and api_type.lower() in _AZURE_API_TYPES) or is_azure_host(
        _hostname(request.api_base)
    )


def _hostname(url: Any) -> str | None:
    try:
        return urlsplit(url).hostname if isinstance(url, str) else None
    except ValueError:
        return None


def _header(headers: Any, name: str) -> str | None:
    try:
        return as_str(headers.get(name)) if headers is not None else None
    except Exception:
        return None


def _secrets(call: Call) -> Iterable[str]:
    request: _LegacyRequest = call.request
    kwargs = request.kwargs
    sdk = sys.modules.get("openai")
    values = [
        kwargs.get("api_key"),
        kwargs.get("organization"),
        *request.credentials,
        getattr(sdk, "api_key", None),
        getattr(sdk, "azure_ad_token", None),
        *credential_header_values(kwargs.get("headers")),
    ]
    return [v for v in values if isinstance(v, str)]


PROVIDER = Provider(
    name="openai",
    methods=_methods(),
    begin=_begin,
    on_result=_on_result,
    properties=_properties,
    secrets=_secrets,
    user_id=user_id,
)
