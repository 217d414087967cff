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

    python benchmarks/overhead.py [--rounds 30] [--calls 300]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import httpx2
import openai

import amplitude
import amplitude.ai
from amplitude.ai._dispatch import dispatcher
from loopback import AmplitudeCapture

CHUNKS = 50
COMPLETION = json.dumps(
    {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": "gpt-4o-2024-08-06",
        "choices": [
            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "Hello!"}}
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
    }
).encode()


def _chunk(i: int) -> str:
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "gpt-4o-2024-08-06",
        "choices": [{"index": 0, "delta": {"content": f"t{i} "}, "finish_reason": None}],
    }
    return f"data: {json.dumps(body)}\n\n"


STREAM = ("".join(_chunk(i) for i in range(CHUNKS)) + "data: [DONE]\n\n").encode()


def _handler(request: httpx2.Request) -> httpx2.Response:
    streaming = b'"stream":true' in request.content
    body, ctype = (STREAM, "text/event-stream") if streaming else (COMPLETION, "application/json")
    return httpx2.Response(200, content=body, headers={"content-type": ctype})


def _client() -> Any:
    transport = httpx2.MockTransport(_handler)
    return openai.OpenAI(
        api_key="sk-bench",
        base_url="http://127.0.0.1:1/v1",
        http_client=openai.DefaultHttpxClient(transport=transport),
        max_retries=0,
    )


MESSAGES = [{"role": "user", "content": "hi"}]


def _time_per_call(fn: Callable[[], Any], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    client = _client()

    def call() -> Any:
        return client.chat.completions.create(model="gpt-4o", messages=MESSAGES)

    def stream() -> Any:
        for _ in client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True):
            pass

    held: list[Any] = []
    real_handle = dispatcher._handle
    modes = ("untracked", "tracked", "busy loop")
    timings: dict[str, dict[str, list[float]]] = {name: {m: [] for m in modes} for name in ("call", "stream")}
    with AmplitudeCapture() as capture:
        analytics = amplitude.Amplitude("bench-key", amplitude.Config(server_url=capture.url))
        amplitude.ai.track(analytics)
        for fn in (call, stream):
            fn()  # warm up: lazy imports, patching, the dispatch thread
        amplitude.ai.flush()
        for _ in range(args.rounds):
            for mode in modes:
                if mode == "untracked":
                    amplitude.ai.untrack()
                else:
                    amplitude.ai.track(analytics)
                # "tracked": the dispatch thread only collects calls; they are sent after the round.
                dispatcher._handle = held.append if mode == "tracked" else real_handle
                timings["call"][mode].append(_time_per_call(call, args.calls))
                timings["stream"][mode].append(_time_per_call(stream, max(1, args.calls // 10)))
                amplitude.ai.flush()
        dispatcher._handle = real_handle
        amplitude.ai.untrack()
        start = time.perf_counter()
        for held_call in held:
            real_handle(held_call)
        off_path = (time.perf_counter() - start) / len(held)
        amplitude.ai.flush()
        analytics.shutdown()

    def us(values: list[float]) -> float:
        return statistics.median(values) * 1e6

    python = sys.version.split()[0]
    print(f"openai {openai.__version__}, python {python}, {args.rounds} rounds x {args.calls} calls")
    print(f"{'':40}{'untracked':>11}{'tracked':>11}{'added':>9}{'busy loop':>11}{'added':>9}")
    for name, label, per in (
        ("call", "non-streaming chat call (us/call)", 1),
        ("stream", f"streamed chat, {CHUNKS} chunks (us/stream)", 1),
        ("stream", "  per chunk, fixed cost spread (us)", CHUNKS),
    ):
        base, tracked, busy = (us(timings[name][m]) / per for m in modes)
        print(f"{label:40}{base:11.2f}{tracked:11.2f}{tracked - base:9.2f}{busy:11.2f}{busy - base:9.2f}")
    print(f"off the caller's path: {off_path * 1e6:.1f} us CPU per event (build + Amplitude client track)")


if __name__ == "__main__":
    main()
