"""What a provider module declares: the methods to patch and how to read their calls.

The core (import hook, patching, wrapping, event building, dispatch) only ever talks
to a provider through a `Provider`; it knows nothing about any SDK.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from ._call import Call


@dataclass(frozen=True)
class Method:
    """One SDK method to track: `module.cls.name`, reported as `api` / `operation`."""

    module: str
    cls: str
    name: str
    api: str
    operation: str
    is_async: bool = False


@dataclass(frozen=True)
class Provider:
    """A provider integration.

    `begin`, `on_result` run on the caller's path and must stay cheap: they only
    capture what cannot be read later (the request may be mutated by the caller
    after the call) and decide how the result is observed. `properties` and
    `secrets` run on the dispatch thread and may take their time.
    """

    name: str
    """Default `provider` property, e.g. ``openai``."""
    methods: tuple[Method, ...]
    begin: Callable[[Call, Any, dict[str, Any]], None]
    """Snapshot the request into ``call.request``; may rewrite ``kwargs`` in place."""
    on_result: Callable[[Call, Any], Any]
    """Return what the caller gets: the result itself, or a transparent proxy."""
    properties: Callable[[Call], dict[str, Any]]
    """Event properties read from the finished call (request, response, chunks, error)."""
    secrets: Callable[[Call], Iterable[str]]
    """Credentials visible to this call, scrubbed from every event string."""
    user_id: Callable[[Call], str | None] | None = None
    """An end-user id found in the request, used when the binding sets none."""
