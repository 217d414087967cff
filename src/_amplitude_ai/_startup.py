"""Validates the environment and waits for the first provider SDK import."""

from __future__ import annotations

import sys

from .settings import PROVIDER_SDKS, Settings, from_env

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any


def start(environ: Mapping[str, str]) -> None:
    settings, errors = from_env(environ)
    for error in errors:
        sys.stderr.write(f"amplitude-ai: {error}; LLM calls will not be tracked.\n")
    if errors or not settings.active:
        return
    enabled = settings.enabled_providers()
    triggers = {sdk for name in enabled if name in PROVIDER_SDKS for sdk in PROVIDER_SDKS[name]}
    # A third-party provider named in AMPLITUDE_AI_PROVIDERS: which import to wait for is
    # only known from its registration, so tracking starts now. Started late (e.g. from
    # a sitecustomize after an SDK was imported): now too.
    if any(name not in PROVIDER_SDKS for name in enabled) or any(name in sys.modules for name in triggers):
        _start_tracking(settings)
        return
    if not triggers:
        return
    sys.meta_path.insert(0, _FirstSDKImport(settings, triggers))


class _FirstSDKImport:
    """Starts tracking when the first provider SDK is imported, then steps aside.

    Until then the process has paid for this module only: no `amplitude`, no client,
    no thread. Answers None for everything but the SDKs' top-level names.
    """

    def __init__(self, settings: Settings, triggers: set[str]) -> None:
        self._settings = settings
        self._triggers = frozenset(triggers)

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname not in self._triggers:
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        finder = _start_tracking(self._settings)
        # The finder amplitude.ai just installed was not in the list this import is
        # walking: ask it directly, so the SDK loads patched.
        return finder.find_spec(fullname, path, target) if finder is not None else None


def _start_tracking(settings: Settings) -> Any:
    try:
        import amplitude.ai
        from amplitude.ai._autostart import start_from_settings
        from amplitude.ai._hook import install

        if amplitude.ai.is_tracking():
            return install()  # tracking was set up in code (e.g. a sitecustomize): it wins
        return start_from_settings(settings)
    except Exception as exc:
        sys.stderr.write(f"amplitude-ai: not tracking: {type(exc).__name__}: {exc}\n")
        return None
