"""Installing and removing our wrappers on SDK classes, safely alongside others'.

We wrap the function in the class's own ``__dict__`` with a `wrapt.FunctionWrapper`
subclass, so instances created before or after keep working and `isinstance` is
untouched. Installing is idempotent (ours already anywhere in the wrapper chain: no
second wrap). Removing restores the exact object we replaced when ours is outermost;
when another instrumentation has wrapped over ours, ours is switched off instead, so
theirs keeps working.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import wrapt

from ._provider import Method, Provider
from ._wrapper import Switch, make_wrapper

_MAX_CHAIN = 32

if TYPE_CHECKING:
    FunctionWrapper = wrapt.FunctionWrapper[Any, Any]
else:  # wrapt 1 is not subscriptable
    FunctionWrapper = wrapt.FunctionWrapper


class TrackingWrapper(FunctionWrapper):
    """Marks a wrapper as ours, wherever it ends up in a chain of wrappers."""

    def __init__(self, wrapped: Any, provider: Provider, method: Method) -> None:
        switch = Switch()
        super().__init__(wrapped, make_wrapper(provider, method, switch))
        self._self_switch = switch


class _Applied:
    __slots__ = ("cls", "name", "wrapper")

    def __init__(self, cls: type, name: str, wrapper: TrackingWrapper) -> None:
        self.cls = cls
        self.name = name
        self.wrapper = wrapper


_lock = threading.Lock()
_applied: list[_Applied] = []


def _ours_in_chain(obj: Any) -> TrackingWrapper | None:
    for _ in range(_MAX_CHAIN):
        if type(obj) is TrackingWrapper:
            return obj
        # A class that copied our wrapper through attribute access holds a *bound*
        # wrapper (wrapt's BoundFunctionWrapper), whose parent is ours.
        parent = getattr(obj, "_self_parent", None)
        if type(parent) is TrackingWrapper:
            return parent
        try:
            obj = obj.__wrapped__
        except AttributeError:
            return None
    return None


def patch(provider: Provider, method: Method, cls: type) -> bool:
    """Wrap ``cls.<method.name>``.

    True when a wrapper was installed (or re-enabled); False when the method is
    missing (another SDK version) or already wrapped by us.
    """
    with _lock:
        current = cls.__dict__.get(method.name)
        # A classmethod object is not callable itself (the pre-1.0 openai SDK's methods
        # are classmethods); wrapt binds it like the function it wraps.
        if current is None or not (callable(current) or isinstance(current, classmethod)):
            return False
        ours = _ours_in_chain(current)
        if ours is not None:
            if ours._self_switch.on:
                return False
            ours._self_switch.on = True
            _applied.append(_Applied(cls, method.name, ours))
            return True
        wrapper = TrackingWrapper(current, provider, method)
        setattr(cls, method.name, wrapper)
        _applied.append(_Applied(cls, method.name, wrapper))
        return True


def unpatch_all() -> int:
    """Remove every wrapper of ours; returns how many were removed or switched off."""
    with _lock:
        for applied in _applied:
            current = applied.cls.__dict__.get(applied.name)
            if current is applied.wrapper:
                setattr(applied.cls, applied.name, applied.wrapper.__wrapped__)
            else:
                applied.wrapper._self_switch.on = False
        count = len(_applied)
        _applied.clear()
        return count
