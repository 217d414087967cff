"""Tracking under load and across the process lifecycle: 20,000 calls from threads and
asyncio tasks with clients of their own, tracking switched on and off while threads are
mid-call, streams left to the garbage collector, exit and fork with events in flight.

Most tests run the real openai SDK on an in-process transport (the SDK's own
HTTP client with a `MockTransport`): 20,000 calls over loopback HTTP cost ~50 s of CPU on
two cores before tracking does anything, over this file's budget. The fork test uses the
loopback stub. Every call carries a unique marker as its `user`, which tracking
reports as the event's `user_id`, and the reply echoes it as the generated text, so each
event can be matched to its call, its client and the response its caller got.

The Amplitude clients upload in few, large batches: a burst of uploads can overflow a
server's listen queue, and amplitude-analytics loses a batch whose connection is reset
while it reads the response (no callback, no retry).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import itertools
import json
import os
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import openai
import pytest

import amplitude
import amplitude.ai
from amplitude.ai import _dispatch
from loopback import AmplitudeCapture, OpenAIStub
from test_lifecycle import run

MODEL = "gpt-4o"
MESSAGES = [{"role": "user", "content": "Say hello."}]
STREAM_EVERY = 8
"""Every how many calls is streamed."""


def _httpx() -> Any:
    """The httpx package the installed openai SDK is built on (httpx2 since openai 3)."""
    client_class = next(c for c in openai.DefaultHttpxClient.__mro__ if c.__name__ == "Client")
    return importlib.import_module(client_class.__module__.partition(".")[0])


httpx = _httpx()


def _completion(marker: str) -> dict[str, Any]:
    message = {"role": "assistant", "content": marker}
    return {
        "id": f"chatcmpl-{marker}",
        "object": "chat.completion",
        "created": 0,
        "model": MODEL,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
    }


def _sse(marker: str) -> bytes:
    base = {"id": f"chatcmpl-{marker}", "object": "chat.completion.chunk", "created": 0, "model": MODEL}
    half = len(marker) // 2
    deltas = [({"role": "assistant", "content": marker[:half]}, None), ({"content": marker[half:]}, None)]
    deltas.append(({}, "stop"))
    blocks = [
        {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
        for delta, finish in deltas
    ]
    return "".join(f"data: {json.dumps(block)}\n\n" for block in blocks).encode() + b"data: [DONE]\n\n"


def _reply(request: Any) -> Any:
    body = json.loads(request.content)
    if body.get("stream"):
        return httpx.Response(200, content=_sse(body["user"]), headers={"content-type": "text/event-stream"})
    return httpx.Response(200, json=_completion(body["user"]))


async def _reply_after_yielding(request: Any) -> Any:
    # Suspending inside every call makes the tasks interleave mid-call, between the
    # moment tracking reads the task's client and the moment the call ends.
    await asyncio.sleep(0)
    return _reply(request)


def sdk_client() -> Any:
    http_client = openai.DefaultHttpxClient(transport=httpx.MockTransport(_reply))
    return openai.OpenAI(api_key="sk-load", base_url="http://127.0.0.1:9/v1", http_client=http_client)


def async_sdk_client() -> Any:
    http_client = openai.DefaultAsyncHttpxClient(transport=httpx.MockTransport(_reply_after_yielding))
    return openai.AsyncOpenAI(api_key="sk-load", base_url="http://127.0.0.1:9/v1", http_client=http_client)


def chat(client: Any, marker: str, stream: bool) -> str:
    """One call; returns the text the caller got (the marker, when all is well)."""
    create = client.chat.completions.create
    if not stream:
        return create(model=MODEL, messages=MESSAGES, user=marker).choices[0].message.content
    chunks = create(model=MODEL, messages=MESSAGES, user=marker, stream=True)
    return "".join(c.choices[0].delta.content or "" for c in chunks)


async def achat(client: Any, marker: str, stream: bool) -> str:
    create = client.chat.completions.create
    if not stream:
        return (await create(model=MODEL, messages=MESSAGES, user=marker)).choices[0].message.content
    chunks = await create(model=MODEL, messages=MESSAGES, user=marker, stream=True)
    return "".join([c.choices[0].delta.content or "" async for c in chunks])


@contextlib.contextmanager
def amplitude_clients(capture: AmplitudeCapture, keys: Iterable[str]) -> Iterator[dict[str, Any]]:
    """Real Amplitude clients, one per API key, all posting to `capture` in few big batches.

    Every upload the client reports as failed lands in `failures` (checked on exit).
    """
    failures: list[tuple[int, str]] = []

    def callback(event: Any, code: int, message: str | None = None) -> None:
        if not 200 <= code < 300:
            failures.append((code, str(message)))

    clients = {
        key: amplitude.Amplitude(
            key,
            amplitude.Config(
                server_url=capture.url, flush_queue_size=1000, flush_interval_millis=10_000, callback=callback
            ),
        )
        for key in keys
    }
    try:
        yield clients
    finally:
        for client in clients.values():
            client.shutdown()
    assert failures == []


def deliver(clients: dict[str, Any]) -> None:
    """Hand every queued call to its client, then have the clients upload, one at a time.

    `shutdown()` waits for the uploads in flight, so afterwards the capture has seen
    every event that will ever be sent: counts can be exact, with no polling. Not
    `amplitude.ai.flush()`: it flushes all clients at once, and a burst of connections
    overflows the capture server's listen queue (see the module docstring).
    """
    assert _dispatch.dispatcher.drain(60), "the dispatch thread did not drain its backlog"
    for client in clients.values():
        client.shutdown()


def received(capture: AmplitudeCapture) -> list[tuple[str, str, dict[str, Any]]]:
    """(marker, api_key, event) for every event the capture accepted."""
    assert capture.rejected == [] and capture.failed == []
    return [
        (event.get("user_id", ""), payload["api_key"], event)
        for payload in capture.payloads
        for event in payload["events"]
    ]


def run_concurrently(
    in_thread: Callable[[int], None], threads: int, in_task: Callable[[int], Awaitable[None]], tasks: int
) -> None:
    """`in_thread(i)` on `threads` threads while one event loop here runs `in_task(j)` as
    `tasks` tasks; re-raises the first failure of any of them."""

    async def all_tasks() -> None:
        await asyncio.gather(*(in_task(j) for j in range(tasks)))

    with ThreadPoolExecutor(threads) as pool:
        futures = [pool.submit(in_thread, i) for i in range(threads)]
        asyncio.run(all_tasks())
        for future in futures:
            future.result()


def check_event(event: dict[str, Any], marker: str, stream: bool) -> None:
    """A complete event of the call that sent `marker`, carrying that call's own response."""
    p = event["event_properties"]
    assert event["event_type"] == "llm_operation", event
    assert (p["provider"], p["api"], p["stream"]) == ("openai", "chat.completions.create", stream), event
    assert p["response_preview"] == marker and p["latency_ms"] >= 0, event
    if stream:
        assert p["stream_completed"] is True, event


def check_exactly_once(capture: AmplitudeCapture, expected: dict[str, tuple[str, bool]]) -> None:
    """Each expected marker arrived once, from its client (api_key), with its own data."""
    got = received(capture)
    counts = Counter(marker for marker, _, _ in got)
    duplicated = sorted(marker for marker, n in counts.items() if n > 1)
    lost = sorted(expected.keys() - counts.keys())
    unexpected = sorted(counts.keys() - expected.keys())
    assert (duplicated[:5], lost[:5], unexpected[:5]) == ([], [], []), (
        f"{len(duplicated)} duplicated, {len(lost)} lost, {len(unexpected)} unexpected of {len(expected)}"
    )
    misattributed = [(marker, key) for marker, key, _ in got if key != expected[marker][0]]
    assert misattributed == [], f"{len(misattributed)} events sent with another client's key"
    for marker, _, event in got:
        check_event(event, marker, expected[marker][1])
    assert _dispatch.dispatcher.dropped == 0


# -- 20,000 calls from threads and tasks, each with its own client -------------------

THREADS, THREAD_CALLS = 8, 1250
TASKS, TASK_CALLS, TASK_CLIENTS = 200, 50, 8
PROCESS_KEY = "load-process-wide"


def test_threads_and_tasks_with_own_clients_get_every_event_once(capture: AmplitudeCapture) -> None:
    thread_keys = [f"load-thread-{i}" for i in range(THREADS)]
    task_keys = [f"load-tasks-{i}" for i in range(TASK_CLIENTS)]
    expected: dict[str, tuple[str, bool]] = {}
    for i, n in itertools.product(range(THREADS), range(THREAD_CALLS)):
        expected[f"thread{i}-{n:05d}"] = (thread_keys[i], n % STREAM_EVERY == 0)
    for j, n in itertools.product(range(TASKS), range(TASK_CALLS)):
        expected[f"task{j:03d}-{n:03d}"] = (task_keys[j % TASK_CLIENTS], n % STREAM_EVERY == 1)
    assert len(expected) == 20_000

    with amplitude_clients(capture, [PROCESS_KEY, *thread_keys, *task_keys]) as clients:
        # A call that escaped its scope would be sent with this client: misattributed.
        amplitude.ai.track(clients[PROCESS_KEY])
        sync_client, async_client = sdk_client(), async_sdk_client()

        def in_thread(i: int) -> None:
            client = clients[thread_keys[i]]
            with amplitude.ai.tracking(client):
                for n in range(THREAD_CALLS):
                    marker = f"thread{i}-{n:05d}"
                    assert chat(sync_client, marker, expected[marker][1]) == marker
                    assert amplitude.ai.get_active_client() is client

        async def in_task(j: int) -> None:
            client = clients[task_keys[j % TASK_CLIENTS]]
            with amplitude.ai.tracking(client):
                for n in range(TASK_CALLS):
                    marker = f"task{j:03d}-{n:03d}"
                    assert await achat(async_client, marker, expected[marker][1]) == marker
                    assert amplitude.ai.get_active_client() is client

        run_concurrently(in_thread, THREADS, in_task, TASKS)
        amplitude.ai.untrack()
        deliver(clients)
    check_exactly_once(capture, expected)


# -- tracking switched on and off while other threads are mid-call --------------------

WORKERS, ROUNDS, CHAOS_CALLS, STEADY_CALLS = 4, 8, 60, 15


def test_toggling_tracking_while_threads_are_mid_call(capture: AmplitudeCapture) -> None:
    """`untrack()`/`track()` and `uninstrument()`/`instrument()` race calls in flight.

    Each round: calls while another thread toggles (they may or may not be tracked),
    then calls with tracking surely on (all must arrive), then surely off (none may).
    """
    key = "load-toggle"
    barrier = threading.Barrier(WORKERS + 1)
    maybe: set[str] = set()
    must: set[str] = set()
    never: set[str] = set()

    with amplitude_clients(capture, [key]) as clients:
        amp = clients[key]
        toggles: list[Callable[[], None]] = [
            amplitude.ai.untrack,
            lambda: amplitude.ai.track(amp),
            amplitude.ai.uninstrument,
            amplitude.ai.instrument,
            lambda: amplitude.ai.track(amp),
        ]
        sdk = sdk_client()

        def calls(kind: set[str], label: str, count: int, worker: int, round_: int) -> None:
            for n in range(count):
                marker = f"{label}-{worker}-{round_:02d}-{n:03d}"
                kind.add(marker)
                assert chat(sdk, marker, n % 4 == 0) == marker

        def worker(w: int) -> None:
            for r in range(ROUNDS):
                barrier.wait()
                calls(maybe, "maybe", CHAOS_CALLS, w, r)
                barrier.wait()  # the toggler stops, and turns tracking on
                barrier.wait()
                calls(must, "must", STEADY_CALLS, w, r)
                barrier.wait()  # the toggler turns tracking off
                barrier.wait()
                calls(never, "never", STEADY_CALLS, w, r)

        def toggler() -> None:
            cycle = itertools.cycle(toggles)
            for r in range(ROUNDS):
                barrier.wait()
                while barrier.n_waiting < WORKERS:
                    next(cycle)()
                barrier.wait()
                amplitude.ai.track(amp)
                barrier.wait()
                barrier.wait()
                amplitude.ai.untrack()
                if r % 2:
                    amplitude.ai.uninstrument()
                barrier.wait()

        try:
            with ThreadPoolExecutor(WORKERS + 1) as pool:
                futures = [pool.submit(worker, w) for w in range(WORKERS)] + [pool.submit(toggler)]
                for future in futures:
                    future.result()
        finally:
            amplitude.ai.instrument()  # the rest of the suite expects the patches in place
        deliver(clients)

    check_toggled(capture, key, maybe, must, never)


def check_toggled(
    capture: AmplitudeCapture, key: str, maybe: set[str], must: set[str], never: set[str]
) -> None:
    got = received(capture)
    counts = Counter(marker for marker, _, _ in got)
    assert [m for m, n in counts.items() if n > 1] == []
    assert sorted(must - counts.keys()) == [], "calls made with tracking on were lost"
    assert sorted(never & counts.keys()) == [], "calls made with tracking off were sent"
    assert counts.keys() <= maybe | must
    for marker, api_key, event in got:
        assert api_key == key
        check_event(event, marker, int(marker.rsplit("-", 1)[1]) % 4 == 0)
    chaos_tracked = len(counts.keys() & maybe)
    assert 0 < chaos_tracked < len(maybe), "the toggling did not overlap the calls"


# -- streams abandoned without close -------------------------------------------------

ABANDON_THREADS, ABANDON_THREAD_CALLS = 4, 400
ABANDON_TASKS, ABANDON_TASK_CALLS = 50, 16


def test_abandoned_streams_under_load_each_send_one_event(capture: AmplitudeCapture) -> None:
    """Streams dropped unread, or after one chunk, by their own thread or task or later by
    another thread: each is sent once, when collected, with the client of its call."""
    thread_keys = [f"abandon-thread-{i}" for i in range(ABANDON_THREADS)]
    task_key = "abandon-tasks"
    parked: list[Any] = []  # released later by the main thread, outside every scope
    expected: dict[str, tuple[str, int]] = {}  # marker: (api_key, chunks read); -1: completed

    def plan(marker: str, key: str, n: int) -> int:
        reads = (-1, 0, 1, 1)[n % 4]
        expected[marker] = (key, reads)
        return reads

    with amplitude_clients(capture, [*thread_keys, task_key]) as clients:
        sync_client, async_client = sdk_client(), async_sdk_client()

        def in_thread(i: int) -> None:
            with amplitude.ai.tracking(clients[thread_keys[i]]):
                for n in range(ABANDON_THREAD_CALLS):
                    marker = f"abandon{i}-{n:04d}"
                    reads = plan(marker, thread_keys[i], n)
                    stream = sync_client.chat.completions.create(
                        model=MODEL, messages=MESSAGES, user=marker, stream=True
                    )
                    if reads < 0:
                        assert "".join(c.choices[0].delta.content or "" for c in stream) == marker
                    elif reads:
                        next(stream)
                    if n % 8 in (1, 3):
                        parked.append(stream)

        async def in_task(j: int) -> None:
            with amplitude.ai.tracking(clients[task_key]):
                for n in range(ABANDON_TASK_CALLS):
                    marker = f"abandon-task{j:02d}-{n:03d}"
                    reads = plan(marker, task_key, n)
                    stream = await async_client.chat.completions.create(
                        model=MODEL, messages=MESSAGES, user=marker, stream=True
                    )
                    if reads < 0:
                        assert "".join([c.choices[0].delta.content or "" async for c in stream]) == marker
                    elif reads:
                        await stream.__anext__()
                    if n % 8 in (1, 3):
                        parked.append(stream)

        run_concurrently(in_thread, ABANDON_THREADS, in_task, ABANDON_TASKS)
        assert not amplitude.ai.is_tracking()
        parked.clear()
        gc.collect()
        deliver(clients)

    got = received(capture)
    counts = Counter(marker for marker, _, _ in got)
    assert ([m for m, n in counts.items() if n > 1], sorted(expected.keys() - counts.keys())) == ([], [])
    for marker, api_key, event in got:
        key, reads = expected[marker]
        p = event["event_properties"]
        assert api_key == key and p["stream"] is True, event
        assert p["stream_completed"] is (reads < 0), event
        assert ("time_to_first_token_ms" in p) is (reads != 0), event
    assert _dispatch.dispatcher.open_streams == {}


# -- interpreter exit and fork, in fresh interpreters ---------------------------------

# Both scripts run after test_lifecycle's prelude (`amp` tracked process-wide, `chat()` over
# loopback HTTP); this one adds this module's in-process SDK client, for speed.
LOAD_PRELUDE = """
import threading
from concurrent.futures import ThreadPoolExecutor
import test_load as load
"""

EXIT_CALLS = 2000


def test_events_queued_at_exit_are_all_delivered_once(stub: OpenAIStub, capture: AmplitudeCapture) -> None:
    # The dispatch thread is held in its first hand-over until the last call is made, so
    # every later call is still queued in this process when the interpreter exits.
    script = f"""
    from amplitude.ai._dispatch import dispatcher

    gate = threading.Event()

    class Gated:
        def track(self, event):
            gate.wait()
            amp.track(event)

        def flush(self):
            amp.flush()

    amplitude.ai.track(Gated())
    sdk = load.sdk_client()

    def calls(t):
        for n in range(t, {EXIT_CALLS}, 4):
            load.chat(sdk, f"exit-{{n:05d}}", n % {STREAM_EVERY} == 0)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(calls, range(4)))
    print("queued at exit", len(dispatcher._pending))
    gate.set()
    """
    result = run(LOAD_PRELUDE + textwrap.dedent(script), stub, capture)
    assert result.returncode == 0, result.stderr
    assert f"queued at exit {EXIT_CALLS - 1}" in result.stdout, result.stdout
    capture.wait_for(EXIT_CALLS, timeout=30)
    users = Counter(e.get("user_id") for e in capture.events)
    assert users == Counter(f"exit-{n:05d}" for n in range(EXIT_CALLS))
    for event in capture.events:
        n = int(event["user_id"].rsplit("-", 1)[1])
        check_event(event, event["user_id"], n % STREAM_EVERY == 0)


FORKS, CHILD_CALLS, BUSY_THREADS = 8, 10, 3


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fork_children_while_parent_threads_are_busy(stub: OpenAIStub, capture: AmplitudeCapture) -> None:
    """Regression: a child forked while the dispatch thread was mid-event inherited the
    locks it held (the Amplitude client's Timeline.locks; on the first event, the import
    lock of amplitude.ai._event) and lost all its events.

    Children forked while other threads of the parent make tracked calls, and its
    dispatch thread is busy handing their events to the Amplitude client, deliver their
    own events once; the parent's are delivered once too.

    Every other fork happens while the dispatch thread is surely inside the client: a
    plugin of the client (as a slow one would) holds it there until the fork is done.
    """
    script = f"""
    import json, threading
    from concurrent.futures import ThreadPoolExecutor
    from amplitude.constants import PluginType
    from amplitude.plugin import EventPlugin

    class Holding(EventPlugin):
        def __init__(self):
            super().__init__(PluginType.BEFORE)
            self.inside, self.forked = threading.Event(), threading.Event()

        def execute(self, event):
            if event.user_id.startswith("parent-hold-"):
                self.inside.set()
                self.forked.wait(0.5)  # bounded: a fix may have fork() wait for this thread
            return event

    hold = Holding()
    amp.add(hold)
    stop = threading.Event()

    def busy(t):
        n = 0
        while not stop.is_set():
            chat(user=f"parent-{{t}}-{{n:05d}}", stream=n % {STREAM_EVERY} == 0)
            n += 1
        return n

    pool = ThreadPoolExecutor({BUSY_THREADS})
    parent = [pool.submit(busy, t) for t in range({BUSY_THREADS})]
    children = []
    for c in range({FORKS}):
        hold.inside.clear()
        hold.forked.clear()
        chat(user=f"parent-{{('main', 'hold')[c % 2]}}-{{c:02d}}")
        if c % 2:
            assert hold.inside.wait(30)
        pid = os.fork()
        if pid == 0:
            # SDK clients are not fork-safe (the parent's threads may hold its pool's lock).
            client = openai.OpenAI(api_key="sk-child", base_url=client.base_url, max_retries=0)
            for n in range({CHILD_CALLS}):
                chat(user=f"child-{{c:02d}}-{{n:03d}}", stream=n % 4 == 0)
            sys.exit(0)
        hold.forked.set()
        children.append(os.waitpid(pid, 0)[1])
    stop.set()
    print("RESULT", json.dumps({{"children": children, "parent": [f.result() for f in parent]}}))
    """
    result = run(script, stub, capture)
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout.split("RESULT ", 1)[1])
    assert outcome["children"] == [0] * FORKS
    expected = Counter(f"child-{c:02d}-{n:03d}" for c in range(FORKS) for n in range(CHILD_CALLS))
    expected.update(f"parent-{('main', 'hold')[c % 2]}-{c:02d}" for c in range(FORKS))
    for t, count in enumerate(outcome["parent"]):
        expected.update(f"parent-{t}-{n:05d}" for n in range(count))
    with contextlib.suppress(AssertionError):  # the exact comparison below says what is missing
        capture.wait_for(sum(expected.values()), timeout=5)
    users = Counter(e.get("user_id") for e in capture.events)
    missing = sorted({m.rsplit("-", 1)[0] for m in expected - users})
    assert (missing, users - expected) == ([], Counter()), "events lost or duplicated"


def test_a_worker_short_of_the_gil_gets_it_instead_of_dropping(
    amp: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: threads making calls back to back left the dispatch thread a thin share
    of the GIL; it fell behind until events were dropped at MAX_PENDING. Here building an
    event costs a few calls' worth of CPU, and the caps are scaled down."""
    monkeypatch.setattr(_dispatch, "WAKE_AT", 50)
    monkeypatch.setattr(_dispatch, "MAX_PENDING", 1_000)
    handled: list[Any] = []

    def costly_handle(call: Any) -> None:
        deadline = time.perf_counter() + 0.0005
        while time.perf_counter() < deadline:
            pass
        handled.append(call)

    monkeypatch.setattr(_dispatch.dispatcher, "_handle", costly_handle)
    client = sdk_client()
    amplitude.ai.track(amp)

    def calls(thread: int) -> None:
        for i in range(500):
            assert chat(client, f"gil-{thread}-{i}", stream=False) == f"gil-{thread}-{i}"

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(calls, range(4)))
    assert _dispatch.dispatcher.drain(30)
    assert _dispatch.dispatcher.dropped == 0
    assert len(handled) == 2_000
