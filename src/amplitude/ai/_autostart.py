"""Tracking from settings (environment or `configure()`): the client we create and own."""

from __future__ import annotations

import logging
import sys
import threading
from typing import Any

from _amplitude_ai.settings import Settings

from . import _hook, _instrument
from ._log import logger

_owned: list[Any] = []
"""The clients made from settings (`configure()` may replace one): ours to shut down."""


def apply(settings: Settings) -> None:
    """Process-wide options that also apply to `track(client)` users."""
    from ._dispatch import dispatcher

    if settings.debug:
        logger.setLevel(logging.DEBUG)
        if not logger.handlers and not logging.getLogger().handlers:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
            logger.addHandler(handler)
    if settings.providers is not None or settings.disabled_providers is not None:
        _instrument.select_providers(settings.providers, settings.disabled_providers)
    if settings.shutdown_timeout_ms is not None:
        dispatcher.shutdown_timeout = settings.shutdown_timeout_ms / 1000.0


def make_client(settings: Settings) -> Any:
    if settings.dry_run:
        from ._sinks import DryRunClient

        return DryRunClient()
    from amplitude.config import Config

    from ._owned_client import OwnedAmplitude

    config: dict[str, Any] = {}
    if settings.server_url:
        config["server_url"] = settings.server_url
    if settings.server_zone:
        config["server_zone"] = settings.server_zone
    if settings.flush_interval_ms:
        config["flush_interval_millis"] = settings.flush_interval_ms
    if settings.flush_queue_size:
        config["flush_queue_size"] = settings.flush_queue_size
    return OwnedAmplitude(settings.api_key, Config(**config))


def start_from_settings(settings: Settings) -> Any:
    """Create the client, start tracking with it; returns the import hook (for the bootstrap)."""
    import amplitude.ai

    apply(settings)
    if settings.enabled is False:
        amplitude.ai.untrack()
        return _hook.install()
    client = make_client(settings)
    amplitude.ai.track(client, user_id=settings.user_id, device_id=settings.device_id)
    _own(client)
    logger.debug("tracking started from settings %r", settings)
    return _hook.install()


def _own(client: Any) -> None:
    from ._dispatch import dispatcher

    if not _owned:
        dispatcher.after_exit_drain.append(_shut_down_owned)
    _owned.append(client)


def _shut_down_owned(seconds_left: float) -> None:
    """Shut our own clients down at exit, waiting at most the shutdown timeout's remainder.

    They register no exit hook of their own (`OwnedAmplitude`). amplitude-analytics waits
    on any upload in flight for its full connection timeout (10 s); the last uploads start
    here, with that timeout cut to what is left of ours. A client the user made and passed
    to `track()` is left to its own exit hook.
    """
    from ._amplitude_compat import built

    clients = [client for client in _owned if hasattr(client, "shutdown") and built(client)]
    if not clients:
        return
    try:
        from amplitude import constants  # type: ignore[attr-defined]

        constants.CONNECTION_TIMEOUT = max(0.1, min(constants.CONNECTION_TIMEOUT, seconds_left))
    except Exception:
        pass

    def shut_down() -> None:
        for client in clients:
            client.shutdown()

    closer = threading.Thread(target=shut_down, name="amplitude-ai-shutdown", daemon=True)
    try:
        closer.start()
    except RuntimeError:
        # No thread can start at this exit: the clients upload on this thread (see
        # `_amplitude_compat.upload_without_threads`), each batch within the cut timeout.
        shut_down()
        return
    closer.join(seconds_left)
