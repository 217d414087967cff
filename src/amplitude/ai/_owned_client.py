"""The Amplitude client the package makes from settings: built when it is first used."""

from __future__ import annotations

import threading
from typing import Any

from amplitude.client import Amplitude
from amplitude.config import Config


class OwnedAmplitude(Amplitude):  # type: ignore[misc]  # amplitude-analytics is untyped
    """An `amplitude.Amplitude` whose construction waits for its first use: its first
    event (on the dispatch thread), or any attribute read of it.

    Tracking from settings starts when an LLM SDK is imported. A gevent app served
    preloaded (`gunicorn --preload -k gevent`) imports it before gevent patches
    `threading`: a client built then keeps locks and an upload pool's queue of real
    threads, which the greenlets that replace its threads block on (at exit, for good).
    Built at its first event, the client is made in the threading the app runs with.

    Its own exit hook is not registered: the package shuts it down from its exit hook,
    once the last events reached it (`_autostart`), also when it is first built at exit.
    """

    def __init__(self, api_key: str | None, configuration: Config) -> None:
        self._owned_args: tuple[str | None, Config] | None = (api_key, configuration)
        # Reentrant: `Amplitude.__init__` runs under it and may read what it has not set yet.
        self._owned_lock = threading.RLock()

    @property
    def built(self) -> bool:
        return self.__dict__.get("_owned_args") is None

    def __getattr__(self, name: str) -> Any:
        # Only reached for what the instance does not have: all of Amplitude's attributes
        # until it is built. Its methods read them, so calling any of them builds it.
        lock = self.__dict__.get("_owned_lock")
        if lock is None:
            raise AttributeError(name)
        with lock:
            args = self.__dict__.get("_owned_args")
            if args is not None:
                self._owned_args = None
                Amplitude.__init__(self, *args)
        return object.__getattribute__(self, name)

    def _register_on_exit(self) -> None:
        """Not registered (see the class): `_autostart` shuts this client down."""
