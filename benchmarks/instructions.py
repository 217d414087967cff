"""What tracking adds to a call in CPU instructions and cache misses, counted by valgrind.

Timings on a shared or virtual machine move by more than tracking costs (the same
untracked call varies by +-30 us between runs here); instruction counts do not. Each
mode runs in a fresh interpreter under callgrind, once with a few calls and once with
more: the difference, divided by the extra calls, is the cost of one call, start-up and
warm-up excluded. Only the caller's thread is counted; the dispatch thread's work is
reported on its own line. Includes the garbage collections the calls cause.

The "estimated" column converts instructions to time at this machine's own rate for the
untracked call (its measured duration over its instructions); cache misses beyond what
the simulation models (TLB, branch prediction) are not in it.

    python benchmarks/instructions.py [--calls 400]   (needs valgrind on PATH)
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BASE_CALLS = 100
WARM_UP = 30
MODES = ("untracked", "tracked")
EVENTS = ("Ir", "D1mr", "D1mw", "DLmr", "DLmw")


def _child(mode: str, kind: str, calls: int) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from overhead import workload

    import amplitude
    import amplitude.ai
    from amplitude.ai._dispatch import dispatcher

    call, stream = workload()
    fn = stream if kind == "stream" else call
    # The event is built and dropped off the caller's thread, as in an app; no upload.
    dispatcher._handle = lambda _call: None
    if mode == "tracked":
        amplitude.ai.track(
            amplitude.Amplitude("bench-key", amplitude.Config(server_url="http://127.0.0.1:9/"))
        )
    for _ in range(WARM_UP):
        fn()
    amplitude.ai.flush()
    for _ in range(calls):
        fn()
    os._exit(0)  # exit work is not the calls'


def _counts(out_dir: Path) -> dict[int, dict[str, int]]:
    """Event totals per thread from callgrind's per-thread output files."""
    per_thread: dict[int, dict[str, int]] = {}
    for path in out_dir.iterdir():
        match = re.search(r"-(\d+)$", path.name)
        if not match:
            continue
        names: list[str] = []
        totals: list[int] = []
        for line in path.read_text().splitlines():
            if line.startswith("events:"):
                names = line.split()[1:]
            elif line.startswith("totals:"):
                totals = [int(v) for v in line.split()[1:]]
        per_thread[int(match.group(1))] = dict(zip(names, totals))
    return per_thread


def _run(mode: str, kind: str, calls: int) -> dict[int, dict[str, int]]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        cmd = [
            "valgrind",
            "--tool=callgrind",
            "--separate-threads=yes",
            "--cache-sim=yes",
            f"--callgrind-out-file={out / 'cg.out'}",
            sys.executable,
            __file__,
            "--child",
            mode,
            kind,
            str(calls),
        ]
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        subprocess.run(cmd, check=True, env=env, capture_output=True)
        return _counts(out)


def _off_thread(per_thread: dict[int, dict[str, int]]) -> int:
    return sum(counts.get("Ir", 0) for thread, counts in per_thread.items() if thread != 1)


def _wall_time_per_call(kind: str, calls: int) -> float:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from overhead import workload

    call, stream = workload()
    fn = stream if kind == "stream" else call
    for _ in range(WARM_UP):
        fn()
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - start) / calls)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--child", nargs=3, metavar=("MODE", "KIND", "CALLS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child[0], args.child[1], int(args.child[2]))
        return
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed")
    more = BASE_CALLS + args.calls
    print(f"python {sys.version.split()[0]}; per call: (run of {more} - run of {BASE_CALLS}) / {args.calls}")
    print(f"(streams: {more // 8} and {BASE_CALLS // 8}); the caller's thread only")
    print(f"{'':34}{'instructions':>14}{'D1 misses':>11}{'LL misses':>11}{'estimated':>12}")
    # A stream of 50 chunks runs ~7x the instructions of a call: fewer of them.
    for kind, label, calls in (
        ("call", "non-streaming chat call", args.calls),
        ("stream", "streamed chat, 50 chunks", args.calls // 8),
    ):
        base = BASE_CALLS // 8 if kind == "stream" else BASE_CALLS
        per_call: dict[str, dict[str, float]] = {}
        worker: dict[str, float] = {}
        for mode in MODES:
            few, more = _run(mode, kind, base), _run(mode, kind, base + calls)
            per_call[mode] = {e: (more[1].get(e, 0) - few[1].get(e, 0)) / calls for e in EVENTS}
            worker[mode] = (_off_thread(more) - _off_thread(few)) / calls
        seconds = _wall_time_per_call(kind, 200 if kind == "call" else 50)
        rate = per_call["untracked"]["Ir"] / seconds
        rows = [(f"{label}, {mode}", per_call[mode]) for mode in MODES]
        added = {e: per_call["tracked"][e] - per_call["untracked"][e] for e in EVENTS}
        for name, row in (*rows, ("  added by tracking", added)):
            d1, ll = row["D1mr"] + row["D1mw"], row["DLmr"] + row["DLmw"]
            estimate = row["Ir"] / rate * 1e6
            print(f"{name:34}{row['Ir']:14,.0f}{d1:11,.0f}{ll:11,.1f}{estimate:10.2f} us")
        print(f"{'  dispatch thread (off the path)':34}{worker['tracked']:14,.0f}")


if __name__ == "__main__":
    main()
