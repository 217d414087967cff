"""Which Amplitude client is active: process-wide (`track`) or scoped (`tracking`)."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Binding:
    """An active Amplitude client and the identity its events are attributed to."""

    client: Any
    user_id: str | None = None
    device_id: str | None = None
    response_preview: bool = True


_process: Binding | None = None
_scoped: ContextVar[Binding | None] = ContextVar("amplitude_ai_binding", default=None)


def active() -> Binding | None:
    """The binding for the current thread or task; falls back to the process-wide one."""
    scoped = _scoped.get()
    return scoped if scoped is not None else _process


def set_process(binding: Binding | None) -> None:
    global _process
    _process = binding


def scoped_var() -> ContextVar[Binding | None]:
    return _scoped
