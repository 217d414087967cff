"""Connects the import hook to the provider modules and the patcher."""

from __future__ import annotations

import functools
import importlib
import sys
import threading
from typing import TYPE_CHECKING, Any

from . import _hook
from ._log import logger, report_failure
from ._providers import BUILTIN, Entry
from ._versions import in_range

if TYPE_CHECKING:
    from ._provider import Method, Provider

_lock = threading.Lock()
_instrumented = False
_allowed: frozenset[str] | None = None  # provider names; None: all


def allow_providers(names: tuple[str, ...]) -> None:
    """Limit which providers get patched from now on (AMPLITUDE_AI_PROVIDERS & co.)."""
    global _allowed
    _allowed = frozenset(names)


def instrument() -> None:
    """Install the import hook; patch provider SDKs now or when they are imported."""
    global _instrumented
    with _lock:
        if _instrumented:
            return
        _instrumented = True
        finder = _hook.install()
    for entry in BUILTIN:
        finder.watch(entry.sdk, functools.partial(_load_provider, entry))


def uninstrument() -> int:
    """Remove the import hook and every patch; returns how many methods were unpatched."""
    global _instrumented
    with _lock:
        _instrumented = False
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
    if _allowed is not None and entry.name not in _allowed:
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
