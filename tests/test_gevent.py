"""gevent apps (`monkey.patch_all()`, e.g. gunicorn's gevent workers), in fresh interpreters
of a venv with the wheel, openai and gevent installed: 50 greenlets each make a call, the
app exits as it would untracked, and every event arrives once.

gevent wants to patch before anything else is imported. Apps do not always manage that: a
preloaded app (`gunicorn --preload -k gevent`) imports the LLM SDK, and so starts tracking,
in the master process, before the worker patches. Both orders are covered.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from loopback import AmplitudeCapture, OpenAIStub
from venvs import INSTALL_TIMEOUT, _openai_requirement, clean_env, make_venv, run

CALLS = 50

# {before}: what the app imports (and starts) before gevent patches.
APP = """
import faulthandler, os, sys
faulthandler.dump_traceback_later(30, exit=True)  # a hang fails with its stack, not a timeout
{before}
from gevent import monkey
monkey.patch_all()
import gevent
{after}
import openai
client = openai.OpenAI(api_key="sk-gevent", base_url=sys.argv[1], max_retries=0)

def chat(i):
    return client.chat.completions.create(model="m", messages=[{{"role": "user", "content": str(i)}}])

jobs = [gevent.spawn(chat, i) for i in range({calls})]
gevent.joinall(jobs)
print("answered", sum(job.value.choices[0].message.content == "Hello from the stub!" for job in jobs))
gevent.sleep(1)  # serving on: the events are uploaded while the app runs, not only at its exit
"""

TRACK_IN_CODE = """
import amplitude, amplitude.ai
config = amplitude.Config(server_url=os.environ["CAPTURE"], flush_interval_millis=200)
amplitude.ai.track(amplitude.Amplitude("k-gevent", config))
"""


@pytest.fixture(scope="module")
def gevent_python(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Path:
    venv = tmp_path_factory.mktemp("venv-gevent")
    python = make_venv(venv)
    requirements = [str(wheel), _openai_requirement(), "gevent"]
    run([python, "-m", "pip", "install", "--quiet", *requirements], cwd=venv, timeout=INSTALL_TIMEOUT)
    return python


def run_app(
    python: Path, tmp_path: Path, stub: OpenAIStub, env: dict[str, str], before: str = "", after: str = ""
) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "app.py"
    script.write_text(APP.format(before=before, after=after, calls=CALLS), encoding="utf-8")
    return subprocess.run(
        [str(python), str(script), stub.base_url],
        cwd=tmp_path,
        env={**clean_env(), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def check(result: subprocess.CompletedProcess[str], capture: AmplitudeCapture) -> None:
    assert result.returncode == 0, result.stderr
    assert f"answered {CALLS}" in result.stdout, result.stderr
    events = capture.wait_for(CALLS)
    assert len(events) == CALLS
    assert len({event["insert_id"] for event in events}) == CALLS


def zero_code_env(capture: AmplitudeCapture) -> dict[str, str]:
    return {
        "AMPLITUDE_AI_API_KEY": "k-gevent-zero",
        "AMPLITUDE_AI_SERVER_URL": capture.url,
        "AMPLITUDE_AI_FLUSH_INTERVAL_MS": "200",
    }


def test_patched_first_tracking_in_code(
    gevent_python: Path, tmp_path: Path, stub: OpenAIStub, capture: AmplitudeCapture
) -> None:
    result = run_app(gevent_python, tmp_path, stub, {"CAPTURE": capture.url}, after=TRACK_IN_CODE)
    check(result, capture)


def test_patched_first_zero_code(
    gevent_python: Path, tmp_path: Path, stub: OpenAIStub, capture: AmplitudeCapture
) -> None:
    check(run_app(gevent_python, tmp_path, stub, zero_code_env(capture)), capture)


def test_sdk_and_tracking_loaded_before_gevent_patches(
    gevent_python: Path, tmp_path: Path, stub: OpenAIStub, capture: AmplitudeCapture
) -> None:
    # The app hung on its first calls: the greenlet starting the dispatch thread yields in
    # `Thread.start()`, and the next one blocked the whole process on a lock made before
    # gevent patched `threading`.
    result = run_app(
        gevent_python,
        tmp_path,
        stub,
        {"CAPTURE": capture.url},
        before="import amplitude.ai, openai",
        after=TRACK_IN_CODE,
    )
    check(result, capture)


def test_preloaded_app_zero_code(
    gevent_python: Path, tmp_path: Path, stub: OpenAIStub, capture: AmplitudeCapture
) -> None:
    # As `gunicorn --preload -k gevent` runs it: the SDK import starts tracking before
    # gevent patches. The Amplitude client made then kept an upload pool on a real
    # thread's queue, and its worker blocked gevent's hub for good at exit.
    result = run_app(gevent_python, tmp_path, stub, zero_code_env(capture), before="import openai")
    check(result, capture)


def test_the_apps_exit_as_untracked(gevent_python: Path, tmp_path: Path, stub: OpenAIStub) -> None:
    """The control: the same apps untracked (no key) answer and exit 0."""
    for before in ("", "import openai"):
        result = run_app(gevent_python, tmp_path, stub, {}, before=before)
        assert result.returncode == 0, result.stderr
        assert f"answered {CALLS}" in result.stdout
