"""Automatic tracking of LLM API calls as Amplitude ``llm_operation`` events.

Importing this package installs an import hook that patches supported provider SDKs
(OpenAI, Anthropic, Gemini, Cohere, Mistral, and those provider packages register; see
`amplitude.ai.providers`) as soon as they are imported, whether before or after this
package. The patches are inert until a client is made active::

    import amplitude
    import amplitude.ai

    client = amplitude.Amplitude("AMPLITUDE_API_KEY")
    amplitude.ai.track(client)          # every LLM call in the process is tracked

    with amplitude.ai.tracking(other):  # or: only in this thread / asyncio task
        ...

Tracking never raises into your code and never blocks your LLM calls: events are
built and handed to the Amplitude client on a background thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from . import _instrument, _state
from ._identity import valid_id
from ._manual import Operation, record
from ._version import __version__

if TYPE_CHECKING:
    from types import TracebackType

    from amplitude.client import Amplitude

operation = Operation
"""Measure an LLM call this package does not patch; see `Operation`."""

__all__ = [
    "Operation",
    "__version__",
    "configure",
    "flush",
    "get_active_client",
    "instrument",
    "is_tracking",
    "operation",
    "record",
    "stats",
    "track",
    "tracking",
    "uninstrument",
    "untrack",
]


def _binding(
    client: Amplitude, user_id: str | None, device_id: str | None, response_preview: bool
) -> _state.Binding:
    if client is None or not callable(getattr(client, "track", None)):
        raise TypeError(f"expected an amplitude.Amplitude client, got {type(client).__name__}")
    for name, value in (("user_id", user_id), ("device_id", device_id)):
        if value is not None and not valid_id(value):
            raise ValueError(f"{name} must be a string of at least 5 characters (Amplitude's minimum)")
    return _state.Binding(client, user_id, device_id, bool(response_preview))


def track(
    client: Amplitude,
    *,
    user_id: str | None = None,
    device_id: str | None = None,
    response_preview: bool = True,
) -> None:
    """Track LLM calls made anywhere in this process with `client`.

    Args:
        client: the ``amplitude.Amplitude`` client that events are sent with.
        user_id: the Amplitude ``user_id`` for every event. When unset, a request's
            OpenAI ``user`` (or ``safety_identifier``) value is used where present.
        device_id: the Amplitude ``device_id``. When unset, a stable per-host id
            (``llm-host-`` + 16 hex digits of the hashed host name) is used.
        response_preview: include the first 500 characters of generated text as
            ``response_preview``. Request content (prompts, messages) is never sent.

    Calling it again replaces the client and options. Threads and tasks inside a
    `tracking()` block keep their own client.
    """
    binding = _binding(client, user_id, device_id, response_preview)
    _instrument.instrument()
    _instrument.deliver_before_shutdown(client)
    _state.set_process(binding)


def untrack() -> None:
    """Stop process-wide tracking; later calls are not tracked (`tracking()` blocks still are).

    Calls already finished are still delivered. Patches stay installed but inert;
    see `uninstrument()` to remove them.
    """
    _state.set_process(None)


def is_tracking() -> bool:
    """Whether calls made here (this thread / asyncio task) are tracked."""
    return _state.active() is not None


def get_active_client() -> Amplitude | None:
    """The client that calls made here (this thread / asyncio task) are tracked with."""
    binding = _state.active()
    return None if binding is None else binding.client


class tracking:
    """Track calls with `client` inside a ``with`` block, for this thread or asyncio task only.

    What was active before is restored on exit, so blocks nest. Other threads and tasks
    are unaffected; those without a block of their own use the client from `track()`.
    Takes the same keyword options as `track()`.
    """

    def __init__(
        self,
        client: Amplitude,
        *,
        user_id: str | None = None,
        device_id: str | None = None,
        response_preview: bool = True,
    ) -> None:
        self._binding = _binding(client, user_id, device_id, response_preview)
        self._tokens: list[Any] = []

    def __enter__(self) -> Amplitude:
        _instrument.instrument()
        _instrument.deliver_before_shutdown(self._binding.client)
        self._tokens.append(_state.scoped_var().set(self._binding))
        return self._binding.client

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        _state.scoped_var().reset(self._tokens.pop())


def flush(timeout: float = 5.0) -> bool:
    """Hand every finished call's event to its Amplitude client, then flush the clients.

    Useful in short scripts, tests and serverless handlers; at interpreter exit this
    happens automatically. Returns False if `timeout` (seconds) passed first.
    """
    import sys

    if "amplitude.ai._dispatch" not in sys.modules:
        return True
    from ._amplitude_compat import built
    from ._dispatch import dispatcher

    drained = dispatcher.drain(timeout)
    for client in dispatcher.clients():
        if built(client):
            client.flush()
    return drained


def stats() -> dict[str, int]:
    """Counters about tracking itself, for health checks and metrics.

    * ``queued``: finished calls waiting for the dispatch thread to build their events.
    * ``dropped``: events not built or not handed over because a backlog was full (more
      than 10,000 calls queued, or an Amplitude client holding 10,000 unsent events, e.g.
      while its endpoint does not answer); the first drop is logged at WARNING.
    * ``failed``: events their Amplitude client reported as not accepted (HTTP errors,
      retries exhausted, quota); the first is logged at WARNING.
    """
    from ._dispatch import dispatcher

    return {"queued": dispatcher.queued(), "dropped": dispatcher.dropped, "failed": dispatcher.failed}


def configure(
    *,
    api_key: str | None = None,
    server_url: str | None = None,
    server_zone: str | None = None,
    user_id: str | None = None,
    device_id: str | None = None,
    enabled: bool | None = None,
    providers: Sequence[str] | None = None,
    disabled_providers: Sequence[str] | None = None,
    dry_run: bool | None = None,
    debug: bool | None = None,
    flush_interval_ms: int | None = None,
    flush_queue_size: int | None = None,
    shutdown_timeout_ms: int | None = None,
) -> Amplitude | None:
    """Configure tracking from code with the settings of the ``AMPLITUDE_AI_*`` variables.

    With `api_key` (or ``dry_run=True``) this creates the Amplitude client, starts
    tracking with it and returns it, exactly as setting ``AMPLITUDE_AI_API_KEY`` does;
    at exit its events are flushed within ``shutdown_timeout_ms`` (default 2000).
    Without one, it only applies the process-wide options (`providers`,
    `disabled_providers`, `debug`, `shutdown_timeout_ms`) for use with `track()`.
    ``enabled=False`` stops tracking. Each argument's meaning and accepted values are
    those of the variable of the same name (see the README); an unacceptable value
    raises ``ValueError`` naming it.
    """
    from _amplitude_ai.settings import from_kwargs

    from . import _autostart

    settings = from_kwargs(
        api_key=api_key,
        server_url=server_url,
        server_zone=server_zone,
        user_id=user_id,
        device_id=device_id,
        enabled=enabled,
        providers=providers,
        disabled_providers=disabled_providers,
        dry_run=dry_run,
        debug=debug,
        flush_interval_ms=flush_interval_ms,
        flush_queue_size=flush_queue_size,
        shutdown_timeout_ms=shutdown_timeout_ms,
    )
    if settings.active or settings.enabled is False:
        _autostart.start_from_settings(settings)
    else:
        _autostart.apply(settings)
    return get_active_client()


def instrument() -> None:
    """(Re)install the import hook and patches; importing the package already does this."""
    _instrument.instrument()


def uninstrument() -> None:
    """Remove the import hook and every patch of ours, leaving other instrumentation intact.

    Where ours is the outermost wrapper the SDK's original function object is restored;
    where another wrapper sits on top of ours, ours is switched off in place.
    """
    _instrument.uninstrument()


# Third-party providers' entry points are read when tracking starts, not on import.
_instrument.instrument(registered=False)
