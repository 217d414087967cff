"""Zero-code activation as a user meets it: the package installed from its wheel in a
fresh virtual environment, a program that never imports amplitude, and tracking turned
on by environment variables alone or by `amplitude-ai-run`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from loopback import AmplitudeCapture, OpenAIStub
from venvs import TESTS, clean_env

pytestmark = pytest.mark.skipif(os.name == "nt", reason="POSIX process semantics (exec, signals)")

APP = """
import sys
sys.path.append({tests!r})
import openai

client = openai.OpenAI(api_key="sk-zero-code-DO-NOT-LEAK-1", base_url=sys.argv[1], max_retries=0)
reply = client.chat.completions.create(model="gpt-4o", messages=[{{"role": "user", "content": "hi"}}])
print("app:", reply.choices[0].message.content, flush=True)
if len(sys.argv) > 2 and sys.argv[2] == "child":
    import subprocess
    subprocess.run([sys.executable, __file__, sys.argv[1]], check=True)
if len(sys.argv) > 2 and sys.argv[2].startswith("exit="):
    sys.exit(int(sys.argv[2][5:]))
if len(sys.argv) > 2 and sys.argv[2] == "wait":
    import time
    print("ready", flush=True)
    time.sleep(60)
"""


@pytest.fixture
def app(tmp_path: Path) -> Path:
    path = tmp_path / "app.py"
    path.write_text(APP.format(tests=str(TESTS)), encoding="utf-8")
    return path


@pytest.fixture
def bindir(wheel_python: Path) -> Path:
    return wheel_python.parent


def launch(
    command: list[str], env: dict[str, str], cwd: Path, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    full_env = clean_env()
    full_env.update(env)
    return subprocess.run(
        command, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout, check=False
    )


def launcher(bindir: Path, capture: AmplitudeCapture, *options: str, key: str = "amp-k-12345") -> list[str]:
    """`amplitude-ai-run` with a key and the capture server, plus `options`."""
    return [str(bindir / "amplitude-ai-run"), "--api-key", key, "--server-url", capture.url, *options]


def tracking_env(capture: AmplitudeCapture, **extra: str) -> dict[str, str]:
    return {"AMPLITUDE_AI_API_KEY": "amp-zero-code-key", "AMPLITUDE_AI_SERVER_URL": capture.url, **extra}


def settle(capture: AmplitudeCapture, seconds: float = 0.3) -> list[dict[str, object]]:
    """The process has exited; give the server a moment to finish reading what it sent."""
    time.sleep(seconds)
    return capture.events


# -- the environment alone -----------------------------------------------------------------


def test_env_only_activation_delivers_by_exit(
    wheel_python: Path, app: Path, stub: OpenAIStub, capture: AmplitudeCapture
) -> None:
    result = launch([str(wheel_python), str(app), stub.base_url], tracking_env(capture), app.parent)
    assert result.returncode == 0, result.stderr
    assert "app: Hello from the stub!" in result.stdout
    assert result.stderr == ""
    (event,) = capture.wait_for(1)
    assert event["event_type"] == "llm_operation"
    assert event["event_properties"]["api"] == "chat.completions.create"
    assert event["event_properties"]["input_tokens"] == 12
    assert capture.payloads[0]["api_key"] == "amp-zero-code-key"


def test_enabled_false_turns_everything_off(
    wheel_python: Path, app: Path, stub: OpenAIStub, capture: AmplitudeCapture
) -> None:
    env = tracking_env(capture, AMPLITUDE_AI_ENABLED="false")
    result = launch([str(wheel_python), str(app), stub.base_url], env, app.parent)
    assert result.returncode == 0 and result.stderr == ""
    assert settle(capture) == []


def test_dry_run_prints_json_lines_and_sends_nothing(
    wheel_python: Path, app: Path, stub: OpenAIStub, capture: AmplitudeCapture
) -> None:
    import json

    env = {"AMPLITUDE_AI_DRY_RUN": "1", "AMPLITUDE_AI_SERVER_URL": capture.url}
    result = launch([str(wheel_python), str(app), stub.base_url], env, app.parent)
    assert result.returncode == 0, result.stderr
    (line,) = result.stderr.splitlines()
    event = json.loads(line)
    assert event["event_type"] == "llm_operation"
    assert event["event_properties"]["response_preview"] == "Hello from the stub!"
    assert "DO-NOT-LEAK" not in line
    assert settle(capture) == []


@pytest.mark.parametrize(
    ("variable", "value", "accepted"),
    [
        ("AMPLITUDE_AI_SERVER_ZONE", "MARS", "US or EU"),
        ("AMPLITUDE_AI_ENABLED", "maybe", "true or false"),
        ("AMPLITUDE_AI_FLUSH_INTERVAL_MS", "-5", ">= 1"),
        ("AMPLITUDE_AI_PROVIDERS", "openai,nope", "unknown nope; accepted: openai, anthropic"),
    ],
)
def test_bad_value_is_one_clear_line_and_the_app_runs_untracked(
    wheel_python: Path,
    app: Path,
    stub: OpenAIStub,
    capture: AmplitudeCapture,
    variable: str,
    value: str,
    accepted: str,
) -> None:
    result = launch(
        [str(wheel_python), str(app), stub.base_url], tracking_env(capture, **{variable: value}), app.parent
    )
    assert result.returncode == 0
    assert "app: Hello from the stub!" in result.stdout
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"amplitude-ai: {variable}=") and accepted in line, line
    assert settle(capture) == []


@pytest.mark.parametrize("flag", ["-I", "-S"])
def test_isolated_and_no_site_interpreters_stay_untracked(
    wheel_python: Path, app: Path, stub: OpenAIStub, capture: AmplitudeCapture, flag: str
) -> None:
    code = textwrap.dedent(
        f"""
        import sys
        sys.path.append({str(wheel_python.parent.parent / "lib")!r})
        print(sorted(m for m in sys.modules if "amplitude" in m))
        """
    )
    result = launch([str(wheel_python), flag, "-c", code], tracking_env(capture), app.parent)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_startup_cost_without_and_with_activation(
    wheel_python: Path, tmp_path: Path, capture: AmplitudeCapture
) -> None:
    """Key set, no SDK imported: only our tiny bootstrap loads; no amplitude, no thread."""
    probe = "import sys, threading; print(sorted(sys.modules)); print(threading.active_count())"
    plain = launch([str(wheel_python), "-c", "import sys; print(sorted(sys.modules))"], {}, tmp_path)
    active = launch(
        [str(wheel_python), "-c", "import sys; print(sorted(sys.modules))"], tracking_env(capture), tmp_path
    )
    threads = launch([str(wheel_python), "-c", probe], tracking_env(capture), tmp_path)
    added = set(eval(active.stdout)) - set(eval(plain.stdout))
    assert added <= {"_amplitude_ai", "_amplitude_ai._startup", "_amplitude_ai.settings", "__future__"}, added
    assert not any(m == "amplitude" or m.startswith(("amplitude.", "socket", "ssl")) for m in added)
    assert "threading" not in set(eval(active.stdout))
    assert threads.stdout.splitlines()[-1] == "1"


def test_child_python_is_tracked_once(
    wheel_python: Path, app: Path, stub: OpenAIStub, capture: AmplitudeCapture
) -> None:
    result = launch([str(wheel_python), str(app), stub.base_url, "child"], tracking_env(capture), app.parent)
    assert result.returncode == 0, result.stderr
    capture.wait_for(2)
    assert len(settle(capture)) == 2


# -- exit with Amplitude slow or down -------------------------------------------------------


def test_exit_waits_at_most_the_shutdown_timeout_when_amplitude_hangs(
    wheel_python: Path, app: Path, stub: OpenAIStub, capture: AmplitudeCapture
) -> None:
    capture.enqueue(200, hang=True)
    env = tracking_env(capture, AMPLITUDE_AI_SHUTDOWN_TIMEOUT_MS="1000")
    started = time.monotonic()
    result = launch([str(wheel_python), str(app), stub.base_url], env, app.parent, timeout=30)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    # Interpreter start and the app's own call come on top of the 1 s timeout; a hang
    # (amplitude-analytics alone waits 10 s on its upload) would be far beyond this.
    assert elapsed < 6, f"exit took {elapsed:.1f}s"


def test_exit_does_not_hang_when_amplitude_is_down(wheel_python: Path, app: Path, stub: OpenAIStub) -> None:
    env = {"AMPLITUDE_AI_API_KEY": "amp-key-down", "AMPLITUDE_AI_SERVER_URL": "http://127.0.0.1:9/2/httpapi"}
    started = time.monotonic()
    result = launch([str(wheel_python), str(app), stub.base_url], env, app.parent, timeout=30)
    assert result.returncode == 0, result.stderr
    assert "app: Hello from the stub!" in result.stdout
    assert time.monotonic() - started < 8


# -- the launcher --------------------------------------------------------------------------


def test_launcher_runs_a_script(
    bindir: Path, wheel_python: Path, app: Path, stub: OpenAIStub, capture: AmplitudeCapture
) -> None:
    command = launcher(bindir, capture, key="amp-launcher-key")
    result = launch([*command, "--", str(wheel_python), str(app), stub.base_url], {}, app.parent)
    assert result.returncode == 0, result.stderr
    (event,) = capture.wait_for(1)
    assert capture.payloads[0]["api_key"] == "amp-launcher-key"
    assert event["event_properties"]["provider"] == "openai"


def test_launcher_runs_a_module_and_a_console_script(
    bindir: Path, wheel_python: Path, app: Path, stub: OpenAIStub, capture: AmplitudeCapture
) -> None:
    (app.parent / "appmod.py").write_text(app.read_text(encoding="utf-8"), encoding="utf-8")
    scripts = app.parent / "bin"
    scripts.mkdir()
    console_script = scripts / "my-llm-app"
    console_script.write_text(f"#!{wheel_python}\n" + app.read_text(encoding="utf-8"), encoding="utf-8")
    console_script.chmod(0o755)
    env = {"PATH": f"{scripts}{os.pathsep}{bindir}{os.pathsep}{os.environ.get('PATH', '')}"}
    command = launcher(bindir, capture)
    as_module = launch([*command, "python", "-m", "appmod", stub.base_url], env, app.parent)
    as_script = launch([*command, "my-llm-app", stub.base_url], env, app.parent)
    assert as_module.returncode == 0, as_module.stderr
    assert as_script.returncode == 0, as_script.stderr
    capture.wait_for(2)
    assert len(settle(capture)) == 2


def test_launcher_passes_exit_status_and_reports_missing_commands(
    bindir: Path, wheel_python: Path, app: Path, stub: OpenAIStub, capture: AmplitudeCapture
) -> None:
    dry = [str(bindir / "amplitude-ai-run"), "--dry-run"]
    exited = launch([*dry, str(wheel_python), str(app), stub.base_url, "exit=3"], {}, app.parent)
    assert exited.returncode == 3
    missing = launch([*dry, "no-such-command-xyz"], {}, app.parent)
    assert missing.returncode == 127
    assert missing.stderr.strip() == "amplitude-ai-run: no-such-command-xyz: command not found"
    version = launch([str(bindir / "amplitude-ai-run"), "--version"], {}, app.parent)
    assert version.returncode == 0 and version.stdout.startswith("amplitude-ai-run ")


def test_launcher_keeps_the_pid_so_signals_reach_the_program(
    bindir: Path, wheel_python: Path, app: Path, stub: OpenAIStub
) -> None:
    env = clean_env()
    command = [
        str(bindir / "amplitude-ai-run"),
        "--dry-run",
        str(wheel_python),
        str(app),
        stub.base_url,
        "wait",
    ]
    with subprocess.Popen(command, cwd=app.parent, env=env, stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        while "ready" not in proc.stdout.readline():
            pass
        os.kill(proc.pid, signal.SIGTERM)  # the launcher's PID is the program's
        assert proc.wait(timeout=30) == -signal.SIGTERM


@pytest.fixture
def without_pth(wheel_python: Path) -> Iterator[Path]:
    """The environment's .pth file removed (restored afterwards)."""
    (pth,) = wheel_python.parent.parent.glob("lib/python*/site-packages/amplitude_ai.pth")
    hidden = pth.with_name("amplitude_ai.pth.hidden")
    pth.rename(hidden)
    try:
        yield pth
    finally:
        hidden.rename(pth)


def test_launcher_works_where_the_pth_is_not_processed(
    bindir: Path,
    wheel_python: Path,
    app: Path,
    stub: OpenAIStub,
    capture: AmplitudeCapture,
    without_pth: Path,
) -> None:
    plain = launch([str(wheel_python), str(app), stub.base_url], tracking_env(capture), app.parent)
    assert plain.returncode == 0 and settle(capture) == [], "without the .pth, env alone does nothing"
    result = launch([*launcher(bindir, capture), str(wheel_python), str(app), stub.base_url], {}, app.parent)
    assert result.returncode == 0, result.stderr
    capture.wait_for(1)
    assert len(settle(capture)) == 1


def test_launcher_chains_to_an_existing_sitecustomize_and_starts_once(
    bindir: Path, wheel_python: Path, app: Path, stub: OpenAIStub, capture: AmplitudeCapture
) -> None:
    theirs = app.parent / "theirs"
    theirs.mkdir()
    (theirs / "sitecustomize.py").write_text(
        "import os, sys\nprint('their sitecustomize ran in', os.path.basename(sys.argv[0]), flush=True)\n",
        encoding="utf-8",
    )
    command = [*launcher(bindir, capture, "--debug"), str(wheel_python), str(app), stub.base_url]
    result = launch(command, {"PYTHONPATH": str(theirs)}, app.parent)
    assert result.returncode == 0, result.stderr
    # It runs in the launcher's own interpreter too (which then execs the program).
    assert result.stdout.count("their sitecustomize ran in app.py") == 1, result.stdout
    assert result.stderr.count("tracking started") == 1, result.stderr
    assert "Error" not in result.stderr
    capture.wait_for(1)
    assert len(settle(capture)) == 1


def test_launcher_itself_stays_light(bindir: Path, tmp_path: Path) -> None:
    probe = "import sys; print(sorted(m for m in sys.modules if m.startswith(('amplitude', 'openai'))))"
    result = launch(
        [str(bindir / "amplitude-ai-run"), "--dry-run", sys.executable, "-c", probe], {}, tmp_path
    )
    assert result.returncode == 0, result.stderr
    code = (
        "import runpy, sys; sys.argv = ['amplitude-ai-run', '--version']\n"
        "try:\n    runpy.run_module('_amplitude_ai.run', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith(('amplitude', 'openai'))))"
    )
    light = launch([str(bindir.parent / "bin" / "python"), "-c", code], {}, tmp_path)
    assert light.stdout.strip().splitlines()[-1] == "[]"


def test_sitecustomize_example_starts_tracking(
    wheel_python: Path, app: Path, stub: OpenAIStub, capture: AmplitudeCapture, without_pth: Path
) -> None:
    example = TESTS.parent / "sitecustomize_example"
    env = tracking_env(capture, PYTHONPATH=str(example), AMPLITUDE_AI_DEBUG="1")
    result = launch([str(wheel_python), str(app), stub.base_url], env, app.parent)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("tracking started") == 1
    capture.wait_for(1)
    assert len(settle(capture)) == 1
