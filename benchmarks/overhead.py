"""What tracking costs: on the caller's path per call and per streamed chunk, and off it.

The real openai SDK runs against an in-process transport (no sockets). Tracked and
untracked rounds are interleaved; figures are medians over rounds. Not a test: it
prints a table.

Two different costs are reported, because they land in different places:
- caller's path: what `create()` itself takes longer. Measured with the dispatch
  thread's work held back until the round ends, so it does not compete for the GIL.
- off the path: CPU per event on the dispatch thread (building the event and the real
  Amplitude client's `track()`). In a service this runs while requests wait on the
  network; in a CPU-bound loop of back-to-back calls it competes for the GIL, and the
  "busy loop" row shows that worst case too.

    python benchmarks/overhead.py [--rounds 100] [--calls 100] [--cpu N] [--processes 3]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import json
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import httpx2
import openai

import amplitude
import amplitude.ai
from amplitude.ai._dispatch import WAKE_AT, dispatcher

CHUNKS = 50
# Shaped like a response the API sends today (fields as in a recorded one), usage details
# included: reading them is part of what tracking does per call.
COMPLETION = json.dumps(
    {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": "gpt-4o-2024-08-06",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello!", "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": 5,
            "completion_tokens": 2,
            "total_tokens": 7,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
        "service_tier": "default",
        "system_fingerprint": "fp_0",
    }
).encode()


def _chunk(i: int, **extra: Any) -> str:
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "gpt-4o-2024-08-06",
        "choices": [{"index": 0, "delta": {"content": f"t{i} "}, "finish_reason": None}],
        **extra,
    }
    return f"data: {json.dumps(body)}\n\n"


STREAM = ("".join(_chunk(i) for i in range(CHUNKS)) + "data: [DONE]\n\n").encode()
# What the API sends when asked for usage (`stream_options.include_usage`): every chunk has a
# `usage` of null, and one more chunk, with no choices, carries it.
STREAM_WITH_USAGE = (
    "".join(_chunk(i, usage=None) for i in range(CHUNKS))
    + _chunk(CHUNKS, choices=[], usage=json.loads(COMPLETION)["usage"])
    + "data: [DONE]\n\n"
).encode()


def _handler(request: httpx2.Request) -> httpx2.Response:
    if b'"stream":true' not in request.content:
        return httpx2.Response(200, content=COMPLETION, headers={"content-type": "application/json"})
    body = STREAM_WITH_USAGE if b'"include_usage":true' in request.content else STREAM
    return httpx2.Response(200, content=body, headers={"content-type": "text/event-stream"})


# Base URLs of the in-process clients: any host but OpenAI's leaves the request alone; on
# OpenAI's own API tracking asks for the usage chunk, which the SDK then parses like any other.
OTHER_API = "http://127.0.0.1:1/v1"
OPENAI_API = "https://api.openai.com/v1"


def _client(base_url: str = OTHER_API) -> Any:
    transport = httpx2.MockTransport(_handler)
    return openai.OpenAI(
        api_key="sk-bench",
        base_url=base_url,
        http_client=openai.DefaultHttpxClient(transport=transport),
        max_retries=0,
    )


MESSAGES = [{"role": "user", "content": "hi"}]


ALL_CPUS = frozenset(os.sched_getaffinity(0))


def add_cpu_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cpu",
        type=int,
        default=min(ALL_CPUS),
        help="this process (not the Amplitude capture) runs on this CPU only; -1: any (default %(default)s)",
    )


def pin(cpu: int) -> None:
    """Keep this process on one CPU, before it starts any thread (threads inherit it).

    Python runs one thread at a time, so this costs the measured code nothing, and it
    keeps the scheduler from deciding where the caller runs: on this VM, whether the
    caller thread moved between vCPUs after handing the GIL to the dispatch thread made
    the SDK's own code run ~4% slower (~27 us a call) in tracked rounds, unpinned only.
    """
    if cpu >= 0:
        os.sched_setaffinity(0, {cpu})


@contextlib.contextmanager
def _capture_process() -> Iterator[str]:
    """A loopback Amplitude stand-in in its own process, so its work is not timed here."""
    code = (
        "import sys, time; sys.path.insert(0, sys.argv[1]); from loopback import AmplitudeCapture\n"
        "with AmplitudeCapture() as c:\n    print(c.url, flush=True)\n    sys.stdin.read()\n"
    )
    tests = str(Path(__file__).resolve().parents[1] / "tests")
    proc = subprocess.Popen(
        [sys.executable, "-c", code, tests], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    os.sched_setaffinity(proc.pid, ALL_CPUS)  # not on the benchmark's CPU (see pin())
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().strip()
    finally:
        proc.communicate("", timeout=10)


def workload(base_url: str = OTHER_API) -> tuple[Callable[[], Any], Callable[[], Any]]:
    """A non-streaming chat call and a streamed one (CHUNKS chunks, read through), each on
    an in-process SDK client of `base_url`."""
    client = _client(base_url)

    def call() -> Any:
        return client.chat.completions.create(model="gpt-4o", messages=MESSAGES)

    def stream() -> None:
        for _ in client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True):
            pass

    return call, stream


@contextlib.contextmanager
def tracked_client(warm_up: Iterable[Callable[[], Any]]) -> Iterator[Any]:
    """A real Amplitude client posting to a loopback capture in another process, tracked
    with once each of `warm_up` has run (lazy imports, patching, the dispatch thread).
    Untracked and shut down on exit."""
    with _capture_process() as capture_url:
        analytics = amplitude.Amplitude("bench-key", amplitude.Config(server_url=capture_url))
        amplitude.ai.track(analytics)
        for fn in warm_up:
            fn()
        amplitude.ai.flush()
        try:
            yield analytics
        finally:
            amplitude.ai.untrack()
            analytics.shutdown()


def rotated(modes: Sequence[str], rounds: int) -> Iterator[str]:
    """Each mode once per round, in an order that rotates so no mode always runs right
    after another's cleanup. After each, the Amplitude client's upload is let finish
    outside the timings."""
    for round_number in range(rounds):
        shift = round_number % len(modes)
        for mode in (*modes[shift:], *modes[:shift]):
            yield mode
            amplitude.ai.flush()
            time.sleep(0.05)


@contextlib.contextmanager
def held_back(off_path: list[float]) -> Iterator[list[Any]]:
    """Inside: the dispatch thread only collects tracked calls, so their events are not
    built while the caller is timed. On exit they are sent, and the time that took per
    event is appended to `off_path`. Yields the collected calls."""
    held: list[Any] = []
    real_handle = dispatcher._handle
    dispatcher._handle = held.append
    try:
        yield held
        amplitude.ai.flush()
    finally:
        dispatcher._handle = real_handle
    if held:
        start = time.perf_counter()
        for call in held:
            real_handle(call)
        off_path.append((time.perf_counter() - start) / len(held))


def _per_chunk_cost(rounds: int) -> tuple[float, float]:
    """Iterating pre-parsed chunks: plain vs through the tracking proxy and its fold."""
    from openai.types.chat import ChatCompletionChunk

    from amplitude.ai._call import Call
    from amplitude.ai._providers.openai import PROVIDER, _fold_choices, _StreamState
    from amplitude.ai._state import Binding
    from amplitude.ai._streams import TrackedStream

    chunks = [
        ChatCompletionChunk.model_validate(json.loads(block[len("data: ") :]))
        for block in STREAM.decode().split("\n\n")
        if block.startswith("data: {")
    ] * 20
    method = next(m for m in PROVIDER.methods if m.api == "chat.completions.create")
    plain: list[float] = []
    tracked: list[float] = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _chunk in iter(chunks):
            pass
        plain.append((time.perf_counter() - start) / len(chunks))
        call = Call(PROVIDER, method, Binding(None), None)
        call.fold, call.acc = _fold_choices, _StreamState(chat=True)
        call.finished = True  # not a real call: nothing to send when it ends
        proxy = TrackedStream(iter(chunks), call)
        start = time.perf_counter()
        for _chunk in proxy:
            pass
        tracked.append((time.perf_counter() - start) / len(chunks))
    return statistics.median(plain), statistics.median(tracked)


def _per_call_cost(rounds: int, calls: int) -> dict[str, float]:
    """Our wrapper alone: the same wrapper the SDK gets, on a method that only returns a
    completion.

    End to end, HTTP, parsing and the SDK's own argument handling add tens of
    microseconds of run-to-run noise on this kind of machine; here nothing but our
    share (wrapper, state lookup, request snapshot, reading the result, hand-off) is timed.
    """
    from amplitude.ai._patching import wrap
    from amplitude.ai._providers.openai import PROVIDER

    method = next(m for m in PROVIDER.methods if m.api == "chat.completions.create" and not m.is_async)
    # A completion as the SDK returns it (untracked here), so that reading it when the call
    # ends is timed too.
    completion = workload()[0]()
    client = _client()

    class Resource:
        _client = client  # as an SDK resource has: the call path reads its base URL

        def create(self, **kwargs: Any) -> Any:
            return completion

    class Patched(Resource):
        create = wrap(Resource.__dict__["create"], PROVIDER, method)

    plain, patched = Resource(), Patched()

    def call_plain() -> Any:
        return plain.create(model="m", messages=MESSAGES)

    def call_patched() -> Any:
        return patched.create(model="m", messages=MESSAGES)

    held: list[Any] = []
    real_handle = dispatcher._handle
    analytics = amplitude.Amplitude("bench-key", amplitude.Config(server_url="http://127.0.0.1:9/unused"))
    timings: dict[str, list[float]] = {"no wrapper": [], "wrapper, not tracking": [], "wrapper, tracking": []}
    dispatcher._handle = held.append
    try:
        for _ in range(rounds):
            amplitude.ai.untrack()
            timings["no wrapper"].append(_time_per_call(call_plain, calls))
            timings["wrapper, not tracking"].append(_time_per_call(call_patched, calls))
            amplitude.ai.track(analytics)
            timings["wrapper, tracking"].append(_time_per_call(call_patched, calls))
            amplitude.ai.flush()
            held.clear()
    finally:
        amplitude.ai.untrack()
        dispatcher._handle = real_handle
        analytics.shutdown()
    return {name: statistics.median(values) for name, values in timings.items()}


def _time_per_call(fn: Callable[[], Any], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


class _Collections:
    """Garbage collections per generation, and the time they took, while each mode's
    non-streaming calls ran.

    The in-place medians leave out the rare call a collection lands in; what tracking
    keeps alive until its events are built brings collections on, so their time is its
    cost too: reported per call beside the counts.
    """

    def __init__(self, modes: Sequence[str]) -> None:
        self.counts = {mode: [0, 0, 0] for mode in modes}
        self.seconds = dict.fromkeys(modes, 0.0)
        self.calls = dict.fromkeys(modes, 0)
        self.mode: str | None = None
        self._started = 0.0
        gc.callbacks.append(self._seen)

    def _seen(self, phase: str, info: dict[str, int]) -> None:
        if self.mode is None:
            return
        if phase == "start":
            self.counts[self.mode][info["generation"]] += 1
            self._started = time.perf_counter()
        else:
            self.seconds[self.mode] += time.perf_counter() - self._started

    def per_thousand(self, mode: str, decimals: int = 0) -> str:
        return "/".join(f"{n * 1000 / max(1, self.calls[mode]):.{decimals}f}" for n in self.counts[mode])

    def us_per_call(self, mode: str) -> float:
        return self.seconds[mode] * 1e6 / max(1, self.calls[mode])


def _end_to_end(
    rounds: int, calls: int
) -> tuple[dict[str, dict[str, list[float]]], list[float], _Collections]:
    """Calls through the real SDK and transport: untracked, tracked with the dispatch
    thread's work held back until the round ends, and tracked with it running."""
    call, stream = workload()
    usage_stream = workload(OPENAI_API)[1]
    off_path: list[float] = []
    modes = ("untracked", "tracked", "busy loop")
    names = ("call", "stream", "usage stream")
    timings: dict[str, dict[str, list[float]]] = {name: {m: [] for m in modes} for name in names}
    collections = _Collections(modes)
    with tracked_client(warm_up=(call, stream, usage_stream)) as analytics:
        for mode in rotated(modes, rounds):
            if mode == "untracked":
                amplitude.ai.untrack()
            else:
                amplitude.ai.track(analytics)
            # "tracked": the dispatch thread only collects calls; they are sent after the round.
            with held_back(off_path) if mode == "tracked" else contextlib.nullcontext():
                collections.mode = mode
                timings["call"][mode].append(_time_per_call(call, calls))
                collections.mode = None
                collections.calls[mode] += calls
                timings["stream"][mode].append(_time_per_call(stream, max(1, calls // 10)))
                timings["usage stream"][mode].append(_time_per_call(usage_stream, max(1, calls // 10)))
    gc.callbacks.remove(collections._seen)
    return timings, off_path, collections


class _TimedMethod:
    """The SDK's chat `create` with a timer around it, installed under our wrapper: what
    happens between the caller's call and the SDK's own code is ours (in place, where our
    code runs cold after the SDK's millions of instructions), what happens inside is the
    SDK's."""

    def __init__(self) -> None:
        self.inner: list[float] = []
        self.cls = openai.resources.chat.completions.Completions
        self.original: Any = None

    def __enter__(self) -> _TimedMethod:
        from amplitude.ai._instrument import instrument, uninstrument

        uninstrument()
        self.original = original = self.cls.__dict__["create"]
        inner, perf = self.inner, time.perf_counter

        @functools.wraps(original)
        def create(*args: Any, **kwargs: Any) -> Any:
            start = perf()
            try:
                return original(*args, **kwargs)
            finally:
                inner.append(perf() - start)

        self.cls.create = create
        instrument()  # ours goes around the timer
        return self

    def __exit__(self, *exc: object) -> None:
        from amplitude.ai._instrument import instrument, uninstrument

        uninstrument()
        self.cls.create = self.original
        instrument()


IN_PLACE_PARTS = (
    ("call", "the whole call"),
    ("sdk", "inside the SDK's method"),
    ("around", "around it: our wrapper, in place"),
    ("stream call", f"streamed ({CHUNKS} chunks): create()"),
    ("stream sdk", "  inside the SDK's method"),
    ("stream around", "  around it: our setup, in place"),
    ("stream read", "  reading every chunk (per stream)"),
)


def _in_place(rounds: int, calls: int) -> dict[str, dict[str, list[float]]]:
    """Per round, medians over its calls (`calls` non-streaming, a tenth as many streamed):
    of the whole call, the time inside the SDK's method, and the difference (around it:
    our wrapper, or the pass-through while untracked); for streams also the time to read
    every chunk (through our generator and fold when tracked; the call ends there)."""
    client = _client()

    def call() -> Any:
        return client.chat.completions.create(model="gpt-4o", messages=MESSAGES)

    def stream() -> Any:
        return client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)

    modes = ("untracked", "tracked")
    timings: dict[str, dict[str, list[float]]] = {part: {m: [] for m in modes} for part, _ in IN_PLACE_PARTS}
    perf = time.perf_counter
    with _TimedMethod() as timed, tracked_client(warm_up=(call, lambda: list(stream()))) as analytics:
        for mode in rotated(modes, rounds):
            if mode == "untracked":
                amplitude.ai.untrack()
            else:
                amplitude.ai.track(analytics)
            with held_back([]):
                for streamed, count in ((False, calls), (True, max(1, calls // 10))):
                    whole: list[float] = []
                    read: list[float] = []
                    timed.inner.clear()
                    for _ in range(count):
                        start = perf()
                        if streamed:
                            chunks = stream()
                            created = perf()
                            for _chunk in chunks:
                                pass
                            read.append(perf() - created)
                            del chunks
                        else:
                            call()
                            created = perf()
                        whole.append(created - start)
                    prefix = "stream " if streamed else ""
                    timings[f"{prefix}call"][mode].append(statistics.median(whole))
                    timings[f"{prefix}sdk"][mode].append(statistics.median(timed.inner))
                    timings[f"{prefix}around"][mode].append(
                        statistics.median(w - i for w, i in zip(whole, timed.inner))
                    )
                    if streamed:
                        timings["stream read"][mode].append(statistics.median(read))
    return timings


def _in_place_runs(args: argparse.Namespace) -> list[dict[str, dict[str, list[float]]]]:
    """`_in_place` in `args.processes` fresh interpreters, one after another.

    Our code in place moves by more between processes than within one: six runs of one
    commit measured +6.6 to +7.4 us here (where the interpreter and the SDK land in
    memory, and what else the VM runs). One process's interval says nothing about that;
    the spread of several does.
    """
    if args.processes <= 1:
        return [_in_place(args.rounds, args.calls)]
    command = [sys.executable, __file__, "--in-place-only", "--rounds", str(args.rounds)]
    command += ["--calls", str(args.calls), "--cpu", str(args.cpu)]
    runs = []
    for _ in range(args.processes):
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        runs.append(json.loads(done.stdout))
    return runs


def _print_in_place(runs: list[dict[str, dict[str, list[float]]]]) -> None:
    if len(runs) == 1:
        print("where the time goes (us; medians of each round's calls, timed one by one):")
    else:
        print(
            f"where the time goes (us; medians of each round's calls, timed one by one; {len(runs)} "
            "processes: the median process, and the lowest and highest process's added):"
        )
    for part, label in IN_PLACE_PARTS:
        row = []
        for run in runs:
            base = [v * 1e6 for v in run[part]["untracked"]]
            values = [v * 1e6 for v in run[part]["tracked"]]
            row.append((paired(base, values), statistics.median(base), statistics.median(values)))
        row.sort()
        (mid, low, high), base_median, tracked_median = row[len(row) // 2]
        lowest, highest = row[0][0][0], row[-1][0][0]
        spread = f"[{low:+.2f}, {high:+.2f}]" if len(row) == 1 else f"({lowest:+.2f} .. {highest:+.2f})"
        print(f"  {label:36}{base_median:10.2f}{tracked_median:10.2f}{f'{mid:+.2f} {spread}':>24}")


def paired(base: list[float], other: list[float]) -> tuple[float, float, float]:
    """Median of the per-round differences `other - base`, with a bootstrap 95% interval.

    Per round, not the difference of medians: the machine's speed drifts between rounds by
    more than the difference measured, and both modes of a round share its speed.
    """
    diffs = [b - a for a, b in zip(base, other)]
    rng = random.Random(0)
    medians = sorted(statistics.median(rng.choices(diffs, k=len(diffs))) for _ in range(1000))
    return statistics.median(diffs), medians[25], medians[974]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument(
        "--processes",
        type=int,
        default=3,
        help="fresh interpreters to measure our code in place in (default %(default)s)",
    )
    parser.add_argument("--in-place-only", action="store_true", help=argparse.SUPPRESS)
    add_cpu_argument(parser)
    args = parser.parse_args()
    pin(args.cpu)
    if args.in_place_only:  # one of `_in_place_runs`' processes
        print(json.dumps(_in_place(args.rounds, args.calls)))
        return
    timings, off_path, collections = _end_to_end(args.rounds, args.calls)

    python = sys.version.split()[0]
    where = "any CPU" if args.cpu < 0 else f"pinned to CPU {args.cpu}"
    print(f"openai {openai.__version__}, python {python}, {args.rounds} rounds x {args.calls} calls, {where}")
    print("medians; added: median of the per-round differences from untracked [95% interval]")
    print(f"{'':38}{'untracked':>10}{'tracked':>10}{'added':>24}{'busy loop':>11}{'added':>24}")
    for name, label, per in (
        ("call", "non-streaming chat call (us/call)", 1),
        ("stream", f"streamed chat, {CHUNKS} chunks (us/stream)", 1),
        ("stream", "  per chunk, fixed cost spread (us)", CHUNKS),
        ("usage stream", "  the same on api.openai.com (us/stream)", 1),
    ):
        base = [v * 1e6 / per for v in timings[name]["untracked"]]
        row = f"{label:38}{statistics.median(base):10.2f}"
        for mode, width in (("tracked", 10), ("busy loop", 11)):
            values = [v * 1e6 / per for v in timings[name][mode]]
            mid, low, high = paired(base, values)
            row += f"{statistics.median(values):{width}.2f}{f'{mid:+.2f} [{low:+.2f}, {high:+.2f}]':>24}"
        print(row)
    print(
        "garbage collections per 1000 non-streaming calls (generation 0/1/2; their time per call): "
        + ", ".join(
            f"{mode} {collections.per_thousand(mode)} ({collections.us_per_call(mode):.2f} us)"
            for mode in ("untracked", "tracked", "busy loop")
        )
    )
    _print_in_place(_in_place_runs(args))
    per_event = statistics.median(off_path) * 1e6
    print(f"off the caller's path: {per_event:.1f} us CPU per event (build + Amplitude client track)")
    # Fewer calls a round than wake the dispatch thread early: from there on each call also
    # hands it the GIL (backpressure, `WAKE_AT`), which back-to-back calls of a few
    # microseconds reach within milliseconds, and calls through the SDK never do here.
    direct = _per_call_cost(args.rounds, WAKE_AT // 2)
    unwrapped = direct["no wrapper"]
    print("our wrapper alone, on a method that only returns a completion (us/call; added):")
    for name, value in direct.items():
        print(f"  {name:24}{value * 1e6:9.2f}{(value - unwrapped) * 1e6:9.2f}")
    plain, proxied = _per_chunk_cost(args.rounds)
    print(
        f"per chunk, pre-parsed chunks through the proxy and fold: {(proxied - plain) * 1e6:.2f} us "
        f"({plain * 1e9:.0f} ns plain iteration, {proxied * 1e9:.0f} ns tracked)"
    )


if __name__ == "__main__":
    main()
