"""The `sys.meta_path` finder that patches provider SDKs right after they load.

It only answers for module names it watches (a dict lookup; `None` for every other
import), finds their real spec through the other finders, and wraps the loader so a
callback runs right after the module body executes. Modules loaded before the hook
was installed are handled on installation. Nothing here imports a provider SDK.
"""

from __future__ import annotations

import sys
import threading
from typing import Any, Callable

from ._log import logger, report_failure

Callback = Callable[[Any], None]


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
        run_callbacks(self._callbacks, module)

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

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        callbacks = self._watched.get(fullname)
        if callbacks is None:
            return None
        try:
            return self._patched_spec(fullname, path, target, callbacks)
        except Exception as exc:
            # Never break the user's import: let the normal machinery find it.
            report_failure(f"hooking the import of {fullname}", exc)
            return None

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
            return spec
        return None

    def watch(self, fullname: str, callback: Callback) -> None:
        """Call ``callback(module)`` after `fullname` loads; now, if it already has."""
        with self._lock:
            self._watched.setdefault(fullname, []).append(callback)
        module = sys.modules.get(fullname)
        if module is not None and _fully_loaded(module):
            run_callbacks([callback], module)

    def clear(self) -> None:
        with self._lock:
            self._watched.clear()


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
