"""Installing and removing our wrappers on SDK classes, safely alongside others'.

The method in the class's own ``__dict__`` is replaced by a plain function of ours (a
classmethod around one, for a classmethod), so instances created before or after keep
working and `isinstance` is untouched. A plain function, not a `wrapt.FunctionWrapper`:
the interpreter calls it like the method it replaces, without creating a bound wrapper
object per call (~1 us less per call, tracking or not). It carries `functools.wraps`
metadata, so `inspect.signature` and other wrappers see the SDK's method through it.

Installing is idempotent (ours already anywhere in the chain of ``__wrapped__``: no
second wrap). Removing restores the exact object we replaced when ours is outermost;
when another instrumentation has wrapped over ours, ours is switched off instead, so
theirs keeps working.
"""

from __future__ import annotations

import functools
import threading
from types import FunctionType, MethodType
from typing import Any

from ._provider import Method, Provider
from ._wrapper import Switch, make_wrapper

_MAX_CHAIN = 32
_MARK = "_amplitude_ai_switch"


def wrap(current: Any, provider: Provider, method: Method) -> Any:
    """Our wrapper for `current` (a class ``__dict__`` entry), or None when it is no method."""
    # Exact types throughout: other vendors' wrappers are proxies that pass isinstance().
    kind = type(current)
    if kind is classmethod:
        target = current.__func__
    elif kind is FunctionType:
        target = current
    elif callable(current) and hasattr(kind, "__get__") and kind is not staticmethod:
        # Another instrumentation's wrapper object: bound the way the class would bind it.
        bind = kind.__get__

        def target(instance: Any, *args: Any, **kwargs: Any) -> Any:
            return bind(current, instance, type(instance))(*args, **kwargs)

    else:
        return None
    switch = Switch(current)
    tracked = make_wrapper(provider, method, switch, target)
    functools.update_wrapper(tracked, target if kind is classmethod else current)
    tracked.__dict__[_MARK] = switch
    return classmethod(tracked) if kind is classmethod else tracked


def tracking_switch(obj: Any) -> Switch | None:
    """The switch of our wrapper when `obj` is one (as installed, or bound), else None."""
    if type(obj) in (classmethod, MethodType):
        obj = obj.__func__
    # Only a real function: another vendor's wrapper proxies attribute reads to ours.
    if type(obj) is FunctionType:
        switch = obj.__dict__.get(_MARK)
        if isinstance(switch, Switch):
            return switch
    return None


def _switch_in_chain(obj: Any) -> Switch | None:
    for _ in range(_MAX_CHAIN):
        switch = tracking_switch(obj)
        if switch is not None:
            return switch
        if type(obj) is classmethod:
            obj = obj.__func__
        try:
            obj = obj.__wrapped__
        except AttributeError:
            return None
    return None


class _Applied:
    __slots__ = ("cls", "name", "switch")

    def __init__(self, cls: type, name: str, switch: Switch) -> None:
        self.cls = cls
        self.name = name
        self.switch = switch


_lock = threading.Lock()
_applied: list[_Applied] = []


def patch(provider: Provider, method: Method, cls: type) -> bool:
    """Wrap ``cls.<method.name>``.

    True when a wrapper was installed (or re-enabled); False when the method is
    missing (another SDK version), is no method, or is already wrapped by us.
    """
    with _lock:
        current = cls.__dict__.get(method.name)
        if current is None:
            return False
        switch = _switch_in_chain(current)
        if switch is None:
            installed = wrap(current, provider, method)
            if installed is None:
                return False
            setattr(cls, method.name, installed)
            switch = tracking_switch(installed)
            assert switch is not None
        elif switch.on:
            return False
        switch.on = True
        _applied.append(_Applied(cls, method.name, switch))
        return True


def unpatch_all() -> int:
    """Remove every wrapper of ours; returns how many were removed or switched off."""
    with _lock:
        for applied in _applied:
            if tracking_switch(applied.cls.__dict__.get(applied.name)) is applied.switch:
                setattr(applied.cls, applied.name, applied.switch.original)
            else:
                applied.switch.on = False
        count = len(_applied)
        _applied.clear()
        return count
