"""Our per-call cost next to OpenTelemetry's official openai instrumentation.

One process, interleaved rounds, medians; the real openai SDK over overhead.py's
in-process transport. Modes:

- untracked: neither instrumentation installed (`amplitude.ai.uninstrument()`).
- ours: `amplitude.ai.instrument()` + `track()` with a real Amplitude client posting to
  a loopback capture in another process. The dispatch thread's work (building the
  event, the Amplitude client's `track()`) is held back until the round ends, so this
  is the caller's path alone; that work is timed per event on its own ("off path").
- ours, dispatch live: the same with the dispatch thread running during the round
  (a CPU-bound loop of back-to-back calls, where it competes for the GIL).
- otel simple: `OpenAIInstrumentor` (opentelemetry-instrumentation-openai-v2) with an
  SDK `TracerProvider` + `SimpleSpanProcessor(InMemorySpanExporter)`; span creation,
  attributes and the export all run on the caller's path (exporting to memory is a list
  append: a network exporter would add its whole request here).
- otel batch: the same with `BatchSpanProcessor`, the production setting: the caller
  pays for the span and a queue put; export runs on the processor's thread (flushed
  after the round, outside the timings, like ours).

OTel records no metrics or log events here (no meter or logger provider configured).
Needs the benchmark environment of benchmarks/requirements.txt:

    python benchmarks/peer.py [--rounds 30] [--calls 300] [--streams 60] [--cpu N]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import openai
from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from overhead import (
    CHUNKS,
    _time_per_call,
    add_cpu_argument,
    held_back,
    paired,
    pin,
    rotated,
    tracked_client,
    workload,
)

import amplitude
import amplitude.ai

MODES = ("untracked", "ours", "ours, dispatch live", "otel simple", "otel batch")


class _OTel:
    """One TracerProvider per span processor, instrumented only for the rounds that use it."""

    def __init__(self, processor: type[SpanProcessor]) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(processor(self.exporter))  # type: ignore[call-arg]

    @contextlib.contextmanager
    def instrumented(self, expected_spans: int) -> Iterator[None]:
        instrumentor = OpenAIInstrumentor()
        # Its dependency check accepts openai 3.x ("openai >= 1.26.0"): no skip needed.
        instrumentor.instrument(tracer_provider=self.provider)
        try:
            yield
        finally:
            instrumentor.uninstrument()
        self.provider.force_flush()
        spans = len(self.exporter.get_finished_spans())
        self.exporter.clear()
        if spans != expected_spans:
            raise RuntimeError(f"OpenTelemetry recorded {spans} spans, expected {expected_spans}")


def _rounds(rounds: int, calls: int, streams: int) -> tuple[dict[str, dict[str, list[float]]], list[float]]:
    call, stream = workload()

    def measure(mode: str) -> None:
        timings["call"][mode].append(_time_per_call(call, calls))
        timings["stream"][mode].append(_time_per_call(stream, streams))

    otel = {"otel simple": _OTel(SimpleSpanProcessor), "otel batch": _OTel(BatchSpanProcessor)}
    off_path: list[float] = []
    timings: dict[str, dict[str, list[float]]] = {name: {m: [] for m in MODES} for name in ("call", "stream")}
    with tracked_client(warm_up=(call, stream)) as analytics:
        amplitude.ai.uninstrument()
        for processor in otel.values():
            with processor.instrumented(expected_spans=2):
                for fn in (call, stream):
                    fn()
        for mode in rotated(MODES, rounds):
            amplitude.ai.uninstrument()
            amplitude.ai.untrack()
            if mode == "ours":
                amplitude.ai.instrument()
                amplitude.ai.track(analytics)
                with held_back(off_path) as held:
                    measure(mode)
                if len(held) != calls + streams:
                    raise RuntimeError(f"we tracked {len(held)} calls, expected {calls + streams}")
            elif mode == "ours, dispatch live":
                amplitude.ai.instrument()
                amplitude.ai.track(analytics)
                measure(mode)
            elif mode in otel:
                with otel[mode].instrumented(expected_spans=calls + streams):
                    measure(mode)
            else:
                measure(mode)
    return timings, off_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--streams", type=int, default=60, help="streamed calls per mode and round")
    add_cpu_argument(parser)
    args = parser.parse_args()
    pin(args.cpu)
    timings, off_path = _rounds(args.rounds, args.calls, args.streams)

    def added(name: str, mode: str, per: int) -> float:
        return paired(timings[name]["untracked"], timings[name][mode])[0] / per * 1e6

    print(
        f"openai {openai.__version__}, opentelemetry-instrumentation-openai-v2 "
        f"{version('opentelemetry-instrumentation-openai-v2')}, opentelemetry-sdk "
        f"{version('opentelemetry-sdk')}, python {sys.version.split()[0]}, "
        f"{args.rounds} rounds x {args.calls} calls + {args.streams} streams, "
        + ("any CPU" if args.cpu < 0 else f"pinned to CPU {args.cpu}")
    )
    rows = (
        ("call", "non-streaming chat call (us/call)", 1),
        ("stream", f"streamed chat, {CHUNKS} chunks (us/stream)", 1),
        ("stream", "  per chunk, fixed cost spread (us)", CHUNKS),
    )
    print("added latency on the caller's path vs untracked (medians of the per-round differences):")
    header = "".join(f"{m:>21}" for m in MODES[1:])
    print(f"{'':38}{'untracked':>11}{header}{'ours/simple':>13}{'ours/batch':>12}")
    for name, label, per in rows:
        base = statistics.median(timings[name]["untracked"]) / per * 1e6
        ours, live, simple, batch = (added(name, m, per) for m in MODES[1:])
        ratios = "".join(
            f"{ours / theirs:>12.2f} " if theirs > 0 and ours > 0 else f"{'n/a':>12} "
            for theirs in (simple, batch)
        )
        print(f"{label:38}{base:11.2f}{ours:21.2f}{live:21.2f}{simple:21.2f}{batch:21.2f}{ratios}")
    per_event = statistics.median(off_path) * 1e6
    ours_call = added("call", "ours", 1)
    print(
        f"ours off the caller's path: {per_event:.1f} us per event on the dispatch thread "
        f"(build + Amplitude client track); caller's path + off path: {ours_call + per_event:.1f} us/call"
    )
    print(
        "otel simple includes its export (to memory) on the caller's path; otel batch exports on its "
        "thread, not timed here (a real exporter serialises and sends there)."
    )


if __name__ == "__main__":
    main()
