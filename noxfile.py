"""The supported SDK lines, one session each: `nox` runs them all, `nox -s openai-0.28` one.

Each session installs the package (a built wheel, not the source tree) with one SDK version
into a fresh virtual environment and runs that provider's tests against the loopback stubs.
The ranges these sessions cover are declared in `amplitude/ai/_providers/__init__.py`.
"""

from __future__ import annotations

import glob
import os
import shutil
from typing import Callable

import nox

nox.options.default_venv_backend = "venv"
nox.options.error_on_missing_interpreters = True

PYTHON = "3.11"
TEST_DEPS = ("pytest>=7.4", "pytest-asyncio>=0.23", "pyyaml>=6")

# What depends on the SDK version; the rest of the suite runs once, in the dev environment.
V1_TESTS = (
    "tests/test_openai_chat.py",
    "tests/test_openai_endpoints.py",
    "tests/test_openai_azure.py",
    "tests/test_openai_compatible.py",
    "tests/test_openai_versions.py",
    "tests/test_tracking_api.py",
    "tests/test_cassettes.py",
)
LEGACY_TESTS = ("tests/test_openai_legacy.py", "tests/test_openai_versions.py")
ANTHROPIC_TESTS = ("tests/test_anthropic.py",)
GEMINI_TESTS = ("tests/test_gemini.py",)
COHERE_TESTS = ("tests/test_cohere.py",)
MISTRAL_TESTS = ("tests/test_mistral.py",)
# The oldest Python we support, with the newest SDKs it can run: the code paths that do not depend
# on an SDK version (tracking API, manual API, configuration, process lifecycle).
OLDEST_PYTHON = "3.9"
OLDEST_PYTHON_TESTS = (
    "tests/test_openai_chat.py",
    "tests/test_tracking_api.py",
    "tests/test_manual.py",
    "tests/test_configure.py",
    "tests/test_lifecycle.py",
    "tests/test_anthropic.py",
)

# The other Pythons, each with what behaves differently there (found by running the whole
# suite on each): 3.10 hands the GIL over differently (a dispatch thread starved by callers);
# 3.12.0 to 3.12.2 start no thread once exit begins (CPython gh-113964), and 3.13 finalizes
# differently again: their exit paths, the zero-code ones on 3.12.
OTHER_PYTHONS = {
    "3.10": ("tests/test_load.py::test_a_worker_short_of_the_gil_gets_it_instead_of_dropping",),
    "3.12": ("tests/test_lifecycle.py", "tests/test_zero_code.py"),
    "3.13": ("tests/test_lifecycle.py",),
}

# session -> (SDK, requirements, test modules). "1.x" / "2.x" / "3.x" resolve to the newest
# release of their line, so a new release is tested as soon as it is out. numpy: the
# pre-1.0 SDK needs it to decode embeddings in its default (base64) format.
LINES: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "openai-0.27": ("openai", ("openai==0.27.0", "numpy"), LEGACY_TESTS),
    "openai-0.28": ("openai", ("openai==0.28.1", "numpy"), LEGACY_TESTS),
    # openai < 1.55 passes httpx the `proxies` argument that httpx 0.28 removed.
    "openai-1.0": ("openai", ("openai==1.0.0", "httpx<0.28"), V1_TESTS),
    "openai-1.x": ("openai", ("openai>=1,<2",), V1_TESTS),
    "openai-2.x": ("openai", ("openai>=2,<3",), V1_TESTS),
    "openai-3.x": ("openai", ("openai>=3,<4",), V1_TESTS),
    # anthropic < 0.40 has the same httpx 0.28 incompatibility.
    "anthropic-0.16": ("anthropic", ("anthropic==0.16.0", "httpx<0.28"), ANTHROPIC_TESTS),
    "anthropic-2.x": ("anthropic", ("anthropic>=2,<3",), ANTHROPIC_TESTS),
    "gemini-1.0": ("google-genai", ("google-genai==1.0.0",), GEMINI_TESTS),
    "gemini-3.x": ("google-genai", ("google-genai>=3,<4",), GEMINI_TESTS),
    # cohere < 5.16 raises from its own v2 stream generator when it is closed early.
    "cohere-5.16": ("cohere", ("cohere==5.16.0",), COHERE_TESTS),
    "cohere-7.x": ("cohere", ("cohere>=7,<8",), COHERE_TESTS),
    "mistral-1.2": ("mistralai", ("mistralai==1.2.0",), MISTRAL_TESTS),
    "mistral-3.x": ("mistralai", ("mistralai>=3,<4",), MISTRAL_TESTS),
}


def _session(
    sdk: str, requirements: tuple[str, ...], tests: tuple[str, ...]
) -> Callable[[nox.Session], None]:
    def run(session: nox.Session) -> None:
        session.install(".", *requirements, *TEST_DEPS)
        show = f"import importlib.metadata as m, sys; print({sdk!r}, m.version({sdk!r}), sys.version)"
        session.run("python", "-c", show)
        session.run("python", "-m", "pytest", "-q", "-rs", *tests, *session.posargs)

    return run


for _name, (_sdk, _requirements, _tests) in LINES.items():
    nox.session(python=PYTHON, name=_name)(_session(_sdk, _requirements, _tests))


def _interpreter(version: str) -> str:
    """`pythonX.Y` from PATH, or from pyenv's versions when its shim is not activated."""
    pattern = os.path.expanduser(f"~/.pyenv/versions/{version}.*/bin/python{version}")
    found = sorted(glob.glob(pattern))
    return found[-1] if found else version


nox.session(python=_interpreter(OLDEST_PYTHON), name=f"python-{OLDEST_PYTHON}")(
    _session("openai", ("openai", "anthropic"), OLDEST_PYTHON_TESTS)
)
for _version, _tests in OTHER_PYTHONS.items():
    nox.session(python=_interpreter(_version), name=f"python-{_version}")(
        _session("openai", ("openai",), _tests)
    )


@nox.session(python=PYTHON, default=False)
def benchmark(session: nox.Session) -> None:
    """The README's Performance figures, in the benchmarks' own environment (OpenTelemetry's
    openai instrumentation for the comparison): `nox -s benchmark`. Not part of `nox` alone;
    run it on an otherwise idle machine."""
    session.install("-e", ".[openai]", "-r", "benchmarks/requirements.txt")
    for script in ("overhead.py", "peer.py", "startup.py", "memory.py"):
        session.run("python", f"benchmarks/{script}")
    for provider in ("anthropic", "openai"):
        session.run("python", "benchmarks/gc_pressure.py", "--provider", provider)
    # The controls, each in a process of its own.
    for control in ("discarding", "untracked", "amplitude-only"):
        session.run("python", "benchmarks/memory.py", "--scenario", control)
    if shutil.which("valgrind"):
        session.run("python", "benchmarks/instructions.py")
    else:
        session.log("valgrind not installed: benchmarks/instructions.py skipped")
