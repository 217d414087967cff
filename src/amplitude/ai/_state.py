"""Which Amplitude client is active: process-wide (`track`) or scoped (`tracking`)."""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any


class Binding:
    """An active Amplitude client and the identity its events are attributed to.

    A plain class rather than a dataclass: `dataclasses` costs milliseconds to import,
    and this module is imported by `import amplitude.ai` in every process.
    """

    __slots__ = ("client", "device_id", "response_preview", "user_id")

    def __init__(
        self,
        client: Any,
        user_id: str | None = None,
        device_id: str | None = None,
        response_preview: bool = True,
    ) -> None:
        self.client = client
        self.user_id = user_id
        self.device_id = device_id
        self.response_preview = response_preview


_process: Binding | None = None
_scoped: ContextVar[Binding | None] = ContextVar("amplitude_ai_binding", default=None)


def active() -> Binding | None:
    """The binding for the current thread or task; falls back to the process-wide one.
    (Inlined in `_wrapper._begin`, the call path.)"""
    scoped = _scoped.get()
    return scoped if scoped is not None else _process


def set_process(binding: Binding | None) -> None:
    global _process
    _process = binding


def scoped_var() -> ContextVar[Binding | None]:
    return _scoped
