"""Built-in provider integrations, by the SDK's top-level module that triggers them.

A provider module is imported only once its SDK has been imported; it exposes a
module-level ``PROVIDER`` (`amplitude.ai._provider.Provider`).
"""

from __future__ import annotations

BUILTIN: dict[str, str] = {
    "openai": "amplitude.ai._providers.openai",
}
