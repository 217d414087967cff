"""Virtual environments with the package really installed, for subprocess tests.

The venvs are session-scoped and shared by several test modules; the packages come from
the configured index (pip's cache and find-links apply as usual). `openai` is pinned to
the version in the running environment so these tests see the SDK the rest of the suite
sees. Loaded as a pytest plugin by conftest.py.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Union

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
TESTS = ROOT / "tests"
DIST_NAME = "amplitude-llm-tracking"

INSTALL_TIMEOUT = 600.0
RUN_TIMEOUT = 120.0

Arg = Union[str, Path]


# -- helpers ---------------------------------------------------------------------------------


def clean_env() -> dict[str, str]:
    """The environment without anything that would leak the dev venv into a subprocess."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update(PYTHONDONTWRITEBYTECODE="1", PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    return env


def run(cmd: Sequence[Arg], *, cwd: Path, timeout: float = RUN_TIMEOUT) -> subprocess.CompletedProcess[str]:
    args = [str(arg) for arg in cmd]
    try:
        proc = subprocess.run(
            args, cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"timed out after {timeout}s: {' '.join(args)}\n{exc.stdout!r}\n{exc.stderr!r}")
    if proc.returncode != 0:
        pytest.fail(
            f"exit {proc.returncode}: {' '.join(args)}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
        )
    return proc


def result_of(proc: subprocess.CompletedProcess[str]) -> Any:
    """The JSON a probe printed on its `RESULT ` line."""
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    pytest.fail(f"no RESULT line\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")


def probe(python: Path, code: str, cwd: Path, *args: str) -> Any:
    return result_of(run([python, "-c", code, *args], cwd=cwd))


def make_venv(path: Path) -> Path:
    run([sys.executable, "-m", "venv", path], cwd=path.parent)
    python = path / ("Scripts" if os.name == "nt" else "bin") / "python"
    assert python.exists(), python
    return python


def _openai_requirement() -> str:
    try:
        return f"openai=={importlib.metadata.version('openai')}"
    except importlib.metadata.PackageNotFoundError:
        return "openai"


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    if importlib.util.find_spec("build") is not None:
        cmd: list[Arg] = [sys.executable, "-m", "build", "--wheel", "--outdir", out, ROOT]
    else:
        cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", out, ROOT]
    run(cmd, cwd=out, timeout=INSTALL_TIMEOUT)
    (built,) = out.glob("*.whl")
    return built


@pytest.fixture(scope="session")
def wheel_python(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Path:
    """A fresh venv with the wheel, its dependencies and openai installed."""
    venv = tmp_path_factory.mktemp("venv-wheel")
    python = make_venv(venv)
    run(
        [python, "-m", "pip", "install", "--quiet", wheel, _openai_requirement()],
        cwd=venv,
        timeout=INSTALL_TIMEOUT,
    )
    return python


@pytest.fixture(scope="session")
def editable_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with `pip install -e <checkout>` (which pulls in amplitude-analytics)."""
    venv = tmp_path_factory.mktemp("venv-editable")
    python = make_venv(venv)
    run([python, "-m", "pip", "install", "--quiet", "-e", ROOT], cwd=venv, timeout=INSTALL_TIMEOUT)
    return python
