"""Memory over many tracked calls: steady state, and with Amplitude unreachable.

The real openai SDK runs against overhead.py's in-process transport (every 50th call
streamed); events go through a real Amplitude client. RSS (VmRSS) is read after
gc.collect() once everything submitted so far has been handed over.

- reachable: a loopback capture in another process accepts every upload. RSS at 5%,
  25%, 50% and 100% of --calls (default 200k); the target is < 1 MiB growth from the
  first reading to the last.
- untracked: the same calls as reachable, not tracked: what the SDK itself grows by.
- discarding: tracked as in reachable, but the client hands each event's upload body
  (`get_event_body()`, serialised as for sending) to nothing: amplitude.ai's own growth,
  without amplitude-analytics' buffer and upload threads.
- amplitude-only: the same calls, not tracked; after each, the app itself hands the
  Amplitude client an event like ours (`client.track()`, as hand-written instrumentation
  would): what amplitude-analytics grows by for the same events, without amplitude.ai.
  Run the controls in processes of their own (`--scenario untracked`) to compare.
- refused: the Amplitude URL is a loopback port that refuses connections.
- silent: a loopback port that accepts connections and never answers (each upload
  waits for amplitude-analytics' 10 s timeout).

For the last two: RSS along the way, events dropped by amplitude.ai (its two caps),
what the Amplitude client reported through its callback (its only per-event account of
drops), and every log record of the "amplitude.ai" and "amplitude" loggers.

Each reading also splits RSS by where it lives (/proc/self/smaps): the main heap,
CPython's object arenas (pymalloc, 1 MiB mappings), and other anonymous memory (the
malloc arenas and stacks of threads: amplitude-analytics uploads on a pool of up to 16).

    python benchmarks/memory.py [--calls N] [--tracemalloc]
        [--scenario reachable discarding untracked amplitude-only refused silent]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import gc
import json
import logging
import socket
import sys
import threading
import time
import tracemalloc
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

from overhead import MESSAGES, _capture_process, _client, held_back

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


PYMALLOC_ARENA_KIB = 1024  # CPython >= 3.10 on 64-bit Linux


def resident_by_kind() -> dict[str, int]:
    """Resident bytes by mapping kind: "heap" (the main malloc heap), "objects" (pymalloc
    arenas), "threads" (other anonymous memory: threads' malloc arenas and stacks), "files"."""
    kinds = dict.fromkeys(("heap", "objects", "threads", "files"), 0)
    kind = "files"
    for line in Path("/proc/self/smaps").read_text().splitlines():
        fields = line.split()
        if "-" in fields[0] and len(fields) >= 5:  # a mapping's header line
            start, end = (int(x, 16) for x in fields[0].split("-"))
            name = fields[5] if len(fields) > 5 else ""
            if name == "[heap]":
                kind = "heap"
            elif name:
                kind = "files"
            else:
                kind = "objects" if end - start == PYMALLOC_ARENA_KIB * 1024 else "threads"
        elif fields[0] == "Rss:":
            kinds[kind] += int(fields[1]) * 1024
    return kinds


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


def _workload(after: Callable[[bool], None] | None = None) -> Callable[[int], None]:
    """`run(n)`: n calls, every 50th streamed; `after(streamed)` follows each."""
    client = _client()

    def run(n: int) -> None:
        for i in range(n):
            streamed = i % 50 == 49
            if streamed:
                for _ in client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True):
                    pass
            else:
                client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
            if after is not None:
                after(streamed)

    return run


def _hand_written_events(analytics: Any) -> Callable[[bool], None]:
    """After each call, an event like the one amplitude.ai would send for it, handed to
    `analytics` on the caller's thread. The properties are those of real events, built by
    amplitude.ai once for a call and a stream and then no longer tracked."""
    from amplitude.ai._event import build

    amplitude.ai.track(analytics)
    try:
        with held_back([]) as held:
            _workload()(50)
    finally:
        amplitude.ai.untrack()
    made = {call.stream: build(call) for call in held}

    def after(streamed: bool) -> None:
        model = made[streamed]
        analytics.track(
            amplitude.BaseEvent(
                event_type=model.event_type,
                event_properties=dict(model.event_properties),
                time=int(time.time() * 1000),
                insert_id=uuid.uuid4().hex,
                device_id=model.device_id,
            )
        )

    return after


def _settle(analytics: Any) -> None:
    """Everything submitted so far handed to the Amplitude client and, when it can be, sent."""
    amplitude.ai.flush(timeout=60)
    for future in analytics.flush() or []:
        if future is not None:
            future.result(timeout=120)


def _checkpoints(calls: int) -> list[int]:
    return sorted({max(1, calls * share // 100) for share in (5, 25, 50, 100)})


class _Discarding:
    """An Amplitude client stand-in that serialises each event as for upload, then drops it."""

    def track(self, event: Any) -> None:
        json.dumps(event.get_event_body(), sort_keys=True)

    def flush(self) -> None:
        pass

    def shutdown(self) -> None:
        pass


SCENARIO_TITLES = {
    "reachable": "reachable: {calls} tracked calls (every 50th streamed), Amplitude accepting every upload",
    "discarding": "discarding: the same {calls} calls tracked, each event serialised and dropped "
    "(amplitude.ai's own growth)",
    "untracked": "untracked: the same {calls} calls, not tracked (the SDK's own growth)",
    "amplitude-only": "amplitude-only: the same {calls} calls, not tracked; the app hands the Amplitude "
    "client an event like ours after each (amplitude-analytics' own growth)",
}


def reachable(calls: int, trace: bool, scenario: str = "reachable") -> None:
    with _capture_process() as url:
        analytics: Any = (
            _Discarding()
            if scenario == "discarding"
            else amplitude.Amplitude("bench-key", amplitude.Config(server_url=url))
        )
        run = _workload(_hand_written_events(analytics) if scenario == "amplitude-only" else None)
        if scenario in ("reachable", "discarding"):
            amplitude.ai.track(analytics)
        run(1000)  # warm up: imports, patching, pydantic's caches, the worker threads
        _settle(analytics)
        readings: list[tuple[int, int, float, int, dict[str, int]]] = []
        done, start, snapshot = 0, time.perf_counter(), None
        for target in _checkpoints(calls):
            run(target - done)
            done = target
            _settle(analytics)
            size = rss()
            readings.append(
                (done, size, time.perf_counter() - start, threading.active_count(), resident_by_kind())
            )
            if trace and snapshot is None:
                tracemalloc.start(10)
                snapshot = tracemalloc.take_snapshot()
        amplitude.ai.untrack()
        analytics.shutdown()
    print(SCENARIO_TITLES[scenario].format(calls=calls))
    kinds = ("heap", "objects", "threads")
    print(
        f"{'calls':>9}{'RSS MiB':>10}{'vs first':>11}{'seconds':>9}{'threads':>9}   vs first by kind (MiB):"
    )
    print(f"{'':>48}{'':>3}" + "".join(f"{kind:>10}" for kind in kinds))
    first = readings[0]
    for count, size, seconds, threads, by_kind in readings:
        row = f"{count:>9}{size / MIB:10.2f}{(size - first[1]) / MIB:+11.2f}{seconds:9.1f}{threads:9}   "
        print(row + "".join(f"{(by_kind[kind] - first[4][kind]) / MIB:+10.2f}" for kind in kinds))
    growth = (readings[-1][1] - first[1]) / MIB
    verdict = "ok" if growth < 1 else "OVER the 1 MiB target"
    print(f"growth {first[0]} -> {readings[-1][0]} calls: {growth:+.2f} MiB ({verdict})")
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
        choices=("reachable", "discarding", "untracked", "amplitude-only", "refused", "silent"),
        default=["reachable", "refused", "silent"],
    )
    parser.add_argument("--tracemalloc", action="store_true", help="reachable: what grew, by allocation site")
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, RSS at start {rss() / MIB:.1f} MiB")
    for scenario in args.scenario:
        if scenario in SCENARIO_TITLES:
            reachable(args.calls or 200_000, args.tracemalloc, scenario)
        else:
            unreachable(args.calls or 100_000, answers=scenario == "silent")
        print()


if __name__ == "__main__":
    main()
