"""The package logger, and a way to report our own failures without flooding logs."""

from __future__ import annotations

import logging

logger = logging.getLogger("amplitude.ai")

_reported: set[str] = set()


def report_failure(where: str, exc: BaseException) -> None:
    """Log a failure inside tracking: once at WARNING per place, then at DEBUG.

    Tracking runs on every LLM call, so a persistent bug would otherwise write one
    warning per call into the user's logs.
    """
    if where in _reported:
        logger.debug("amplitude.ai: %s failed again: %r", where, exc, exc_info=exc)
        return
    _reported.add(where)
    logger.warning(
        "amplitude.ai: %s failed (%s: %s); the LLM call itself is unaffected. "
        "Further failures here are logged at DEBUG.",
        where,
        type(exc).__name__,
        exc,
        exc_info=exc,
    )
