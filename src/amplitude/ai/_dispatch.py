"""Hands finished calls to a background thread that builds and sends their events.

The caller's path only appends to a deque (and, when the worker sleeps, sets an
Event). Event building and `client.track()` run on the worker thread, so neither
their cost nor a slow or failing Amplitude endpoint reaches the LLM call.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import threading
import time
import weakref
from collections import deque
from typing import TYPE_CHECKING, Any, Callable

from ._log import logger, report_failure

if TYPE_CHECKING:
    from ._call import Call

MAX_PENDING = 10_000
"""Calls waiting for the worker beyond this are dropped (counted, logged once)."""

MAX_CLIENT_BACKLOG = 10_000
"""Events an Amplitude client may hold unsent before further ones for it are dropped
(counted, logged once). amplitude-analytics queues uploads without limit: an endpoint
that accepts connections and never answers would otherwise grow memory without end."""

BATCH_DELAY_S = 0.5
"""How long the worker collects calls after waking before building their events."""

WAKE_AT = 1_000
"""Pending calls that end the batch delay early, long before MAX_PENDING is reached; from
there on each call also yields the GIL to the worker once (backpressure)."""

FORK_WAIT_S = 1.0
"""Longest a fork() waits for the worker to finish the event it is handling."""

SHUTDOWN_TIMEOUT_S = 2.0
"""How long interpreter exit waits for pending calls to be handed to their clients."""


class Dispatcher:
    def __init__(self, handle: Callable[[Call], None]) -> None:
        self._handle = handle
        self._pending: deque[Call] = deque()
        self._wake = threading.Event()
        self._hurry = threading.Event()
        self._idle = True
        self._closing = False
        # Set at exit where no thread can start: calls are then handled on the exiting thread.
        self._here = False
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        # Held while one call is handled: fork() waits for it (see before_fork), so a child
        # never inherits a lock the worker held mid-event (an import, the client's plugins).
        self._handling = threading.Lock()
        self._fork_waited = False
        self.dropped = 0
        self._drop_reasons: set[str] = set()
        self.failed = 0
        self._failed_lock = threading.Lock()
        self.shutdown_timeout = SHUTDOWN_TIMEOUT_S
        # Called at exit once pending events are handed over, with the seconds left.
        self.after_exit_drain: list[Callable[[float], None]] = []
        self._clients: weakref.WeakSet[Any] = weakref.WeakSet()
        # Streams still being read, each with the weakref that ends it when its proxy
        # is collected; ended at exit so their events are not lost.
        self.open_streams: dict[Call, weakref.ref[Any]] = {}

    # -- caller's path -------------------------------------------------------
    def submit(self, call: Call) -> None:
        if len(self._pending) >= MAX_PENDING:
            self.drop(f"{MAX_PENDING} calls are waiting to be sent")
            return
        self._pending.append(call)
        if self._thread is None:
            self._start()
        if len(self._pending) >= WAKE_AT:
            self._hurry.set()  # a burst: don't wait for the batch delay
            # Falling behind (threads making calls back to back leave the worker a thin
            # share of the GIL): hand it the GIL once per call rather than drop events later.
            # Half-way to the cap, a real pause: on Python 3.10 `sleep(0)` mostly hands the
            # GIL to another caller, and the worker fell behind until events were dropped.
            time.sleep(0 if len(self._pending) < MAX_PENDING // 2 else 0.0001)
        # Only the first call after the worker went idle pays for waking it; calls
        # arriving while it collects a batch cost one deque append.
        if self._idle:
            self._idle = False
            self._wake.set()

    def drop(self, why: str) -> None:
        """Count an event not sent because of a backlog; the first one for `why` is logged."""
        self.dropped += 1
        if why not in self._drop_reasons:
            self._drop_reasons.add(why)
            logger.warning(
                "amplitude.ai: %s; dropping further events until the backlog clears "
                "(the total dropped is logged at exit).",
                why,
            )

    def delivered(self, event: Any, code: int, message: str | None = None) -> None:
        """amplitude-analytics' verdict on one of our events (its per-event callback, run
        on its threads): a failure is counted, the first one logged at WARNING."""
        if 200 <= code < 300:
            return
        with self._failed_lock:
            self.failed += 1
            first = self.failed == 1
        logger.log(
            logging.WARNING if first else logging.DEBUG,
            "amplitude.ai: Amplitude did not accept an event (%s: %s)%s",
            code,
            message,
            "; later failures are counted in amplitude.ai.stats() and logged at DEBUG" if first else "",
        )

    # -- worker ----------------------------------------------------------------
    def _start(self) -> None:
        # Not waited for: a caller finding another one starting the worker returns (its
        # call is queued for that worker). Under gevent, `start()` yields to other
        # greenlets, and one waiting on this lock would block them all, for good, when it
        # was made before gevent patched `threading`.
        if not self._start_lock.acquire(blocking=False):
            return
        try:
            if self._thread is not None or self._here:
                return
            thread = threading.Thread(target=self._run, name="amplitude-ai-dispatch", daemon=True)
            thread.start()
            self._thread = thread
        finally:
            self._start_lock.release()

    def _run(self) -> None:
        pending = self._pending
        while True:
            # Collect a batch before working: each wake-up hands the GIL to this thread and
            # back, and the callers pay for those hand-offs, so the fewer the better.
            self._hurry.wait(BATCH_DELAY_S)
            self._hurry.clear()
            worked = self._handle_pending()
            if self._closing:
                return
            if worked:
                continue  # calls are coming in: keep collecting on the timer, no wake-ups
            # A whole period without calls: sleep until a submit wakes us.
            self._idle = True
            if pending:  # a submit may have seen `_idle` False just before
                self._idle = False
                continue
            self._wake.wait()
            self._wake.clear()

    def _handle_pending(self) -> bool:
        """Hand every pending call to its client, on this thread; False if there was none."""
        pending = self._pending
        worked = False
        while pending:
            with self._handling:
                try:
                    call = pending.popleft()
                except IndexError:
                    break  # the other thread handling calls (worker or exit) took the last one
                worked = True
                try:
                    self._remember(call.binding.client)
                    self._handle(call)
                except BaseException as exc:  # provider code (a plugin's too) must never end the worker
                    report_failure("building or sending an event", exc)
        return worked

    def _remember(self, client: Any) -> None:
        # A client that is not weak-referenceable is tracked all the same; flush() just
        # cannot reach it.
        with contextlib.suppress(TypeError):
            self._clients.add(client)

    def queued(self) -> int:
        """Submitted calls the worker has not taken yet."""
        return len(self._pending)

    def clients(self) -> list[Any]:
        """The Amplitude clients events were handed to (still alive)."""
        return list(self._clients)

    def drain(self, timeout: float) -> bool:
        """Hand every submitted call to its client now (on this thread at an exit where no
        thread can start); False if `timeout` passed first."""
        if self._here:
            self._handle_pending()
            return True
        deadline = time.monotonic() + timeout
        self._hurry.set()
        while self._pending or self._handling.locked():
            if time.monotonic() >= deadline:
                return False
            self._hurry.set()
            time.sleep(0.001)
        return True

    # -- process lifecycle ---------------------------------------------------
    def run_exit_hook_before(self, client: Any) -> None:
        """Make sure our exit hook runs before `client` shuts down at exit.

        amplitude-analytics shuts each client down from threading's exit hooks, which
        run before `atexit` and last-in first-out. Registering ours after the client was
        created (we are handed clients only once they exist) makes ours run first, so the
        last events reach the client while it still accepts them. Once per client.
        """
        try:
            if client in self._clients:
                return
            self._clients.add(client)
        except TypeError:
            pass  # not weak-referenceable: register (again), harmless
        register = getattr(threading, "_register_atexit", None)
        try:
            if register is None:
                raise RuntimeError("no threading._register_atexit")
            register(self._at_exit)
        except Exception:
            atexit.register(self._at_exit)

    def _at_exit(self) -> None:
        if self._closing:
            return  # registered once per client; the first run delivered for all of them
        try:
            deadline = time.monotonic() + self.shutdown_timeout
            if not _can_start_threads():
                self._stay_on_this_thread()
            for call in list(self.open_streams):
                call.finish()
            self.drain(self.shutdown_timeout)
            for callback in self.after_exit_drain:
                callback(max(0.0, deadline - time.monotonic()))
            if self.dropped:
                logger.warning("amplitude.ai: %d events were dropped (backlog full)", self.dropped)
        except Exception as exc:
            report_failure("delivering events at exit", exc)
        self._closing = True
        self._hurry.set()
        self._wake.set()

    def _stay_on_this_thread(self) -> None:
        """For an exit where no thread can start, neither our worker nor amplitude-analytics'
        upload threads: this thread hands the calls over (`drain`), and the clients upload
        on the threads that ask them to (their shutdowns, after this, on this thread)."""
        from ._amplitude_compat import upload_without_threads

        self._here = True
        for client in self.clients():
            upload_without_threads(client)

    def before_fork(self) -> None:
        # Bounded: a worker stuck inside a client's track() must not hang the fork.
        self._fork_waited = self._handling.acquire(timeout=FORK_WAIT_S)

    def after_fork_in_parent(self) -> None:
        if self._fork_waited:
            self._fork_waited = False
            self._handling.release()

    def after_fork_in_child(self) -> None:
        # The parent still owns (and will send) what it had queued; the child starts
        # clean, with a worker of its own started on its first call, and so do the
        # Amplitude clients (see _amplitude_compat).
        from ._amplitude_compat import reset_after_fork

        for client in self.clients():
            reset_after_fork(client)
        self._pending.clear()
        self.open_streams.clear()
        self.dropped = self.failed = 0
        self._drop_reasons = set()
        self._failed_lock = threading.Lock()
        self._wake = threading.Event()
        self._hurry = threading.Event()
        self._start_lock = threading.Lock()
        self._handling = threading.Lock()
        self._fork_waited = False
        self._idle = True
        self._closing = False
        self._here = False
        self._thread = None


def _can_start_threads() -> bool:
    """False at exit on Python 3.12.0 to 3.12.2, which refuse new threads from the moment
    the interpreter starts exiting (CPython gh-113964; 3.12.3 allows them again until
    threading's exit hooks have run), and in `atexit` callbacks on 3.12+."""
    probe = threading.Thread(target=int, name="amplitude-ai-probe", daemon=True)
    try:
        probe.start()
    except RuntimeError:
        return False
    probe.join()
    return True


def _handle(call: Call) -> None:
    from ._amplitude_compat import backlog
    from ._event import send

    if backlog(call.binding.client) >= MAX_CLIENT_BACKLOG:
        dispatcher.drop(
            f"the Amplitude client holds {MAX_CLIENT_BACKLOG} unsent events (is its endpoint answering?)"
        )
        return
    send(call)


dispatcher = Dispatcher(_handle)
submit = dispatcher.submit
if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=dispatcher.before_fork,
        after_in_parent=dispatcher.after_fork_in_parent,
        after_in_child=dispatcher.after_fork_in_child,
    )
