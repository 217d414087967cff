"""Zero-code start of amplitude-llm-tracking: the part that runs at interpreter start-up.

`amplitude_ai.pth` (or `amplitude_ai.start` on Python 3.15+, PEP 829, or the launcher's
`sitecustomize`) calls `activate()` in every interpreter of the environment. With no
`AMPLITUDE_AI_API_KEY` / `AMPLITUDE_AI_DRY_RUN` it returns after two environment
lookups. Otherwise it validates the `AMPLITUDE_AI_*` settings and leaves one small
import finder in place; `amplitude.ai` itself, the Amplitude client and its threads
are loaded only when a provider SDK is first imported. Standard library only, and
never raises: a configuration mistake is one stderr line and an untracked program.
"""

from __future__ import annotations

import os
import sys

ACTIVATION_VARIABLES = ("AMPLITUDE_AI_API_KEY", "AMPLITUDE_AI_DRY_RUN")

_activated = False


def activate() -> None:
    """Start zero-code tracking if the environment asks for it. Idempotent."""
    global _activated
    if _activated:
        return
    _activated = True
    if sys.flags.isolated or not any(os.environ.get(name) for name in ACTIVATION_VARIABLES):
        return
    try:
        from ._startup import start

        start(os.environ)
    except Exception as exc:  # start-up must never fail because of us
        sys.stderr.write(f"amplitude-ai: not tracking: {type(exc).__name__}: {exc}\n")
