"""Built-in provider integrations, and the one place their SDK versions are declared.

A provider module is imported only once its SDK has been imported; it exposes a
module-level ``PROVIDER`` (`amplitude.ai._provider.Provider`). Several modules may
serve one SDK (e.g. its pre-1.0 and current APIs): each loads only for the versions
it `handles`. Third-party packages register more `Entry`s under `ENTRY_POINT_GROUP`
(see `amplitude.ai.providers`).
"""

from __future__ import annotations

from typing import NamedTuple

from _amplitude_ai.settings import ENTRY_POINT_GROUP

__all__ = ["BUILTIN", "ENTRY_POINT_GROUP", "Entry"]


class Entry(NamedTuple):
    """Where a provider module is and when to load it."""

    name: str
    """Provider name, as in AMPLITUDE_AI_PROVIDERS (several entries may share one)."""
    sdk: str
    """Top-level module whose import loads the provider module."""
    distribution: str
    """The SDK's distribution, for its version when the module has no ``__version__``."""
    module: str
    """Our provider module."""
    handles: str = ""
    """Versions this module is written for; others are left to another module. Empty:
    any version, even an unknown one."""
    supported: str = ""
    """Versions CI tests (the README's table); outside them one warning is logged and
    whatever methods are still found are patched. Empty: no warning."""


BUILTIN: tuple[Entry, ...] = (
    Entry(
        name="openai",
        sdk="openai",
        distribution="openai",
        module="amplitude.ai._providers.openai",
        handles=">=1",
        supported=">=1.0,<4",
    ),
    Entry(
        name="openai",
        sdk="openai",
        distribution="openai",
        module="amplitude.ai._providers.openai_legacy",
        handles="<1",
        supported=">=0.27,<1",
    ),
    Entry(
        name="anthropic",
        sdk="anthropic",
        distribution="anthropic",
        module="amplitude.ai._providers.anthropic",
        handles=">=0.8",
        supported=">=0.16,<3",
    ),
    Entry(
        name="gemini",
        sdk="google.genai",
        distribution="google-genai",
        module="amplitude.ai._providers.gemini",
        handles=">=1.0",
        supported=">=1.0,<4",
    ),
    Entry(
        name="cohere",
        sdk="cohere",
        distribution="cohere",
        module="amplitude.ai._providers.cohere",
        handles=">=5",
        supported=">=5.16,<8",
    ),
    Entry(
        name="mistral",
        sdk="mistralai",
        distribution="mistralai",
        module="amplitude.ai._providers.mistral",
        handles=">=1",
        supported=">=1.2,<4",
    ),
)
