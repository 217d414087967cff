"""Build hook: make `pip install -e .` work for a sub-package of someone else's package.

`amplitude` is a regular package owned by amplitude-analytics, so the usual editable
install (a path entry for src/) cannot add `amplitude.ai` to it: the import system only
looks for `amplitude.ai` inside `amplitude.__path__`. Editable wheels therefore also get
a tiny module, loaded from a `.pth` file, whose finder answers for exactly
`amplitude.ai` from this checkout; its submodules then load through its `__path__`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

_FINDER = '''\
"""Editable install of amplitude-llm-tracking: maps `amplitude.ai` to {package!r}."""
import sys


class _AmplitudeAIEditableFinder:
    _package = {package!r}

    @classmethod
    def find_spec(cls, fullname, path=None, target=None):
        if fullname != "amplitude.ai":
            return None
        import importlib.util
        import os

        return importlib.util.spec_from_file_location(
            fullname,
            os.path.join(cls._package, "__init__.py"),
            submodule_search_locations=[cls._package],
        )


if not any(getattr(f, "__name__", "") == "_AmplitudeAIEditableFinder" for f in sys.meta_path):
    sys.meta_path.append(_AmplitudeAIEditableFinder)
'''


class EditableSubpackageHook(BuildHookInterface):  # type: ignore[misc]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if version != "editable":
            return
        package = os.path.join(self.root, "src", "amplitude", "ai")
        out = self._out = tempfile.mkdtemp(prefix="amplitude-ai-editable-")
        module = os.path.join(out, "_amplitude_ai_editable.py")
        with open(module, "w", encoding="utf-8") as f:
            f.write(_FINDER.format(package=package))
        pth = os.path.join(out, "_amplitude_ai_editable.pth")
        with open(pth, "w", encoding="utf-8") as f:
            f.write("import _amplitude_ai_editable\n")
        build_data["force_include_editable"][module] = "_amplitude_ai_editable.py"
        build_data["force_include_editable"][pth] = "_amplitude_ai_editable.pth"
        # The zero-code bootstrap files, as a wheel installs them (the package they
        # import, _amplitude_ai, is found through the editable path entry for src/).
        for name in ("amplitude_ai.pth", "amplitude_ai.start"):
            build_data["force_include_editable"][os.path.join(self.root, "src", name)] = name

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        out = getattr(self, "_out", None)
        if out is not None:
            shutil.rmtree(out, ignore_errors=True)
