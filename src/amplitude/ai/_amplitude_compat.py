"""Keeping amplitude-analytics clients sound across fork() and at exit, and bounded.

amplitude-analytics is not fork-aware: a child process gets a copy of the client's
unsent buffer (and would upload it again), a worker flag saying its consumer thread is
running (it is not, in the child), and a thread pool whose threads did not survive.
After a fork we give every client we track a clean slate: empty buffer, fresh locks,
no consumer (one starts on the next event), a new pool. Its upload queue has no limit,
so `backlog()` tells the dispatcher when to stop handing a client events. Defensive
throughout: this touches the SDK's internals, so any surprise only costs the repair,
never the app.
"""

from __future__ import annotations

import threading
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any, Callable

from ._log import report_failure


def _destinations(client: Any) -> list[Any]:
    timeline = getattr(client, "_Amplitude__timeline", None)
    plugins = getattr(timeline, "plugins", None)
    if not isinstance(plugins, dict):
        return []
    return [p for kind, found in plugins.items() if "DESTINATION" in str(kind) for p in found]


def backlog(client: Any) -> int:
    """Events `client` holds unsent: its buffer, plus the batches queued for its upload
    threads (each counted as a full batch). 0 for a client without these internals."""
    total = 0
    try:
        batch = int(getattr(getattr(client, "configuration", None), "flush_queue_size", 0) or 0)
        for destination in _destinations(client):
            total += int(getattr(getattr(destination, "storage", None), "total_events", 0) or 0)
            pool = getattr(getattr(destination, "workers", None), "threads_pool", None)
            queue = getattr(pool, "_work_queue", None)
            if queue is not None:
                total += queue.qsize() * batch
    except Exception as exc:
        report_failure("reading an Amplitude client's backlog", exc)
    return total


class _RunHere(Executor):
    """A client's upload pool at an exit where no thread can start: each upload runs on
    the thread that submits it (the pool would start a thread for it, and fail)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            future.set_exception(exc)
        return future


def _no_consumer() -> None:
    """A client's `Workers.start` at an exit where no thread can start."""


def upload_without_threads(client: Any) -> None:
    """Make `client` upload without starting threads, for an exit where none can start.

    Its consumer thread is not started (it starts one with its first event, and again with
    the next event once a consumer has emptied the buffer and ended: the attempt would fail
    inside `track()` and log a traceback), and each upload runs on the thread that asks for
    it: a consumer already waiting out its flush interval uploads on its own thread, and the
    final flush on the exiting thread, without the pool: a user's client's own exit hook,
    which runs after ours, or, for a client the package made, `_autostart`'s shutdown.
    """
    try:
        for destination in _destinations(client):
            workers = getattr(destination, "workers", None)
            if workers is not None and hasattr(workers, "start"):
                workers.start = _no_consumer
                workers.threads_pool = _RunHere()
    except Exception as exc:
        report_failure("preparing an Amplitude client for exit", exc)


def built(client: Any) -> bool:
    """False for a client of ours not built yet (`OwnedAmplitude`): it never had an event,
    and flushing, resetting or shutting it down would only build it, maybe in the wrong
    process or threading; it is built where it is first used."""
    return getattr(client, "built", True) is not False


def reset_after_fork(client: Any) -> None:
    """In a forked child: forget the parent's unsent events and restart the machinery."""
    if not built(client):
        return
    try:
        # Per-plugin-kind locks a parent thread may have held inside `client.track()`.
        timelines = [getattr(client, "_Amplitude__timeline", None)]
        timelines += [getattr(destination, "timeline", None) for destination in _destinations(client)]
        for timeline in timelines:
            locks = getattr(timeline, "locks", None)
            if isinstance(locks, dict):
                for kind in list(locks):
                    locks[kind] = threading.Lock()
        for destination in _destinations(client):
            storage = getattr(destination, "storage", None)
            workers = getattr(destination, "workers", None)
            if storage is not None and hasattr(storage, "pull_all"):
                if hasattr(storage, "buffer_lock_cv"):
                    storage.buffer_lock_cv = threading.Condition()  # a parent thread may hold it
                storage.pull_all()  # the parent still owns these and sends them
            if workers is not None and hasattr(workers, "is_started"):
                workers.consumer_lock = threading.RLock()
                workers.is_started = False
                workers.threads_pool = ThreadPoolExecutor(max_workers=16)
    except Exception as exc:
        report_failure("resetting an Amplitude client after fork", exc)
