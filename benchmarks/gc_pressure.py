"""Garbage collection brought on by what tracked calls keep until their events are built.

A finished call holds what its event needs until the dispatch thread builds the event, up
to a batch delay (0.5 s) later. Whatever it holds that the garbage collector tracks
survives young collections and brings on older ones, in the app's time. Here each round
is a burst of --calls back-to-back non-streaming calls whose events are held back until
the round ends (the worst case: overhead.py's `held_back`), tracked and untracked rounds
alternating; the real SDK answers through an in-process transport (no sockets), with a
body shaped like a recorded response. Printed: collections per 1,000 calls by generation,
and the time they took per call. Not a test.

    python benchmarks/gc_pressure.py [--provider anthropic|openai] [--calls 500] [--rounds 6]
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

import overhead

import amplitude.ai

MESSAGE = json.dumps(
    {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": "claude-haiku-4-5-20251001",
        "content": [{"type": "text", "text": "Hello!"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 5,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
            "output_tokens": 2,
            "service_tier": "standard",
        },
    }
).encode()


def _anthropic_call() -> Callable[[], Any]:
    import anthropic
    import httpx2 as httpx  # anthropic 2.x's HTTP client

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=MESSAGE, headers={"content-type": "application/json"})

    client = anthropic.Anthropic(
        api_key="sk-ant-bench",
        base_url="http://127.0.0.1:1",
        http_client=httpx.Client(transport=httpx.MockTransport(answer)),
        max_retries=0,
    )
    return lambda: client.messages.create(model="claude-haiku-4-5", max_tokens=50, messages=overhead.MESSAGES)


def _openai_call() -> Callable[[], Any]:
    call, _stream = overhead.workload()
    return call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--provider", choices=("anthropic", "openai"), default="anthropic")
    parser.add_argument("--calls", type=int, default=500, help="calls per round (default %(default)s)")
    parser.add_argument("--rounds", type=int, default=6)
    overhead.add_cpu_argument(parser)
    args = parser.parse_args()
    overhead.pin(args.cpu)
    call = _anthropic_call() if args.provider == "anthropic" else _openai_call()
    modes = ("untracked", "tracked")
    seen = overhead._Collections(modes)
    try:
        with overhead.tracked_client(warm_up=[call] * 200) as analytics:
            for mode in overhead.rotated(modes, args.rounds):
                if mode == "tracked":
                    amplitude.ai.track(analytics)
                else:
                    amplitude.ai.untrack()
                with overhead.held_back([]):
                    seen.mode = mode
                    for _ in range(args.calls):
                        call()
                    seen.mode = None
                    seen.calls[mode] += args.calls
    finally:
        gc.callbacks.remove(seen._seen)
    print(f"{args.provider}: {args.rounds} rounds of {args.calls} calls, events held back to the end of each")
    print("garbage collections per 1,000 calls (generation 0/1/2), and their time per call:")
    for mode in modes:
        print(f"  {mode:10} {seen.per_thousand(mode, decimals=1):>14} {seen.us_per_call(mode):8.2f} us")


if __name__ == "__main__":
    main()
