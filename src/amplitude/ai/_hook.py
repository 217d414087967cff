"""The `sys.meta_path` finder that patches provider SDKs right after they load.

It only answers for module names it watches (a dict lookup; `None` for every other
import), finds their real spec through the other finders, and wraps the loader so a
callback runs right after the module body executes. Modules loaded before the hook
was installed are handled on installation. Nothing here imports a provider SDK.
"""

from __future__ import annotations

import importlib
import sys
import threading
from typing import Any, Callable

from ._log import logger, report_failure

Callback = Callable[[Any], None]


class _Executed(threading.local):
    """Modules whose body has run and whose callbacks are running, in this thread: still
    marked as initialising by the import system, yet complete."""

    def __init__(self) -> None:
        self.names: set[str | None] = set()


_executed = _Executed()


class _PatchingLoader:
    """Delegates to the real loader; runs the callbacks once the module has executed."""

    def __init__(self, loader: Any, callbacks: list[Callback]) -> None:
        self._loader = loader
        self._callbacks = callbacks

    def create_module(self, spec: Any) -> Any:
        create = getattr(self._loader, "create_module", None)
        return create(spec) if create is not None else None

    def exec_module(self, module: Any) -> None:
        # Introspection (importlib.resources, pkgutil, reload) must see the real loader.
        module.__loader__ = self._loader
        spec = getattr(module, "__spec__", None)
        if spec is not None:
            spec.loader = self._loader
        self._loader.exec_module(module)
        name = getattr(spec, "name", None)
        _executed.names.add(name)
        try:
            run_callbacks(self._callbacks, module)
        finally:
            _executed.names.discard(name)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


def run_callbacks(callbacks: list[Callback], module: Any) -> None:
    for callback in list(callbacks):
        try:
            callback(module)
        except Exception as exc:
            report_failure(f"instrumenting {getattr(module, '__name__', module)}", exc)


class PostImportFinder:
    """Runs callbacks after watched modules are imported (or right away if they are)."""

    def __init__(self) -> None:
        self._watched: dict[str, list[Callback]] = {}
        self._lock = threading.Lock()
        self._resolving = threading.local()

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        callbacks = self._watched.get(fullname)
        if callbacks is None:
            return None
        resolving = self._resolving.__dict__.setdefault("names", set())
        if fullname in resolving:
            # Another finder (e.g. wrapt's post-import hook) is looking the module up
            # through sys.meta_path from inside our lookup: let it, and hook only once,
            # at the outermost level.
            return None
        resolving.add(fullname)
        try:
            return self._patched_spec(fullname, path, target, callbacks)
        except Exception as exc:
            # Never break the user's import: let the normal machinery find it.
            report_failure(f"hooking the import of {fullname}", exc)
            return None
        finally:
            resolving.discard(fullname)

    def _patched_spec(self, fullname: str, path: Any, target: Any, callbacks: list[Callback]) -> Any:
        for finder in list(sys.meta_path):
            if finder is self or isinstance(finder, PostImportFinder):
                continue
            find_spec = getattr(finder, "find_spec", None)
            if find_spec is None:
                continue
            spec = find_spec(fullname, path, target)
            if spec is None:
                continue
            loader = spec.loader
            if loader is not None and hasattr(loader, "exec_module"):
                spec.loader = _PatchingLoader(loader, callbacks)
            else:
                # No loader to hook (a namespace package gets its loader later, inside
                # the import system): run the callbacks once the import has finished.
                run_when_imported(fullname, callbacks)
            return spec
        return None

    def watch(self, fullname: str, callback: Callback) -> None:
        """Call ``callback(module)`` after `fullname` loads; now, if it already has."""
        with self._lock:
            self._watched.setdefault(fullname, []).append(callback)
        module = sys.modules.get(fullname)
        if module is None:
            return
        if fullname in _executed.names or _fully_loaded(module):
            # E.g. a provider loaded by its SDK's callback patching that very module.
            run_callbacks([callback], module)
        else:
            # Being imported right now, by a loader found before this watch existed (e.g.
            # another thread loading an SDK submodule while the SDK package initialises):
            # no loader of ours will run the callback, so run it once that import is done.
            run_when_imported(fullname, [callback])

    def clear(self) -> None:
        with self._lock:
            self._watched.clear()


def run_when_imported(fullname: str, callbacks: list[Callback]) -> None:
    """Run `callbacks` on `fullname` from a helper thread, once its import has finished.

    Importing a module that is still being imported blocks on that module's import lock
    until the importing thread is done, so the helper waits exactly as long as needed and
    never holds a lock the importing thread could need. Rare: only for the cases above.
    """

    def wait_then_run() -> None:
        try:
            module = importlib.import_module(fullname)
        except BaseException as exc:
            # The user's import failed (and they see that error themselves): nothing to patch.
            logger.debug("not instrumenting %s: its import failed (%r)", fullname, exc)
            return
        run_callbacks(callbacks, module)

    threading.Thread(target=wait_then_run, name=f"amplitude-ai-import-{fullname}", daemon=True).start()


def _fully_loaded(module: Any) -> bool:
    # A module still executing has `__spec__._initializing` set; its own post-import
    # callback will run when it finishes.
    spec = getattr(module, "__spec__", None)
    return not getattr(spec, "_initializing", False)


_finder: PostImportFinder | None = None


def install() -> PostImportFinder:
    global _finder
    if _finder is None:
        _finder = PostImportFinder()
    if _finder not in sys.meta_path:
        sys.meta_path.insert(0, _finder)
        logger.debug("import hook installed")
    return _finder


def uninstall() -> None:
    global _finder
    if _finder is not None:
        _finder.clear()
        if _finder in sys.meta_path:
            sys.meta_path.remove(_finder)
    _finder = None
