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

_scoped = _state.scoped_var()


class Switch:
    """Turns one installed wrapper off when it cannot be unpatched (it is not outermost);
    remembers what it replaced."""

    __slots__ = ("on", "original")

    def __init__(self, original: Any) -> None:
        self.on = True
        self.original = original


# On the call path, each Python-level call costs ~0.3 us where it runs (cold, after the
# SDK's work): `_state.active()` is inlined in `_begin`, and a result is handed to the
# provider directly, with only its failure handled by a function (`_not_observed`).


def _begin(provider: Provider, method: Method, instance: Any, kwargs: dict[str, Any]) -> Call | None:
    binding = _scoped.get()
    if binding is None:
        binding = _state._process
        if binding is None:
            return None
    try:
        call = Call(provider, method, binding, instance)
        provider.begin(call, instance, kwargs)
        return call
    except Exception as exc:
        report_failure(f"starting to track {method.api}", exc)
        return None


def _not_observed(call: Call, result: Any, exc: Exception) -> Any:
    report_failure(f"observing the result of {call.method.api}", exc)
    call.finish(response=result)
    return result


def make_wrapper(
    provider: Provider, method: Method, switch: Switch, target: Callable[..., Any]
) -> Callable[..., Any]:
    """The function that replaces an SDK method: `target(instance, *args, **kwargs)` calls
    the method it replaces (for a classmethod, `instance` is the class)."""
    on_result = provider.on_result
    if method.is_async:

        async def tracked_async(self: Any, *args: Any, **kwargs: Any) -> Any:
            call = _begin(provider, method, self, kwargs) if switch.on else None
            if call is None:
                return await target(self, *args, **kwargs)
            try:
                result = await target(self, *args, **kwargs)
            except BaseException as exc:
                call.finish(error=exc)
                raise
            try:
                return on_result(call, result)
            except Exception as exc:
                return _not_observed(call, result, exc)

        return tracked_async

    def tracked(self: Any, *args: Any, **kwargs: Any) -> Any:
        call = _begin(provider, method, self, kwargs) if switch.on else None
        if call is None:
            return target(self, *args, **kwargs)
        try:
            result = target(self, *args, **kwargs)
        except BaseException as exc:
            call.finish(error=exc)
            raise
        try:
            return on_result(call, result)
        except Exception as exc:
            return _not_observed(call, result, exc)

    return tracked
