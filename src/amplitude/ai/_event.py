"""Turns a finished `Call` into the `llm_operation` event and hands it to its client.

Runs on the dispatch thread, never on the caller's path.
"""

from __future__ import annotations

import uuid
from typing import Any

from ._call import Call
from ._dispatch import dispatcher
from ._identity import default_device_id, valid_id
from ._log import logger, report_failure
from ._redact import scrub

EVENT_TYPE = "llm_operation"
MAX_ERROR_CHARS = 1000

_SCALARS = (str, int, float, bool)


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 3)


def core_properties(call: Call) -> dict[str, Any]:
    """What every provider's event has, read from the call's timing and outcome."""
    method = call.method
    props: dict[str, Any] = {
        "operation": method.operation,
        "api": method.api,
        "stream": call.stream,
    }
    if call.ended_at is not None:
        props["latency_ms"] = _ms(call.ended_at - call.started_at)
    if call.stream:
        props["stream_completed"] = call.completed
        if call.first_chunk_at is not None:
            props["time_to_first_token_ms"] = _ms(call.first_chunk_at - call.started_at)
    if call.error is not None:
        props["error_type"] = type(call.error).__name__
        props["error"] = str(call.error)[:MAX_ERROR_CHARS] or type(call.error).__name__
        # The convention of the HTTP-based SDKs (openai, anthropic, httpx ...). An error
        # that arrives inside a 200 response (an SSE `error` event) is no HTTP failure.
        status = getattr(call.error, "status_code", None)
        if isinstance(status, int) and not isinstance(status, bool) and status >= 400:
            props["http_status"] = status
    return props


def properties(call: Call) -> dict[str, Any]:
    """All event properties: the provider's, then the core's on top, nulls dropped.

    A provider may refine `provider` (e.g. ``azure_openai``); the core owns the rest.
    """
    try:
        props = call.provider.properties(call)
    except Exception as exc:
        # A broken extractor must not cost the event: send what the core knows.
        report_failure(f"reading a {call.provider.name} {call.method.api} call", exc)
        props = {}
    props.setdefault("provider", call.provider.name)
    if not call.binding.response_preview:
        props.pop("response_preview", None)
    props.update(core_properties(call))
    try:
        secrets = [s for s in call.provider.secrets(call) if isinstance(s, str)]
    except Exception as exc:
        report_failure(f"reading {call.provider.name} credentials", exc)
        secrets = []
    clean: dict[str, Any] = {}
    for key, value in props.items():
        if isinstance(value, str):
            clean[key] = scrub(value, secrets)
        elif isinstance(value, _SCALARS):
            clean[key] = value
    return clean


def identity(call: Call) -> dict[str, str]:
    binding = call.binding
    ids: dict[str, str] = {}
    user_id = binding.user_id
    if user_id is None and call.provider.user_id is not None:
        try:
            user_id = call.provider.user_id(call)
        except Exception as exc:
            report_failure("reading the request's user", exc)
    if valid_id(user_id):
        ids["user_id"] = str(user_id)
    ids["device_id"] = binding.device_id or default_device_id()
    return ids


def build(call: Call) -> Any:
    from amplitude.event import BaseEvent

    return BaseEvent(
        event_type=EVENT_TYPE,
        event_properties=properties(call),
        time=int(call.wall_time * 1000),
        insert_id=uuid.uuid4().hex,
        # amplitude-analytics reports failures only to callbacks and at INFO: count them.
        callback=_delivered,
        **identity(call),
    )


def _delivered(event: Any, code: int, message: str | None = None) -> None:
    # A plain function: amplitude-analytics deep-copies events, and the dispatcher
    # (holding locks) cannot be copied.
    dispatcher.delivered(event, code, message)


def send(call: Call) -> None:
    event = build(call)
    if logger.isEnabledFor(10):
        logger.debug("event %s %s", event.event_type, event.event_properties)
    call.binding.client.track(event)
