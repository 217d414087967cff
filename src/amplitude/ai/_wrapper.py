"""The one wrapper every tracked SDK method runs through, sync or async.

While no Amplitude client is active it is a pass-through. Otherwise it records the
call's start, lets the provider snapshot the request, calls the SDK, and ends the
call with the result or exception; streams and deferred responses are handed back
as transparent proxies that end the call later. The SDK's own return value and
exception reach the caller unchanged: tracking failures are logged, never raised.
"""

from __future__ import annotations

from typing import Any, Callable

from . import _state
from ._call import Call
from ._log import report_failure
from ._provider import Method, Provider

_active = _state.active

Wrapper = Callable[[Callable[..., Any], Any, "tuple[Any, ...]", "dict[str, Any]"], Any]


class Switch:
    """Turns one installed wrapper off when it cannot be unpatched (it is not outermost)."""

    __slots__ = ("on",)

    def __init__(self) -> None:
        self.on = True


def _begin(provider: Provider, method: Method, instance: Any, kwargs: dict[str, Any]) -> Call | None:
    binding = _active()
    if binding is None:
        return None
    try:
        call = Call(provider, method, binding, instance)
        provider.begin(call, instance, kwargs)
        return call
    except Exception as exc:
        report_failure(f"starting to track {method.api}", exc)
        return None


def _end(call: Call, result: Any) -> Any:
    try:
        return call.provider.on_result(call, result)
    except Exception as exc:
        report_failure(f"observing the result of {call.method.api}", exc)
        call.finish(response=result)
        return result


def make_wrapper(provider: Provider, method: Method, switch: Switch) -> Wrapper:
    if method.is_async:

        async def async_wrapper(
            wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> Any:
            call = _begin(provider, method, instance, kwargs) if switch.on else None
            if call is None:
                return await wrapped(*args, **kwargs)
            try:
                result = await wrapped(*args, **kwargs)
            except BaseException as exc:
                call.finish(error=exc)
                raise
            return _end(call, result)

        return async_wrapper

    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        call = _begin(provider, method, instance, kwargs) if switch.on else None
        if call is None:
            return wrapped(*args, **kwargs)
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            call.finish(error=exc)
            raise
        return _end(call, result)

    return wrapper
