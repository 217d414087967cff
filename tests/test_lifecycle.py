"""Process lifecycle, in fresh interpreters: events survive exit (normal, sys.exit,
unhandled exception, streams left open) and fork (children deliver their own events,
the parent's are not sent twice)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from loopback import AmplitudeCapture, OpenAIStub

TESTS = Path(__file__).resolve().parent

PRELUDE = """
import os, sys
sys.path.insert(0, {tests!r})
import amplitude, amplitude.ai, openai
amp = amplitude.Amplitude("k-lifecycle", amplitude.Config(server_url={capture!r}))
amplitude.ai.track(amp)
client = openai.OpenAI(api_key="sk-lifecycle", base_url={base_url!r}, max_retries=0)
def chat(**kw):
    return client.chat.completions.create(model="m", messages=[{{"role": "user", "content": "x"}}], **kw)
"""


def run(
    script: str,
    stub: OpenAIStub,
    capture: AmplitudeCapture,
    tracked: bool = True,
    flags: tuple[str, ...] = (),
) -> subprocess.CompletedProcess[str]:
    code = PRELUDE.format(tests=str(TESTS), capture=capture.url, base_url=stub.base_url)
    if not tracked:
        assert "amplitude.ai.track(amp)\n" in code
        code = code.replace("amplitude.ai.track(amp)\n", "")
    code += textwrap.dedent(script)
    return subprocess.run(
        [sys.executable, *flags, "-c", code], check=False, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("ending", "returncode"),
    [("pass", 0), ("sys.exit(3)", 3), ("raise SystemExit('bye')", 1), ("raise ValueError('unhandled')", 1)],
)
def test_events_are_delivered_at_exit(
    stub: OpenAIStub, capture: AmplitudeCapture, ending: str, returncode: int
) -> None:
    result = run(f"chat()\nchat()\n{ending}\n", stub, capture)
    assert result.returncode == returncode, result.stderr
    capture.wait_for(2)
    assert len(capture.events) == 2
    assert "amplitude.ai" not in result.stderr.replace("ValueError", ""), result.stderr


def test_an_app_run_with_warnings_as_errors_sees_none(stub: OpenAIStub, capture: AmplitudeCapture) -> None:
    # As test suites run (pytest's `filterwarnings = error`), in dev mode (resource
    # warnings): a call, a stream read through, one left unread, async ones, a scope.
    script = """
    import asyncio
    chat()
    for _ in chat(stream=True):
        pass
    unread = chat(stream=True)
    next(iter(unread))
    del unread
    aclient = openai.AsyncOpenAI(api_key="sk-lifecycle", base_url=client.base_url, max_retries=0)
    async def calls():
        await aclient.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
        stream = await aclient.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "x"}], stream=True
        )
        async for _ in stream:
            pass
        await aclient.close()
    asyncio.run(calls())
    with amplitude.ai.tracking(amp):
        chat()
    """
    result = run(script, stub, capture, flags=("-W", "error", "-X", "dev"))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert len(capture.wait_for(6)) == 6


def test_stream_open_at_exit_is_delivered(stub: OpenAIStub, capture: AmplitudeCapture) -> None:
    script = "stream = chat(stream=True)\nnext(stream)\n"
    untracked = run(script, stub, capture, tracked=False)
    result = run(script, stub, capture)
    # The process ends as it would untracked. Not always with 0: on Python 3.13+ the SDK's
    # own stream crashes the interpreter's last garbage collection (CPython gh-132413: its
    # generator's `finally` makes a `datetime.timedelta` after `_datetime` is gone).
    assert result.returncode == untracked.returncode, result.stderr
    if sys.version_info < (3, 13):
        assert result.returncode == 0, result.stderr
    (event,) = capture.wait_for(1)
    assert event["event_properties"]["stream"] is True
    assert event["event_properties"]["stream_completed"] is False


# What Python 3.12.0 to 3.12.2 do from the moment the interpreter starts exiting (CPython
# gh-113964): refuse to start threads, so neither our dispatch thread nor amplitude-analytics'
# upload threads can start. Registered after `track()`, this hook runs before ours.
NO_THREADS_AT_EXIT = """
import threading
def _refuse(*args, **kwargs):
    raise RuntimeError("can't create new thread at interpreter shutdown")
def _exiting():
    for name in ("_start_new_thread", "_start_joinable_thread"):  # 3.12- / 3.13+
        if hasattr(threading, name):
            setattr(threading, name, _refuse)
threading._register_atexit(_exiting)
"""


@pytest.mark.parametrize(
    ("before", "calls", "events"),
    [
        ("", "chat()\nchat()\n", 2),
        ("", "chat()\nstream = chat(stream=True)\nnext(stream)\n", 2),
        # Nothing reaches our dispatch thread before exit (it never starts), so nothing races it.
        ("", "stream = chat(stream=True)\nnext(stream)\n", 1),
        # The first event reaches the client before exit, whose consumer thread then waits
        # out its flush interval; the two handed over at exit make a full batch, which wakes
        # it to upload from a pool that has no thread yet.
        (
            "",
            "import time\nchat()\ntime.sleep(1.5)\namp.configuration.flush_queue_size = 2\nchat()\nchat()\n",
            3,
        ),
        # A client the package made and shuts down itself (as the environment and launcher do).
        (
            "amplitude.ai.configure(api_key='amp-k-owned', server_url=amp.configuration.server_url)\n",
            "chat()\n",
            1,
        ),
    ],
    ids=[
        "calls",
        "stream left open",
        "only a stream left open",
        "client consumer waiting",
        "client of configure()",
    ],
)
def test_events_are_delivered_at_an_exit_that_starts_no_thread(
    stub: OpenAIStub, capture: AmplitudeCapture, before: str, calls: str, events: int
) -> None:
    result = run(before + NO_THREADS_AT_EXIT + calls, stub, capture)
    assert result.returncode == 0, result.stderr
    assert len(capture.wait_for(events)) == events
    assert "amplitude.ai" not in result.stderr, result.stderr
    # Untouched, a client logs a traceback when it is handed its first event at exit, and
    # again after a consumer thread emptied its buffer (its next one cannot start). One may
    # remain where our dispatch thread was handing an event over as the exit began (after a
    # stall of 0.5 s, its batch delay): it meets the refusal first.
    raced = 0 if calls.startswith("stream") else 1
    assert result.stderr.count("RuntimeError: can't create new thread") <= raced, result.stderr


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fork_child_delivers_its_own_and_parent_events_are_not_duplicated(
    stub: OpenAIStub, capture: AmplitudeCapture
) -> None:
    script = """
    chat(user="parent-before-fork")  # still queued in the parent when it forks
    pid = os.fork()
    if pid == 0:
        chat(user="child-after-fork")
        sys.exit(0)
    _, status = os.waitpid(pid, 0)
    chat(user="parent-after-fork")
    print("child status", status)
    """
    result = run(script, stub, capture)
    assert result.returncode == 0, result.stderr
    assert "child status 0" in result.stdout
    events = capture.wait_for(3)
    assert sorted(e["user_id"] for e in events) == [
        "child-after-fork",
        "parent-after-fork",
        "parent-before-fork",
    ]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_events_buffered_in_the_amplitude_client_are_not_resent_by_children(
    stub: OpenAIStub, capture: AmplitudeCapture
) -> None:
    """Regression: amplitude-analytics copies its unsent buffer into forked children,
    which uploaded it again at exit."""
    script = """
    from amplitude.ai._dispatch import dispatcher
    chat(user="parent-before-fork")
    dispatcher.drain(5)  # handed to the Amplitude client, not yet uploaded
    pid = os.fork()
    if pid == 0:
        sys.exit(0)
    os.waitpid(pid, 0)
    """
    result = run(script, stub, capture)
    assert result.returncode == 0, result.stderr
    capture.wait_for(1)
    assert [e["user_id"] for e in capture.events] == ["parent-before-fork"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs the fork start method")
def test_multiprocessing_fork_children_deliver_their_events(
    stub: OpenAIStub, capture: AmplitudeCapture
) -> None:
    script = """
    import multiprocessing
    from amplitude.ai._dispatch import dispatcher

    def work(n):
        chat(user=f"child-{n}-user")
        return n

    chat(user="parent-user")
    dispatcher.drain(5)  # in the parent's Amplitude buffer when the children fork
    context = multiprocessing.get_context("fork")
    processes = [context.Process(target=work, args=(n,)) for n in range(3)]
    for p in processes:
        p.start()
    for p in processes:
        p.join(30)
    print("exit codes", [p.exitcode for p in processes])
    """
    result = run(script, stub, capture)
    assert result.returncode == 0, result.stderr
    assert "exit codes [0, 0, 0]" in result.stdout
    capture.wait_for(4)
    users = sorted(e["user_id"] for e in capture.events)
    assert users == ["child-0-user", "child-1-user", "child-2-user", "parent-user"]


def test_exit_reports_drops_once_however_many_clients(stub: OpenAIStub, capture: AmplitudeCapture) -> None:
    """Regression: the exit hook is registered once per client, and each run used to log
    the total again."""
    script = """
    from amplitude.ai._dispatch import dispatcher
    url = amp.configuration.server_url
    others = [amplitude.Amplitude(f"k-other-{i}", amplitude.Config(server_url=url)) for i in range(3)]
    for other in others:
        with amplitude.ai.tracking(other):
            chat()
    dispatcher.drop("a backlog (simulated)")
    """
    result = run(script, stub, capture)
    assert result.returncode == 0, result.stderr
    capture.wait_for(3)
    assert result.stderr.count("events were dropped") == 1, result.stderr
    assert result.stderr.count("a backlog (simulated)") == 1, result.stderr
