"""Built-in provider integrations, and the one place their SDK versions are declared.

A provider module is imported only once its SDK has been imported; it exposes a
module-level ``PROVIDER`` (`amplitude.ai._provider.Provider`). Several modules may
serve one SDK (e.g. its pre-1.0 and current APIs): each loads only for the versions
it `handles`.
"""

from __future__ import annotations

from typing import NamedTuple


class Entry(NamedTuple):
    sdk: str
    """Top-level module whose import loads the provider module."""
    distribution: str
    """The SDK's distribution, for its version when the module has no ``__version__``."""
    module: str
    """Our provider module."""
    handles: str
    """Versions this module is written for; others are left to another module."""
    supported: str
    """Versions CI tests (the README's table); outside them one warning is logged and
    whatever methods are still found are patched."""


BUILTIN: tuple[Entry, ...] = (
    Entry("openai", "openai", "amplitude.ai._providers.openai", handles=">=1", supported=">=1.0,<4"),
)
