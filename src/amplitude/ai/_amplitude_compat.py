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
from concurrent.futures import ThreadPoolExecutor
from typing import Any

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


def reset_after_fork(client: Any) -> None:
    """In a forked child: forget the parent's unsent events and restart the machinery."""
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
