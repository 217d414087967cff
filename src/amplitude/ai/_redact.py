"""Scrubbing credentials out of strings that go into events."""

from __future__ import annotations

import re
from collections.abc import Iterable

REDACTED = "[REDACTED]"

# Credentials that show up in provider error messages and URLs even when we never
# read them from the client: OpenAI-style keys, bearer tokens, key=... query strings.
_PATTERNS = re.compile(
    r"(?:\bsk-[A-Za-z0-9_\-*]{6,})"
    r"|(?:\bBearer\s+[A-Za-z0-9._~+/\-=]+)"
    r"|(?:(?<=[?&;])(?:api[-_]?key|key|token|access_token|sig|signature)=[^&\s\"']+)",
    re.IGNORECASE,
)

_MIN_SECRET_LEN = 6


def scrub(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret and len(secret) >= _MIN_SECRET_LEN and secret in text:
            text = text.replace(secret, REDACTED)
    return _PATTERNS.sub(REDACTED, text)
