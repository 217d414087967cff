"""Memory over many tracked calls: steady state, and with Amplitude unreachable.

The real openai SDK runs against overhead.py's in-process transport (every 50th call
streamed); events go through a real Amplitude client. RSS (VmRSS) is read after
gc.collect() once everything submitted so far has been handed over.

- reachable: a loopback capture in another process accepts every upload. RSS at 5%,
  25%, 50% and 100% of --calls (default 200k); the target is < 1 MiB growth from the
  first reading to the last.
- untracked: the same calls as reachable, not tracked: what the SDK itself grows by.
  Run it in a process of its own (`--scenario untracked`) to compare with reachable.
- refused: the Amplitude URL is a loopback port that refuses connections.
- silent: a loopback port that accepts connections and never answers (each upload
  waits for amplitude-analytics' 10 s timeout).

For the last two: RSS along the way, events dropped by amplitude.ai (its two caps),
what the Amplitude client reported through its callback (its only per-event account of
drops), and every log record of the "amplitude.ai" and "amplitude" loggers.

    python benchmarks/memory.py [--calls N] [--scenario reachable untracked refused silent] [--tracemalloc]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import gc
import logging
import socket
import sys
import threading
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

from overhead import MESSAGES, _capture_process, _client

import amplitude
import amplitude.ai
from amplitude.ai._dispatch import MAX_CLIENT_BACKLOG, MAX_PENDING, dispatcher

MIB = 1024 * 1024


def rss() -> int:
    gc.collect()
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


class _Records(logging.Handler):
    """Counts log records (INFO and up) by logger, level, message template and exception."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.counts: collections.Counter[tuple[str, str, str]] = collections.Counter()

    def emit(self, record: logging.LogRecord) -> None:
        message = str(record.msg)[:90]
        if record.exc_info and record.exc_info[1] is not None:
            message += f" [{type(record.exc_info[1]).__name__}: {str(record.exc_info[1])[:60]}]"
        self.counts[(record.name, record.levelname, message)] += 1


@contextlib.contextmanager
def _logs() -> Iterator[_Records]:
    records = _Records()
    loggers = [logging.getLogger(name) for name in ("amplitude.ai", "amplitude")]
    levels = [log.level for log in loggers]
    for log in loggers:
        log.setLevel(logging.INFO)  # amplitude-analytics logs each dropped event at INFO
    # On the parent only: "amplitude.ai" records propagate to it (else counted twice).
    loggers[1].addHandler(records)
    try:
        yield records
    finally:
        loggers[1].removeHandler(records)
        for log, level in zip(loggers, levels):
            log.setLevel(level)


@contextlib.contextmanager
def _dead_endpoint(answers: bool) -> Iterator[str]:
    """A loopback URL that refuses connections (bound, not listening) or accepts and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    if answers:
        sock.listen(1024)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/2/httpapi"
    finally:
        sock.close()  # for "silent": resets the connections that were waiting on it


def _workload() -> Callable[[int], None]:
    client = _client()

    def run(n: int) -> None:
        for i in range(n):
            if i % 50 == 49:
                for _ in client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True):
                    pass
            else:
                client.chat.completions.create(model="gpt-4o", messages=MESSAGES)

    return run


def _settle(analytics: Any) -> None:
    """Everything submitted so far handed to the Amplitude client and, when it can be, sent."""
    amplitude.ai.flush(timeout=60)
    for future in analytics.flush() or []:
        if future is not None:
            future.result(timeout=120)


def _checkpoints(calls: int) -> list[int]:
    return sorted({max(1, calls * share // 100) for share in (5, 25, 50, 100)})


def reachable(calls: int, trace: bool, tracked: bool = True) -> None:
    run = _workload()
    with _capture_process() as url:
        analytics = amplitude.Amplitude("bench-key", amplitude.Config(server_url=url))
        if tracked:
            amplitude.ai.track(analytics)
        run(1000)  # warm up: imports, patching, pydantic's caches, the worker threads
        _settle(analytics)
        readings: list[tuple[int, int, float, int]] = []
        done, start, snapshot = 0, time.perf_counter(), None
        for target in _checkpoints(calls):
            run(target - done)
            done = target
            _settle(analytics)
            readings.append((done, rss(), time.perf_counter() - start, threading.active_count()))
            if trace and snapshot is None:
                tracemalloc.start(10)
                snapshot = tracemalloc.take_snapshot()
        amplitude.ai.untrack()
        analytics.shutdown()
    if tracked:
        print(f"reachable: {calls} tracked calls (every 50th streamed), Amplitude accepting every upload")
    else:
        print(f"untracked: the same {calls} calls, not tracked (the SDK's own growth)")
    print(f"{'calls':>9}{'RSS MiB':>10}{'vs first':>11}{'seconds':>9}{'threads':>9}")
    for count, size, seconds, threads in readings:
        print(f"{count:>9}{size / MIB:10.2f}{(size - readings[0][1]) / MIB:+11.2f}{seconds:9.1f}{threads:9}")
    growth = (readings[-1][1] - readings[0][1]) / MIB
    verdict = "ok" if growth < 1 else "OVER the 1 MiB target"
    print(f"growth {readings[0][0]} -> {readings[-1][0]} calls: {growth:+.2f} MiB ({verdict})")
    print(f"dropped by our dispatcher: {dispatcher.dropped}")
    if snapshot is not None:
        _print_growth(snapshot)


def _print_growth(before: tracemalloc.Snapshot) -> None:
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    print("tracemalloc, largest growth since the first reading:")
    for stat in after.compare_to(before, "traceback")[:8]:
        print(f"  {stat.size_diff / 1024:+9.1f} KiB {stat.count_diff:+7d} blocks")
        for line in stat.traceback.format(limit=4):
            print(f"      {line}")


def unreachable(calls: int, answers: bool) -> None:
    name = "silent" if answers else "refused"
    outcomes: collections.Counter[str] = collections.Counter()

    def callback(event: Any, code: int, message: str | None) -> None:
        outcomes[f"{code} {message}"] += 1

    run = _workload()
    dispatcher.dropped = 0
    with _logs() as records:
        with _dead_endpoint(answers) as url:
            analytics = amplitude.Amplitude("bench-key", amplitude.Config(server_url=url, callback=callback))
            amplitude.ai.track(analytics)
            readings = [(0, rss())]
            done, start = 0, time.perf_counter()
            for target in _checkpoints(calls):
                run(target - done)
                done = target
                amplitude.ai.flush(timeout=60)  # handed to the client, which cannot send them
                readings.append((done, rss()))
            seconds = time.perf_counter() - start
            amplitude.ai.untrack()
            waiting = _client_backlog(analytics)
        # The endpoint is gone now (refusing): what was still queued fails fast from here on.
        closing = time.perf_counter()
        analytics.shutdown()
        closing = time.perf_counter() - closing
        after_shutdown = _client_backlog(analytics)
        # Lost either way; emptying the buffer keeps amplitude-analytics' own shutdown at exit
        # from raising on it (its thread pool is shut down already).
        _destination(analytics)[0].pull_all()
    print(
        f"{name}: {calls} tracked calls in {seconds:.1f}s, "
        f"Amplitude {'never answering' if answers else 'refusing connections'}"
    )
    print(f"{'calls':>9}{'RSS MiB':>10}{'vs start':>11}")
    for count, size in readings:
        print(f"{count:>9}{size / MIB:10.2f}{(size - readings[0][1]) / MIB:+11.2f}")
    caps = f"MAX_PENDING={MAX_PENDING}, MAX_CLIENT_BACKLOG={MAX_CLIENT_BACKLOG}"
    print(f"dropped by amplitude.ai ({caps}): {dispatcher.dropped}; reported failed: {dispatcher.failed}")
    print(f"held by the Amplitude client after the last call: {waiting}")
    print(f"Amplitude client shutdown (endpoint then refusing) took {closing:.1f}s; left: {after_shutdown}")
    print("Amplitude client callback outcomes (code message: events):")
    for outcome, count in outcomes.most_common():
        print(f"  {outcome}: {count}")
    accounted = sum(outcomes.values())
    print(f"  not reported through the callback at all: {calls - accounted}")
    print("log records (logger level message: count):")
    for (logger, level, message), count in records.counts.most_common():
        print(f"  {logger} {level} {message!r}: {count}")
    dispatcher.dropped = 0


def _destination(analytics: Any) -> tuple[Any, Any]:
    """The Amplitude client's event buffer and upload workers (SDK internals)."""
    for plugins in analytics._Amplitude__timeline.plugins.values():
        for plugin in plugins:
            if hasattr(plugin, "storage") and hasattr(plugin, "workers"):
                return plugin.storage, plugin.workers
    raise RuntimeError("no destination plugin on the Amplitude client")


def _client_backlog(analytics: Any) -> str:
    storage, workers = _destination(analytics)
    queued = workers.threads_pool._work_queue.qsize()
    return f"{storage.total_events} events buffered, {queued} upload batches queued"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=None, help="default: 200000 reachable, 100000 otherwise")
    parser.add_argument(
        "--scenario",
        nargs="+",
        choices=("reachable", "untracked", "refused", "silent"),
        default=["reachable", "refused", "silent"],
    )
    parser.add_argument("--tracemalloc", action="store_true", help="reachable: what grew, by allocation site")
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, RSS at start {rss() / MIB:.1f} MiB")
    for scenario in args.scenario:
        if scenario in ("reachable", "untracked"):
            reachable(args.calls or 200_000, args.tracemalloc, tracked=scenario == "reachable")
        else:
            unreachable(args.calls or 100_000, answers=scenario == "silent")
        print()


if __name__ == "__main__":
    main()
