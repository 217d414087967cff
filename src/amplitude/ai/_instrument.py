"""Connects the import hook to the provider modules and the patcher."""

from __future__ import annotations

import functools
import importlib
import sys
import threading
from typing import TYPE_CHECKING, Any

from _amplitude_ai.settings import provider_entry_points

from . import _hook
from ._log import logger, report_failure
from ._providers import BUILTIN, Entry
from ._versions import in_range

if TYPE_CHECKING:
    from ._provider import Method, Provider

_lock = threading.Lock()
_instrumented = False
_only: frozenset[str] | None = None  # provider names to patch; None: all
_disabled: frozenset[str] = frozenset()
_registered: tuple[Entry, ...] | None = None  # third-party entries, read once per process
_watching_registered = False


def select_providers(only: tuple[str, ...] | None, disabled: tuple[str, ...] | None) -> None:
    """Limit which providers get patched from now on (AMPLITUDE_AI_PROVIDERS & co.)."""
    global _only, _disabled
    _only = None if only is None else frozenset(only)
    _disabled = frozenset(disabled or ())


def instrument(*, registered: bool = True) -> None:
    """Install the import hook; patch provider SDKs now or when they are imported.

    `registered`: also the providers third-party packages register. Reading entry points
    costs milliseconds, so `import amplitude.ai` leaves them to when tracking starts.
    """
    global _instrumented, _watching_registered
    entries = registered_entries() if registered and not _watching_registered else ()
    with _lock:
        todo = [] if _instrumented else list(BUILTIN)
        if registered and not _watching_registered:
            todo += entries
            _watching_registered = True
        _instrumented = True
        finder = _hook.install()
    for entry in todo:
        finder.watch(entry.sdk, functools.partial(_load_provider, entry))


def registered_entries() -> tuple[Entry, ...]:
    """Provider entries third-party packages registered under the entry-point group.

    Read once per process (an entry-point scan reads every installed distribution's
    metadata: milliseconds, too much for `import amplitude.ai`). A bad entry is logged
    and skipped; a built-in provider's name cannot be taken over.
    """
    global _registered
    with _lock:
        if _registered is None:
            _registered = tuple(_read_entry_points())
        return _registered


def _read_entry_points() -> list[Entry]:
    try:
        found = provider_entry_points()
    except Exception as exc:
        report_failure("reading provider entry points", exc)
        return []
    builtin = {entry.name for entry in BUILTIN}
    entries: list[Entry] = []
    for point in found:
        try:
            entry = point.load()
            if not isinstance(entry, Entry):
                raise TypeError(f"expected an amplitude.ai.providers.Entry, got {type(entry).__name__}")
            if entry.name in builtin:
                raise ValueError(f"{entry.name!r} is a built-in provider")
        except Exception as exc:
            logger.warning("amplitude.ai: skipping provider entry point %s: %s", point.value, exc)
            continue
        logger.debug("provider %s from %s (entry point %s)", entry.name, entry.module, point.value)
        entries.append(entry)
    return entries


def uninstrument() -> int:
    """Remove the import hook and every patch; returns how many methods were unpatched."""
    global _instrumented, _watching_registered
    with _lock:
        _instrumented = _watching_registered = False
        _hook.uninstall()
    if "amplitude.ai._patching" not in sys.modules:
        return 0
    from ._patching import unpatch_all

    return unpatch_all()


def deliver_before_shutdown(client: Any) -> None:
    """Have events for `client` handed over before it shuts down at interpreter exit."""
    from ._dispatch import dispatcher

    dispatcher.run_exit_hook_before(client)


def _sdk_version(sdk: Any, entry: Entry) -> str:
    version = getattr(sdk, "__version__", None)
    if isinstance(version, str):
        return version
    try:
        from importlib.metadata import version as dist_version

        return dist_version(entry.distribution)
    except Exception:
        return "unknown"


def _load_provider(entry: Entry, sdk: Any) -> None:
    if entry.name in _disabled or (_only is not None and entry.name not in _only):
        logger.debug("%s: disabled by configuration", entry.name)
        return
    version = _sdk_version(sdk, entry)
    if not in_range(version, entry.handles):
        logger.debug("%s %s: not for %s", entry.distribution, version, entry.module)
        return
    if not in_range(version, entry.supported):
        logger.warning(
            "amplitude.ai: %s %s is outside the supported range %s; tracking what is still found.",
            entry.distribution,
            version,
            entry.supported,
        )
    provider: Provider = importlib.import_module(entry.module).PROVIDER
    by_module: dict[str, list[Method]] = {}
    for method in provider.methods:
        by_module.setdefault(method.module, []).append(method)
    finder = _hook.install()
    for module_name, methods in by_module.items():
        finder.watch(module_name, functools.partial(_patch_module, provider, version, tuple(methods)))


def _patch_module(provider: Provider, version: str, methods: tuple[Method, ...], module: Any) -> None:
    from ._patching import patch

    done: list[str] = []
    for method in methods:
        try:
            # Not getattr(): a package's lazy __getattr__ would start an import from
            # inside this import hook. Classes not defined here get their own watch.
            cls = vars(module).get(method.cls)
            if isinstance(cls, type) and patch(provider, method, cls) and method.api not in done:
                done.append(method.api)
        except Exception as exc:
            report_failure(f"patching {method.module}.{method.cls}.{method.name}", exc)
    if done:
        logger.info("patched %s %s: %s", provider.name, version, ", ".join(done))
