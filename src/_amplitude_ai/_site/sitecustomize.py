"""Put on PYTHONPATH by `amplitude-ai-run`: starts tracking in Python processes whose
environment does not process the `.pth` bootstrap, then runs the `sitecustomize` this
one shadows, if there is one, as Python would have."""

from __future__ import annotations

import os
import sys


def _activate() -> None:
    try:
        import _amplitude_ai

        _amplitude_ai.activate()  # a no-op where the .pth file already did it
    except Exception:
        pass  # e.g. another environment's interpreter, without our package


def _chain() -> None:
    import importlib.machinery
    import importlib.util

    here = os.path.dirname(os.path.abspath(__file__))
    rest = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules["sitecustomize"] = module
    spec.loader.exec_module(module)  # its own errors surface as they would without us


_activate()
_chain()
