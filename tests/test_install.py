"""Real installs, as a user would do them: a built wheel and an editable install, each in a
fresh virtual environment (fixtures in venvs.py), exercised from fresh interpreters."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import pytest

from venvs import DIST_NAME, SRC, TESTS, probe, result_of, run

# -- the wheel -------------------------------------------------------------------------------


def test_wheel_ships_only_our_subpackage_and_the_bootstrap(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        dist_info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
        metadata = archive.read(f"{dist_info}/METADATA").decode()
        entry_points = archive.read(f"{dist_info}/entry_points.txt").decode()
        pth = archive.read("amplitude_ai.pth").decode()
        start = archive.read("amplitude_ai.start").decode()

    assert "amplitude/__init__.py" not in names, "amplitude/__init__.py belongs to amplitude-analytics"
    assert "amplitude/ai/__init__.py" in names
    assert "amplitude/ai/py.typed" in names
    assert "amplitude/ai/_providers/openai.py" in names
    assert "_amplitude_ai/__init__.py" in names and "_amplitude_ai/_site/sitecustomize.py" in names
    ours = ("amplitude/ai/", "_amplitude_ai/", "amplitude_ai.pth", "amplitude_ai.start", f"{dist_info}/")
    stray = [n for n in names if not n.startswith(ours)]
    assert stray == [], "only our packages, the bootstrap files and the dist-info may be in the wheel"
    assert not any("_amplitude_ai_editable" in n for n in names), "the editable finder is for -e only"
    assert len(pth.splitlines()) == 1 and pth.startswith("import ")
    assert start.strip() == "_amplitude_ai:activate"
    assert "amplitude-ai-run = _amplitude_ai.run:main" in entry_points

    requires = re.findall(r"^Requires-Dist: ([A-Za-z0-9_.-]+)(.*)$", metadata, flags=re.M)
    unconditional = {name.lower() for name, rest in requires if "extra ==" not in rest}
    assert {"amplitude-analytics", "wrapt"} <= unconditional
    assert "openai" not in unconditional, "openai must stay an optional extra"


_LAYOUT_PROBE = """
import json, sys, sysconfig
import amplitude
import amplitude.ai
import importlib.metadata as md
import importlib.resources as resources
leaked = sorted(m for m in sys.modules if m.split(".")[0] in ("openai", "wrapt", "httpx", "httpx2"))
files = md.distribution("amplitude-llm-tracking").files or []
print("RESULT " + json.dumps({
    "purelib": sysconfig.get_paths()["purelib"],
    "amplitude_file": amplitude.__file__,
    "ai_file": amplitude.ai.__file__,
    "has_Amplitude": hasattr(amplitude, "Amplitude") and hasattr(amplitude, "BaseEvent"),
    "version": amplitude.ai.__version__,
    "dist_version": md.version("amplitude-llm-tracking"),
    "leaked": leaked,
    "py_typed": resources.files("amplitude.ai").joinpath("py.typed").is_file(),
    "record": [str(f) for f in files],
}))
"""


def test_wheel_install_extends_amplitude_without_shadowing_it(wheel_python: Path, tmp_path: Path) -> None:
    # -W error: importing must not emit any warning (deprecated import APIs and the like).
    result = result_of(run([wheel_python, "-W", "error", "-c", _LAYOUT_PROBE], cwd=tmp_path))
    purelib = Path(result["purelib"])

    assert Path(result["amplitude_file"]) == purelib / "amplitude" / "__init__.py"
    assert Path(result["ai_file"]) == purelib / "amplitude" / "ai" / "__init__.py"
    assert result["has_Amplitude"], "amplitude-analytics' package must stay intact"
    assert result["version"] == result["dist_version"]
    assert result["leaked"] == [], "importing amplitude.ai must not import the SDKs or wrapt"
    assert result["py_typed"]
    # What `pip uninstall` would remove: never amplitude-analytics' files.
    record = result["record"]
    assert "amplitude/__init__.py" not in record
    ours = (
        "amplitude/ai/",
        "_amplitude_ai/",
        "amplitude_ai.pth",
        "amplitude_ai.start",
        "amplitude_llm_tracking-",
    )
    launcher = ("../../../bin/amplitude-ai-run",)
    assert all(f.startswith(ours) or f in launcher for f in record), record

    check = run([wheel_python, "-m", "pip", "check"], cwd=tmp_path)
    assert "No broken requirements" in check.stdout


def test_info_log_names_the_patched_methods(wheel_python: Path, tmp_path: Path) -> None:
    code = (
        "import logging, sys\n"
        "logging.basicConfig(level=logging.INFO, stream=sys.stdout,\n"
        "                    format='%(levelname)s %(name)s %(message)s')\n"
        "import amplitude.ai\n"
        "import openai\n"
        "openai.OpenAI(api_key='sk-test-logging', base_url='http://127.0.0.1:9/v1').chat.completions\n"
        "print('OPENAI_VERSION', openai.__version__)\n"
    )
    proc = run([wheel_python, "-c", code], cwd=tmp_path)
    version = re.search(r"^OPENAI_VERSION (\S+)$", proc.stdout, flags=re.M)
    assert version, proc.stdout
    # The logger is `amplitude.ai`; the message may carry a prefix of its own.
    line = rf"^INFO amplitude\.ai .*patched openai {re.escape(version.group(1))}: chat\.completions\.create\b"
    assert re.search(line, proc.stdout, flags=re.M), proc.stdout
    assert "WARNING" not in proc.stdout and proc.stderr == "", (proc.stdout, proc.stderr)

    # Logging left unconfigured: not a line from us, on any stream.
    quiet = run([wheel_python, "-c", "\n".join(code.splitlines()[3:])], cwd=tmp_path)
    assert quiet.stderr == ""
    assert [ln for ln in quiet.stdout.splitlines() if not ln.startswith("OPENAI_VERSION")] == []


# -- end to end, one fresh interpreter per import order -----------------------------------------

_E2E_SCRIPT = """
import json
import sys
import time

sys.path.append(@TESTS@)  # loopback.py uses only the standard library
from loopback import AmplitudeCapture, OpenAIStub

SCENARIO = sys.argv[1]
KEY = "sk-test-install-0123456789abcdef"
CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Say hello"}]}
EMBED = {"model": "text-embedding-3-small", "input": "hello"}
CALLS = 2

stub = OpenAIStub().start()
capture = AmplitudeCapture().start()
preloaded = sorted(m for m in sys.modules if m.startswith(("amplitude", "openai")))
result = {"scenario": SCENARIO, "preloaded": preloaded}


def amplitude_client():
    import amplitude

    config = amplitude.Config(server_url=capture.url, flush_queue_size=50, flush_interval_millis=50)
    return amplitude.Amplitude("amplitude-install-test-key", config)


if SCENARIO == "openai_first":
    import openai

    client = openai.OpenAI(api_key=KEY, base_url=stub.base_url, max_retries=0)
    chat, embeddings = client.chat.completions, client.embeddings  # resource classes load here
    result["hooked_before"] = "amplitude.ai" in sys.modules
    result["resources_loaded_before"] = "openai.resources.chat.completions.completions" in sys.modules
    import amplitude.ai

    amp = amplitude_client()
    amplitude.ai.track(amp)
    chat.create(**CHAT)
    embeddings.create(**EMBED)
elif SCENARIO == "amplitude_first":
    import amplitude.ai

    result["openai_imported_by_us"] = "openai" in sys.modules
    amp = amplitude_client()
    amplitude.ai.track(amp)
    import openai

    client = openai.OpenAI(api_key=KEY, base_url=stub.base_url, max_retries=0)
    client.chat.completions.create(**CHAT)
    client.embeddings.create(**EMBED)
elif SCENARIO == "from_import_alias":
    import amplitude.ai
    from openai import OpenAI as LLMClient

    amp = amplitude_client()
    amplitude.ai.track(amp)
    client = LLMClient(api_key=KEY, base_url=stub.base_url, max_retries=0)
    client.chat.completions.create(**CHAT)
    client.embeddings.create(**EMBED)
elif SCENARIO == "module_client":
    import amplitude.ai
    import openai

    openai.api_key = KEY
    openai.base_url = stub.base_url + "/"  # the module-level client appends paths verbatim
    openai.max_retries = 0
    amp = amplitude_client()
    amplitude.ai.track(amp)
    openai.chat.completions.create(**CHAT)
    openai.embeddings.create(**EMBED)
elif SCENARIO == "async_client":
    import asyncio

    import amplitude.ai
    from openai import AsyncOpenAI

    amp = amplitude_client()
    amplitude.ai.track(amp)

    async def main():
        client = AsyncOpenAI(api_key=KEY, base_url=stub.base_url, max_retries=0)
        await client.chat.completions.create(**CHAT)
        await client.embeddings.create(**EMBED)
        await client.close()

    asyncio.run(main())
else:
    raise SystemExit(f"unknown scenario {SCENARIO!r}")

amplitude.ai.flush(timeout=10)
capture.wait_for(CALLS, timeout=10)
time.sleep(0.3)  # a duplicate would arrive right behind the originals
amplitude.ai.flush(timeout=10)
events = capture.events
amp.shutdown()
result.update(
    openai_version=sys.modules["openai"].__version__,
    openai_requests=len(stub.requests),
    rejected=len(capture.rejected),
    events=[
        {
            "event_type": e.get("event_type"),
            "api": e["event_properties"].get("api"),
            "provider": e["event_properties"].get("provider"),
            "model": e["event_properties"].get("model"),
            "input_tokens": e["event_properties"].get("input_tokens"),
        }
        for e in events
    ],
)
stub.stop()
capture.stop()
print("RESULT " + json.dumps(result), flush=True)
"""

SCENARIOS = ["openai_first", "amplitude_first", "from_import_alias", "module_client", "async_client"]


@pytest.fixture(scope="session")
def e2e_script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("e2e") / "import_orders.py"
    path.write_text(_E2E_SCRIPT.replace("@TESTS@", repr(str(TESTS))), encoding="utf-8")
    return path


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_end_to_end_one_event_per_call(
    wheel_python: Path, e2e_script: Path, scenario: str, tmp_path: Path
) -> None:
    proc = run([wheel_python, e2e_script, scenario], cwd=tmp_path)
    result = result_of(proc)

    assert result["preloaded"] == [], "the driver must start from a clean interpreter"
    assert result["openai_requests"] == 2
    assert result["rejected"] == 0
    events = result["events"]
    assert sorted(e["api"] for e in events) == ["chat.completions.create", "embeddings.create"], events
    assert all(e["event_type"] == "llm_operation" and e["provider"] == "openai" for e in events)
    assert all(isinstance(e["input_tokens"], int) for e in events)
    assert "amplitude.ai" not in proc.stderr, "no warning of ours along the way"
    if scenario == "openai_first":
        assert result["resources_loaded_before"] and not result["hooked_before"]
    if scenario == "amplitude_first":
        assert result["openai_imported_by_us"] is False


# -- editable install ------------------------------------------------------------------------

_EDITABLE_PROBE = """
import json, sys, sysconfig
import amplitude
try:
    import amplitude.ai
    import amplitude.ai._hook
    ai = {"ai_file": amplitude.ai.__file__, "hook_file": amplitude.ai._hook.__file__,
          "version": amplitude.ai.__version__}
except ModuleNotFoundError as exc:
    ai = {"missing": exc.name}
print("RESULT " + json.dumps({
    **ai,
    "purelib": sysconfig.get_paths()["purelib"],
    "amplitude_file": amplitude.__file__,
    "has_Amplitude": hasattr(amplitude, "Amplitude"),
    "leaked": sorted(m for m in sys.modules if m.split(".")[0] in ("openai", "wrapt")),
}))
"""


def test_editable_install_uses_the_checkout_and_uninstalls_cleanly(
    editable_python: Path, tmp_path: Path
) -> None:
    result = probe(editable_python, _EDITABLE_PROBE, tmp_path)
    purelib = Path(result["purelib"])
    package = SRC / "amplitude" / "ai"

    assert Path(result["ai_file"]).resolve() == (package / "__init__.py").resolve()
    assert Path(result["hook_file"]).resolve() == (package / "_hook.py").resolve()
    assert Path(result["amplitude_file"]) == purelib / "amplitude" / "__init__.py"
    assert result["has_Amplitude"]
    assert result["leaked"] == []

    run([editable_python, "-m", "pip", "uninstall", "--yes", DIST_NAME], cwd=tmp_path)
    after = probe(editable_python, _EDITABLE_PROBE, tmp_path)
    assert after.get("missing") == "amplitude.ai"
    assert after["has_Amplitude"], "uninstalling us must leave amplitude-analytics working"
    leftovers = sorted(
        p.name for p in purelib.iterdir() if "amplitude_ai" in p.name or "amplitude_llm_tracking" in p.name
    )
    assert leftovers == []
    assert (purelib / "amplitude" / "__init__.py").is_file()
