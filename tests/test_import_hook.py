"""The import hook and the patching: what they must never break, and how they live with
other instrumentation.

In-process where the interpreter can be put back as it was; a fresh interpreter where
import order or global import state is the point of the test.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.metadata
import json
import logging
import os
import subprocess
import sys
import textwrap
import time
import types
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import openai
import pytest
import wrapt

import amplitude.ai
from amplitude.ai import _hook
from amplitude.ai._patching import tracking_switch
from conftest import sent

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
RUN_TIMEOUT = 60.0

CHAT: dict[str, Any] = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Say hello"}]}
EMBED: dict[str, Any] = {"model": "text-embedding-3-small", "input": "hello"}

Watch = Callable[[str, Callable[[Any], None]], None]


# -- helpers ---------------------------------------------------------------------------------


def tracking_wrappers(obj: Any) -> int:
    """How many of our wrappers sit in `obj`'s chain of ``__wrapped__``."""
    count = 0
    for _ in range(64):
        count += tracking_switch(obj) is not None
        obj = getattr(obj, "__func__", obj)
        obj = getattr(obj, "__wrapped__", None)
        if obj is None:
            break
    return count


def openai_targets() -> list[tuple[type, str]]:
    """Every (class, method) the OpenAI provider patches in the installed SDK."""
    from openai.resources import completions, embeddings
    from openai.resources.chat.completions import completions as chat
    from openai.resources.responses import responses

    return [
        (chat.Completions, "create"),
        (chat.Completions, "parse"),
        (chat.AsyncCompletions, "create"),
        (chat.AsyncCompletions, "parse"),
        (completions.Completions, "create"),
        (completions.AsyncCompletions, "create"),
        (embeddings.Embeddings, "create"),
        (embeddings.AsyncEmbeddings, "create"),
        (responses.Responses, "create"),
        (responses.AsyncResponses, "create"),
    ]


class FakeAmplitude:
    """Stands in for ``amplitude.Amplitude``: keeps events in memory, so counts are exact."""

    def __init__(self) -> None:
        self.events: list[Any] = []

    def track(self, event: Any) -> None:
        self.events.append(event)

    def flush(self) -> None:
        pass

    def apis(self) -> list[str]:
        assert amplitude.ai.flush(timeout=5)
        return [event.event_properties["api"] for event in self.events]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSTARTUP")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


# Shared by the scripts run in fresh interpreters; imports neither amplitude nor openai.
_PRELUDE = """\
import json
import sys
import time

sys.path.append(@TESTS@)


class FakeAmplitude:
    def __init__(self):
        self.events = []

    def track(self, event):
        self.events.append(event)

    def flush(self):
        pass


def apis(amp):
    import amplitude.ai

    assert amplitude.ai.flush(timeout=10)
    return [event.event_properties["api"] for event in amp.events]


def tracking_switch(obj):
    from amplitude.ai._patching import tracking_switch as switch

    return switch(obj)


def tracking_wrappers(obj):
    count = 0
    for _ in range(64):
        count += tracking_switch(obj) is not None
        obj = getattr(obj, "__func__", obj)
        obj = getattr(obj, "__wrapped__", None)
        if obj is None:
            break
    return count


def emit(result):
    print("RESULT " + json.dumps(result), flush=True)


"""


def run_script(
    tmp_path: Path,
    body: str,
    *args: str,
    python: str | Path = sys.executable,
    timeout: float = RUN_TIMEOUT,
) -> tuple[Any, subprocess.CompletedProcess[str]]:
    """Run `body` (after the prelude) in a fresh interpreter; its RESULT json and the process."""
    script = tmp_path / f"script_{uuid.uuid4().hex[:8]}.py"
    script.write_text(_PRELUDE.replace("@TESTS@", repr(str(TESTS))) + textwrap.dedent(body), encoding="utf-8")
    try:
        proc = subprocess.run(
            [str(python), str(script), *args],
            cwd=tmp_path,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"no result within {timeout}s (deadlock?)\n{exc.stdout!r}\n{exc.stderr!r}")
    assert proc.returncode == 0, f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :]), proc
    pytest.fail(f"no RESULT line\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")


@pytest.fixture
def watch() -> Iterator[Watch]:
    """Watch throwaway module names through the real finder; forgotten again afterwards."""
    names: list[str] = []

    def register(name: str, callback: Callable[[Any], None]) -> None:
        names.append(name)
        _hook.install().watch(name, callback)

    yield register
    for finder in {id(f): f for f in (_hook._finder, *sys.meta_path)}.values():
        if isinstance(finder, _hook.PostImportFinder):
            for name in names:
                finder._watched.pop(name, None)


@pytest.fixture
def forget_modules() -> Iterator[list[str]]:
    """Top-level names whose modules (and submodules) are dropped from sys.modules afterwards."""
    prefixes: list[str] = []
    yield prefixes
    for name in list(sys.modules):
        if any(name == p or name.startswith(p + ".") for p in prefixes):
            del sys.modules[name]


def _unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


# -- the finder stays out of the way ---------------------------------------------------------


def test_finder_answers_none_for_unwatched_names() -> None:
    finder = _hook.install()
    assert finder is _hook.install(), "install() is idempotent"
    assert sum(isinstance(f, _hook.PostImportFinder) for f in sys.meta_path) == 1
    for name in ("json", "amplitude", "amplitude.ai", "openai.types", "openai.resources.models", "x" * 300):
        assert finder.find_spec(name, None) is None, name


def test_patched_modules_keep_their_real_loader() -> None:
    import importlib.resources

    from openai.resources.chat.completions import completions as chat

    for module in (openai, chat):
        assert "PatchingLoader" not in type(module.__loader__).__name__
        assert module.__spec__ is not None and module.__spec__.loader is module.__loader__
        assert isinstance(module.__loader__, importlib.machinery.SourceFileLoader)
    assert importlib.resources.files("openai").joinpath("py.typed").is_file()


def test_python_m_json_tool_with_the_package_imported(tmp_path: Path) -> None:
    data = tmp_path / "data.json"
    data.write_text('{"b": [1, 2], "a": null}', encoding="utf-8")
    code = (
        "import amplitude.ai, runpy, sys\n"
        "sys.argv = ['json.tool', '--sort-keys', sys.argv[1]]\n"
        "runpy.run_module('json.tool', run_name='__main__', alter_sys=True)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(data)],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == '{\n    "a": null,\n    "b": [\n        1,\n        2\n    ]\n}\n'
    assert proc.stderr == ""


def test_reload_of_a_patched_module_is_patched_again_once(tmp_path: Path) -> None:
    result, proc = run_script(
        tmp_path,
        """
        import importlib

        from loopback import OpenAIStub

        import amplitude.ai
        import openai
        import openai.resources.embeddings as module

        stub = OpenAIStub().start()
        amp = FakeAmplitude()
        amplitude.ai.track(amp)
        client = openai.OpenAI(api_key="sk-test-reload", base_url=stub.base_url, max_retries=0)
        before = module.Embeddings
        old_resource = client.embeddings  # an instance of the class from before the reload

        reloaded = importlib.reload(module)
        new_client = openai.OpenAI(api_key="sk-test-reload", base_url=stub.base_url, max_retries=0)
        result = {
            "same_module": reloaded is module,
            "new_class": reloaded.Embeddings is not before,
            "new_client_uses_new_class": type(new_client.embeddings) is reloaded.Embeddings,
            "wrappers_new": tracking_wrappers(reloaded.Embeddings.__dict__["create"]),
            "wrappers_new_async": tracking_wrappers(reloaded.AsyncEmbeddings.__dict__["create"]),
            "wrappers_old": tracking_wrappers(before.__dict__["create"]),
            "loader": type(reloaded.__loader__).__name__,
            "spec_loader": type(reloaded.__spec__.loader).__name__,
        }
        old_resource.create(model="text-embedding-3-small", input="before")
        new_client.embeddings.create(model="text-embedding-3-small", input="after")
        result["apis"] = apis(amp)
        again = importlib.reload(module)
        result["wrappers_after_second_reload"] = tracking_wrappers(again.Embeddings.__dict__["create"])
        stub.stop()
        emit(result)
        """,
    )
    assert result["same_module"] and result["new_class"] and result["new_client_uses_new_class"]
    assert (result["wrappers_new"], result["wrappers_new_async"], result["wrappers_old"]) == (1, 1, 1)
    assert result["wrappers_after_second_reload"] == 1
    assert result["loader"] == result["spec_loader"] == "SourceFileLoader"
    assert result["apis"] == ["embeddings.create", "embeddings.create"], "one event per call"
    assert "amplitude.ai" not in proc.stderr


def test_reloading_amplitude_ai_changes_nothing(tmp_path: Path) -> None:
    result, _ = run_script(
        tmp_path,
        """
        import importlib

        from loopback import OpenAIStub

        import amplitude.ai
        import openai
        from amplitude.ai import _hook
        from openai.resources.chat.completions import completions as chat

        importlib.reload(amplitude.ai)
        importlib.reload(amplitude.ai)
        stub = OpenAIStub().start()
        amp = FakeAmplitude()
        amplitude.ai.track(amp)
        client = openai.OpenAI(api_key="sk-test", base_url=stub.base_url, max_retries=0)
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
        emit({
            "finders": sum(isinstance(f, _hook.PostImportFinder) for f in sys.meta_path),
            "wrappers": tracking_wrappers(chat.Completions.__dict__["create"]),
            "apis": apis(amp),
        })
        stub.stop()
        """,
    )
    assert result == {"finders": 1, "wrappers": 1, "apis": ["chat.completions.create"]}


def test_lazy_loader_imports_of_the_sdk_are_patched(tmp_path: Path) -> None:
    """`importlib.util.LazyLoader` (lazy-import helpers use it) defers the module body."""
    result, _ = run_script(
        tmp_path,
        """
        import importlib.util

        from loopback import OpenAIStub

        import amplitude.ai

        spec = importlib.util.find_spec("openai")
        loader = importlib.util.LazyLoader(spec.loader)
        spec.loader = loader
        openai = importlib.util.module_from_spec(spec)
        sys.modules["openai"] = openai
        loader.exec_module(openai)
        lazy = type(openai).__name__

        stub = OpenAIStub().start()
        amp = FakeAmplitude()
        amplitude.ai.track(amp)
        client = openai.OpenAI(api_key="sk-test", base_url=stub.base_url, max_retries=0)
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
        emit({"lazy": lazy, "apis": apis(amp)})
        stub.stop()
        """,
    )
    assert result == {"lazy": "_LazyModule", "apis": ["chat.completions.create"]}


# -- namespace packages ----------------------------------------------------------------------


def test_namespace_packages_import_with_the_hook_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, watch: Watch, forget_modules: list[str]
) -> None:
    name = _unique("amp_ns")
    forget_modules.append(name)
    for portion in ("one", "two"):
        portion_dir = tmp_path / portion / name
        portion_dir.mkdir(parents=True)
        (portion_dir / f"mod_{portion}.py").write_text(f"PORTION = {portion!r}\n", encoding="utf-8")
    (tmp_path / "one" / name / "watched.py").write_text("VALUE = 7\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path / "one"))
    monkeypatch.syspath_prepend(str(tmp_path / "two"))
    seen: list[Any] = []
    watch(f"{name}.watched", seen.append)
    assert _hook._finder in sys.meta_path

    one = importlib.import_module(f"{name}.mod_one")
    two = importlib.import_module(f"{name}.mod_two")
    watched = importlib.import_module(f"{name}.watched")

    package = sys.modules[name]
    assert package.__file__ is None
    assert sorted(package.__path__) == sorted(str(tmp_path / p / name) for p in ("one", "two"))
    assert (one.PORTION, two.PORTION, watched.VALUE) == ("one", "two", 7)
    assert seen == [watched], "a watched module inside a namespace package gets its callback"


def test_watched_namespace_package_still_imports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, watch: Watch, forget_modules: list[str]
) -> None:
    name = _unique("amp_ns_watched")
    forget_modules.append(name)
    (tmp_path / name).mkdir()
    (tmp_path / name / "mod.py").write_text("VALUE = 1\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    watch(name, lambda module: None)

    module = importlib.import_module(f"{name}.mod")
    assert module.VALUE == 1
    assert sys.modules[name].__file__ is None


def test_watched_namespace_package_runs_its_callback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, watch: Watch, forget_modules: list[str]
) -> None:
    name = _unique("amp_ns_cb")
    forget_modules.append(name)
    (tmp_path / name).mkdir()
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = importlib.machinery.PathFinder.find_spec(name, [str(tmp_path)])
    if spec is None or spec.loader is not None:
        pytest.skip("this Python gives namespace specs their loader up front: nothing to check")
    seen: list[Any] = []
    watch(name, seen.append)

    module = importlib.import_module(name)
    # No loader to hook for a namespace package: the callback follows from a helper thread.
    deadline = time.monotonic() + 5
    while not seen and time.monotonic() < deadline:
        time.sleep(0.01)
    assert seen == [module]


# -- errors in watched modules and in callbacks ----------------------------------------------


@pytest.mark.parametrize("error", [ValueError, ImportError])
def test_error_raised_by_a_watched_module_reaches_the_user_unchanged(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    watch: Watch,
    forget_modules: list[str],
    error: type[Exception],
) -> None:
    name = _unique("fake_pkg_for_test")
    holder = f"{name}_raised"
    forget_modules.extend([name, holder])
    (tmp_path / f"{holder}.py").write_text("errors = []\n", encoding="utf-8")
    user_module = tmp_path / f"{name}.py"
    user_module.write_text(
        f"from {holder} import errors\n"
        f"error = {error.__name__}('raised by the module itself')\n"
        "errors.append(error)\n"
        "raise error\n",
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    callbacks: list[Any] = []
    watch(name, callbacks.append)

    with pytest.raises(error) as first:
        importlib.import_module(name)
    errors = sys.modules[holder].errors
    assert first.value is errors[0], "the very exception the module raised"
    assert type(first.value) is error
    assert first.value.__cause__ is None and first.value.__context__ is None
    assert Path(first.traceback[-1].path) == user_module, "the user's own frame is the innermost"
    assert name not in sys.modules
    assert callbacks == []

    with pytest.raises(error) as second:
        importlib.import_module(name)
    assert second.value is errors[1], "a second import runs the module (and fails) again"
    assert callbacks == []


def test_missing_watched_module_is_a_plain_module_not_found(watch: Watch) -> None:
    name = _unique("amp_missing")
    watch(name, lambda module: None)
    with pytest.raises(ModuleNotFoundError) as raised:
        importlib.import_module(name)
    assert raised.value.name == name


def test_failing_callback_never_breaks_the_import(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    watch: Watch,
    forget_modules: list[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    name = _unique("amp_ok")
    forget_modules.append(name)
    (tmp_path / f"{name}.py").write_text("VALUE = 42\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))

    def broken(module: Any) -> None:
        raise RuntimeError("bug in an instrumentation callback")

    later: list[Any] = []
    watch(name, broken)
    watch(name, later.append)
    with caplog.at_level(logging.WARNING, logger="amplitude.ai"):
        module = importlib.import_module(name)

    assert module.VALUE == 42
    assert later == [module], "the next callback still runs"
    warnings = [r for r in caplog.records if r.name == "amplitude.ai" and r.levelno == logging.WARNING]
    assert any(name in r.getMessage() and "RuntimeError" in r.getMessage() for r in warnings), warnings


# -- threads ---------------------------------------------------------------------------------

_THREADS_SCRIPT = """
import importlib
import threading

from loopback import OpenAIStub

import amplitude.ai

MODULES = [
    "openai",
    "openai.resources",
    "openai.resources.chat.completions.completions",
    "openai.resources.embeddings",
    "openai.resources.completions",
    "openai.resources.responses.responses",
    "openai.resources.models",
    "openai.resources.files",
]
errors = []
barrier = threading.Barrier(len(MODULES))


def load(name):
    try:
        barrier.wait(timeout=10)
        importlib.import_module(name)
    except BaseException as exc:
        errors.append(f"{name}: {type(exc).__name__}: {exc}")


threads = [threading.Thread(target=load, args=(m,), name=m, daemon=True) for m in MODULES]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join(timeout=30)
alive = [t.name for t in threads if t.is_alive()]
if alive:
    emit({"alive": alive})
    raise SystemExit(0)

import openai
from openai.resources import completions, embeddings
from openai.resources.chat.completions import completions as chat
from openai.resources.responses import responses

targets = {
    "chat": chat.Completions, "async_chat": chat.AsyncCompletions,
    "completions": completions.Completions, "embeddings": embeddings.Embeddings,
    "async_embeddings": embeddings.AsyncEmbeddings, "responses": responses.Responses,
}
wrappers = {key: tracking_wrappers(cls.__dict__["create"]) for key, cls in targets.items()}

stub = OpenAIStub().start()
amp = FakeAmplitude()
amplitude.ai.track(amp)
client = openai.OpenAI(api_key="sk-test-threads", base_url=stub.base_url, max_retries=0)
callers = [
    threading.Thread(
        target=client.chat.completions.create,
        kwargs={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
    )
    for _ in range(8)
]
for thread in callers:
    thread.start()
for thread in callers:
    thread.join(timeout=30)
emit({"alive": [], "errors": errors, "wrappers": wrappers, "apis": apis(amp), "requests": len(stub.requests)})
stub.stop()
"""


def test_eight_threads_importing_openai_concurrently(tmp_path: Path) -> None:
    result, proc = run_script(tmp_path, _THREADS_SCRIPT, timeout=90)
    assert result["alive"] == [], "import threads deadlocked"
    assert result["errors"] == []
    assert set(result["wrappers"].values()) == {1}, result["wrappers"]
    assert result["requests"] == 8
    assert result["apis"] == ["chat.completions.create"] * 8
    assert "amplitude.ai" not in proc.stderr


_RACE_GATE = """\
import threading

parent_started = threading.Event()
sub_started = threading.Event()
watched = threading.Event()
sub_saw_parent_initializing = None
"""

_RACE_SCRIPT = """
import threading
import time

sys.path.insert(0, sys.argv[1])
import amp_race_gate as gate

import amplitude.ai
from amplitude.ai import _hook

finder = _hook.install()
seen = []


def on_parent(module):
    # What amplitude.ai does for a provider SDK: watch its submodules once the SDK loaded.
    finder.watch("amp_race_pkg.sub", seen.append)
    gate.watched.set()


finder.watch("amp_race_pkg", on_parent)


def import_parent():
    import amp_race_pkg


def import_sub():
    gate.parent_started.wait(5)
    import amp_race_pkg.sub


threads = [threading.Thread(target=f, daemon=True) for f in (import_parent, import_sub)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join(timeout=20)
# The callback for a module caught mid-import runs from a helper thread once it is done.
deadline = time.monotonic() + 5
while not seen and time.monotonic() < deadline:
    time.sleep(0.01)
emit({
    "alive": sum(t.is_alive() for t in threads),
    "precondition": gate.sub_saw_parent_initializing,
    "seen": [getattr(m, "__name__", None) for m in seen],
    "sub_loaded": "amp_race_pkg.sub" in sys.modules,
})
"""


def test_watch_registered_while_module_loads_in_another_thread(tmp_path: Path) -> None:
    (tmp_path / "amp_race_gate.py").write_text(_RACE_GATE, encoding="utf-8")
    package = tmp_path / "amp_race_pkg"
    package.mkdir()
    (package / "__init__.py").write_text(
        "import amp_race_gate as gate\ngate.parent_started.set()\ngate.sub_started.wait(5)\n",
        encoding="utf-8",
    )
    (package / "sub.py").write_text(
        "import sys\n"
        "import amp_race_gate as gate\n"
        "spec = sys.modules['amp_race_pkg'].__spec__\n"
        "gate.sub_saw_parent_initializing = bool(getattr(spec, '_initializing', False))\n"
        "gate.sub_started.set()\n"
        "gate.watched.wait(5)\n",
        encoding="utf-8",
    )
    result, _ = run_script(tmp_path, _RACE_SCRIPT, str(tmp_path))
    assert result["alive"] == 0 and result["sub_loaded"]
    if not result["precondition"]:
        pytest.skip("this Python waits for the parent package before loading a submodule")
    assert result["seen"] == ["amp_race_pkg.sub"], "the submodule must get its callback"


# -- idempotency -----------------------------------------------------------------------------


def test_instrument_and_track_twice_give_one_wrapper_and_one_event_per_call(
    amp: Any, openai_client: Any, capture: Any
) -> None:
    amplitude.ai.instrument()
    amplitude.ai.instrument()
    amplitude.ai.track(amp)
    amplitude.ai.track(amp)
    assert amplitude.ai.get_active_client() is amp
    assert sum(isinstance(f, _hook.PostImportFinder) for f in sys.meta_path) == 1
    for cls, name in openai_targets():
        assert tracking_wrappers(cls.__dict__[name]) == 1, f"{cls.__qualname__}.{name}"

    openai_client.chat.completions.create(**CHAT)
    openai_client.embeddings.create(**EMBED)
    events = sent(capture, 2)
    assert sorted(e["event_properties"]["api"] for e in events) == [
        "chat.completions.create",
        "embeddings.create",
    ]


# -- coexistence with other wrappers -----------------------------------------------------------


@pytest.fixture
def chat_class() -> Iterator[type]:
    """The chat Completions class; afterwards: no foreign wrapper, ours exactly once, on."""
    from openai.resources.chat.completions import completions as chat

    cls = chat.Completions
    current = cls.__dict__["create"]
    assert tracking_wrappers(current) == 1
    sdk_function = current
    # Peel wrappers: ours (a function too) and others' (proxies pass isinstance).
    while type(sdk_function) is not types.FunctionType or tracking_switch(sdk_function) is not None:
        sdk_function = sdk_function.__wrapped__
    yield cls
    amplitude.ai.uninstrument()
    cls.create = sdk_function  # type: ignore[attr-defined,method-assign,unused-ignore]
    amplitude.ai.instrument()
    restored = cls.__dict__["create"]
    assert tracking_switch(restored) is not None and restored.__wrapped__ is sdk_function
    for target, name in openai_targets():
        assert tracking_wrappers(target.__dict__[name]) == 1


class ForeignInstrumentation:
    """Another vendor's wrapt wrapper: counts the calls it sees."""

    def __init__(self) -> None:
        self.models: list[str] = []

    def __call__(self, wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        self.models.append(kwargs.get("model", "?"))
        return wrapped(*args, **kwargs)


def test_foreign_wrapper_over_ours(chat_class: type, openai_client: Any) -> None:
    ours = chat_class.__dict__["create"]
    theirs = ForeignInstrumentation()
    wrapt.wrap_function_wrapper(chat_class.__module__, "Completions.create", theirs)
    foreign = chat_class.__dict__["create"]
    assert foreign is not ours and foreign.__wrapped__ is ours

    fake = FakeAmplitude()
    amplitude.ai.track(fake)
    openai_client.chat.completions.create(**CHAT)
    openai_client.chat.completions.create(**CHAT)
    assert theirs.models == ["gpt-4o", "gpt-4o"]
    assert fake.apis() == ["chat.completions.create"] * 2

    amplitude.ai.uninstrument()
    assert chat_class.__dict__["create"] is foreign, "theirs stays in place, on top"
    assert not any(isinstance(f, _hook.PostImportFinder) for f in sys.meta_path)
    from openai.resources.embeddings import Embeddings

    assert tracking_wrappers(Embeddings.__dict__["create"]) == 0, "where ours was outermost: removed"
    openai_client.chat.completions.create(**CHAT)
    assert len(theirs.models) == 3, "theirs keeps working"
    assert fake.apis() == ["chat.completions.create"] * 2, "ours stops emitting"


def test_foreign_wrapper_under_ours(chat_class: type, openai_client: Any) -> None:
    amplitude.ai.uninstrument()
    sdk_function = chat_class.__dict__["create"]
    assert tracking_wrappers(sdk_function) == 0
    theirs = ForeignInstrumentation()
    wrapt.wrap_function_wrapper(chat_class.__module__, "Completions.create", theirs)
    foreign = chat_class.__dict__["create"]

    amplitude.ai.instrument()
    ours = chat_class.__dict__["create"]
    assert tracking_switch(ours) is not None and ours.__wrapped__ is foreign

    fake = FakeAmplitude()
    amplitude.ai.track(fake)
    openai_client.chat.completions.create(**CHAT)
    openai_client.chat.completions.create(**CHAT)
    assert theirs.models == ["gpt-4o", "gpt-4o"]
    assert fake.apis() == ["chat.completions.create"] * 2

    amplitude.ai.uninstrument()
    assert chat_class.__dict__["create"] is foreign, "the exact object we replaced is back"
    openai_client.chat.completions.create(**CHAT)
    assert len(theirs.models) == 3
    assert fake.apis() == ["chat.completions.create"] * 2


def test_foreign_wrapper_installed_before_amplitude_ai_is_imported(tmp_path: Path) -> None:
    result, proc = run_script(
        tmp_path,
        """
        import asyncio

        import wrapt
        from loopback import OpenAIStub

        import openai
        from openai.resources.chat.completions import completions as chat

        seen = []


        def theirs(wrapped, instance, args, kwargs):
            seen.append(type(instance).__name__)
            return wrapped(*args, **kwargs)


        wrapt.wrap_function_wrapper(chat, "Completions.create", theirs)
        wrapt.wrap_function_wrapper(chat, "AsyncCompletions.create", theirs)
        foreign = chat.Completions.__dict__["create"]
        foreign_async = chat.AsyncCompletions.__dict__["create"]
        assert "amplitude.ai" not in sys.modules

        import amplitude.ai

        ours = chat.Completions.__dict__["create"]
        stub = OpenAIStub().start()
        amp = FakeAmplitude()
        amplitude.ai.track(amp)
        kwargs = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
        client = openai.OpenAI(api_key="sk-test", base_url=stub.base_url, max_retries=0)
        aclient = openai.AsyncOpenAI(api_key="sk-test", base_url=stub.base_url, max_retries=0)
        client.chat.completions.create(**kwargs)
        asyncio.run(aclient.chat.completions.create(**kwargs))
        result = {
            "ours_on_top": tracking_switch(ours) is not None and ours.__wrapped__ is foreign,
            "wrappers": tracking_wrappers(ours),
            "seen": list(seen),
            "apis": apis(amp),
        }
        amplitude.ai.uninstrument()
        result["restored"] = chat.Completions.__dict__["create"] is foreign
        result["restored_async"] = chat.AsyncCompletions.__dict__["create"] is foreign_async
        client.chat.completions.create(**kwargs)
        result["seen_after"] = list(seen)
        result["apis_after"] = apis(amp)
        stub.stop()
        emit(result)
        """,
    )
    assert result["ours_on_top"] and result["wrappers"] == 1
    assert result["seen"] == ["Completions", "AsyncCompletions"]
    assert result["apis"] == ["chat.completions.create"] * 2
    assert result["restored"] and result["restored_async"]
    assert result["seen_after"] == ["Completions", "AsyncCompletions", "Completions"]
    assert result["apis_after"] == result["apis"]
    assert "amplitude.ai" not in proc.stderr


@pytest.mark.parametrize("first", ["wrapt_hooks", "amplitude_ai"])
def test_wrapt_post_import_hooks_coexist(tmp_path: Path, first: str) -> None:
    """wrapt's own post-import-hook finder also sits on sys.meta_path and wraps loaders."""
    result, _ = run_script(
        tmp_path,
        """
        import wrapt
        from loopback import OpenAIStub

        fired = []


        def register():
            wrapt.register_post_import_hook(lambda m: fired.append(m.__name__), "openai")
            wrapt.register_post_import_hook(
                lambda m: fired.append(m.__name__), "openai.resources.chat.completions.completions"
            )


        if sys.argv[1] == "wrapt_hooks":
            register()
            import amplitude.ai
        else:
            import amplitude.ai

            register()
        import openai
        from openai.resources.chat.completions import completions as chat

        stub = OpenAIStub().start()
        amp = FakeAmplitude()
        amplitude.ai.track(amp)
        client = openai.OpenAI(api_key="sk-test", base_url=stub.base_url, max_retries=0)
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
        emit({
            "fired": fired,
            "wrappers": tracking_wrappers(chat.Completions.__dict__["create"]),
            "apis": apis(amp),
        })
        stub.stop()
        """,
        first,
    )
    assert sorted(result["fired"]) == ["openai", "openai.resources.chat.completions.completions"]
    assert result["wrappers"] == 1
    assert result["apis"] == ["chat.completions.create"]


# -- OpenTelemetry's OpenAI instrumentation (optional) -----------------------------------------

# Known-good set: 2.4b0 fails to import with opentelemetry-util-genai 1.3b0 and needs httpx,
# which openai 3.x no longer depends on.
OTEL_REQUIREMENTS = (
    "opentelemetry-instrumentation-openai-v2==2.4b0",
    "opentelemetry-util-genai==1.1b0",
    "opentelemetry-sdk",
    "httpx",
)


@pytest.fixture(scope="module")
def otel_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A throwaway venv: this checkout (editable), openai and OTel's OpenAI instrumentation."""
    if sys.version_info < (3, 10):
        pytest.skip("opentelemetry-instrumentation-openai-v2 needs Python >= 3.10")
    venv = tmp_path_factory.mktemp("venv-otel")
    env = {**_env(), "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
    env.pop("VIRTUAL_ENV", None)
    python = venv / ("Scripts" if os.name == "nt" else "bin") / "python"
    try:
        openai_req = f"openai=={importlib.metadata.version('openai')}"
        for cmd in (
            [sys.executable, "-m", "venv", str(venv)],
            [str(python), "-m", "pip", "install", "--quiet", "-e", str(ROOT), openai_req, *OTEL_REQUIREMENTS],
            [str(python), "-c", "from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor"],
        ):
            proc = subprocess.run(
                cmd, cwd=venv, env=env, capture_output=True, text=True, timeout=300, check=False
            )
            if proc.returncode != 0:
                pytest.skip(f"OpenTelemetry's OpenAI instrumentation unavailable: {proc.stderr[-500:]}")
    except subprocess.TimeoutExpired:
        pytest.skip("installing OpenTelemetry's OpenAI instrumentation took too long")
    return python


_OTEL_SCRIPT = """
from loopback import OpenAIStub
from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

FIRST = sys.argv[1]
exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
otel = OpenAIInstrumentor()
if FIRST == "otel":
    otel.instrument(tracer_provider=provider)
    import amplitude.ai
else:
    import amplitude.ai
    import openai

    otel.instrument(tracer_provider=provider)

import openai
from openai.resources.chat.completions import completions as chat

stub = OpenAIStub().start()
amp = FakeAmplitude()
amplitude.ai.track(amp)
client = openai.OpenAI(api_key="sk-test-otel", base_url=stub.base_url, max_retries=0)


def calls():
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    client.embeddings.create(model="text-embedding-3-small", input="hi")


def observed():
    seen = {"spans": sorted(s.name for s in exporter.get_finished_spans()), "apis": sorted(apis(amp))}
    exporter.clear()
    amp.events.clear()
    return seen


calls()
outer = chat.Completions.__dict__["create"]
result = {
    "both": observed(),
    "outermost_is_ours": tracking_switch(outer) is not None,
    "wrappers": tracking_wrappers(outer),
}
if FIRST == "otel":
    # Ours is outermost: removing ours must give back OTel's wrapper, untouched.
    foreign = outer.__wrapped__
    amplitude.ai.uninstrument()
    result["restored"] = chat.Completions.__dict__["create"] is foreign
else:
    # OTel is outermost: removing OTel's leaves ours working, put back as it was.
    otel.uninstrument()
    result["restored"] = tracking_switch(chat.Completions.__dict__["create"]) is not None
calls()
result["after"] = observed()
if FIRST != "otel":
    amplitude.ai.uninstrument()
    calls()
    result["after_both_removed"] = observed()
stub.stop()
emit(result)
"""


@pytest.mark.parametrize("first", ["otel", "amplitude"])
def test_opentelemetry_openai_instrumentation_coexists(otel_python: Path, tmp_path: Path, first: str) -> None:
    result, proc = run_script(tmp_path, _OTEL_SCRIPT, first, python=otel_python)
    both = result["both"]
    assert len(both["spans"]) == 2, both
    assert any("chat" in s for s in both["spans"]) and any("embeddings" in s for s in both["spans"])
    assert both["apis"] == ["chat.completions.create", "embeddings.create"]
    assert result["wrappers"] == 1
    assert result["outermost_is_ours"] is (first == "otel")
    assert result["restored"]
    if first == "otel":
        assert len(result["after"]["spans"]) == 2 and result["after"]["apis"] == []
    else:
        assert result["after"]["spans"] == [] and result["after"]["apis"] == both["apis"]
        assert result["after_both_removed"] == {"spans": [], "apis": []}
    assert "amplitude.ai" not in proc.stderr


@pytest.mark.parametrize("ours_first", [True, False], ids=["ours-outermost", "wrapt-outermost"])
def test_callbacks_run_once_next_to_wrapts_post_import_hooks(tmp_path: Path, ours_first: bool) -> None:
    """Regression: wrapt's finder looks modules up through sys.meta_path from inside ours;
    both loaders got wrapped and our callbacks ran twice."""
    (tmp_path / "amp_twice_mod.py").write_text("VALUE = 1\n", encoding="utf-8")
    body = """
    import sys
    sys.path.insert(0, sys.argv[1])
    import wrapt
    import amplitude.ai
    from amplitude.ai import _hook

    ours, theirs = [], []
    wrapt.register_post_import_hook(theirs.append, "amp_twice_mod")
    if sys.argv[2] == "True":  # put our finder in front of wrapt's
        _hook.uninstall()
    _hook.install().watch("amp_twice_mod", ours.append)
    import amp_twice_mod
    emit({"ours": len(ours), "theirs": len(theirs)})
    """
    result, _ = run_script(tmp_path, body, str(tmp_path), str(ours_first))
    assert result == {"ours": 1, "theirs": 1}


def test_a_class_that_copied_our_bound_wrapper_is_not_wrapped_again() -> None:
    """Regression: SDK client variants (anthropic's Vertex/Bedrock) copy methods from
    patched classes through attribute access, which yields wrapt's bound wrapper; that
    was not recognised as ours, so the copy got a second wrapper and calls were
    tracked twice."""
    from amplitude.ai._patching import patch
    from amplitude.ai._providers.openai import PROVIDER

    method = PROVIDER.methods[0]

    class Base:
        def create(self) -> str:
            return "created"

    try:
        assert patch(PROVIDER, replace_name(method, Base), Base)
        copied = Base.create  # the bound wrapper, as a copying class gets it
        copy = type("Copy", (), {"create": copied})
        assert not patch(PROVIDER, replace_name(method, copy), copy)
        assert copy.__dict__["create"] is copied, "not wrapped a second time"
    finally:
        amplitude.ai.uninstrument()  # removes every patch of ours, these included
        amplitude.ai.instrument()


def replace_name(method: Any, cls: type) -> Any:
    import dataclasses

    return dataclasses.replace(method, cls=cls.__name__, name="create")
