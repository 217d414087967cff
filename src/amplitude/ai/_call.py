"""The record of one tracked call, filled on the caller's path and read off it."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Callable

from . import _dispatch
from ._log import report_failure

if TYPE_CHECKING:
    from ._provider import Method, Provider
    from ._state import Binding

_perf = time.perf_counter


class Call:
    """Raw facts about one call. Building the event from them happens off the call path.

    What a provider reads and writes (`amplitude.ai.providers`): ``method`` (the `Method`
    called), ``instance`` (the SDK object it was called on), ``request`` (whatever the
    provider's `begin` snapshots), ``response`` / ``error`` (the outcome), ``stream``,
    ``acc`` and ``fold`` (a stream's accumulator and per-chunk reducer; ``acc`` also holds
    what a provider read of a plain result as it ended, instead of keeping the result in
    ``response``). Timings and the tracking identity are the core's. `finish()` ends the
    call; the core calls it for errors and for streams, a provider's `on_result` for a
    plain result.
    """

    __slots__ = (
        "__weakref__",
        "acc",
        "binding",
        "completed",
        "ended_at",
        "error",
        "finished",
        "first_chunk_at",
        "fold",
        "instance",
        "method",
        "provider",
        "request",
        "response",
        "started_at",
        "stream",
        "wall_time",
    )

    def __init__(self, provider: Provider, method: Method, binding: Binding, instance: Any) -> None:
        self.provider = provider
        self.method = method
        self.binding = binding
        self.instance = instance
        self.request: Any = None
        self.response: Any = None
        self.error: BaseException | None = None
        self.stream = False
        self.first_chunk_at: float | None = None
        self.ended_at: float | None = None
        self.completed = False
        self.finished = False
        # For streams, the provider's `fold(acc, chunk)` reduces each chunk into `acc` as
        # it passes (chunks are not kept: a long stream would hold them all). It returns
        # True for a chunk the caller must not see (one only tracking asked for).
        self.fold: Callable[[Any, Any], bool] | None = None
        self.acc: Any = None
        self.wall_time = time.time()
        self.started_at = _perf()

    def finish(self, response: Any = None, error: BaseException | None = None) -> None:
        """End the call (once) and hand it to the dispatcher."""
        if self.finished:
            return
        self.finished = True
        self.ended_at = _perf()
        if response is not None:
            self.response = response
        if error is not None:
            self.error = error
        try:
            # Not only streams are watched: a raw response read later is too.
            _dispatch.dispatcher.open_streams.pop(self, None)
            _dispatch.submit(self)
        except Exception as exc:
            report_failure("queueing an event", exc)
