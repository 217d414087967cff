"""Who an event is attributed to when the caller did not say."""

from __future__ import annotations

import functools
import hashlib
import socket

# Amplitude rejects events whose user_id and device_id are both shorter than this; the
# settings parser (AMPLITUDE_AI_USER_ID / _DEVICE_ID) applies the same minimum.
from _amplitude_ai.settings import MIN_ID_LENGTH


@functools.lru_cache(maxsize=1)
def default_device_id() -> str:
    """``llm-host-`` + the first 16 hex digits of SHA-256 of the host name.

    Stable for a host, and the host name itself never leaves the process.
    """
    digest = hashlib.sha256(socket.gethostname().encode("utf-8", "replace")).hexdigest()
    return f"llm-host-{digest[:16]}"


def valid_id(value: object) -> bool:
    return isinstance(value, str) and len(value.strip()) >= MIN_ID_LENGTH
