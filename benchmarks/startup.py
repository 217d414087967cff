"""Start-up cost: `import amplitude.ai`, and the `.pth` bootstrap in every interpreter.

1. `import amplitude.ai` on top of `import amplitude`, timed inside fresh interpreters
   of this environment.
2. `python -c pass` in a scratch venv without our files, with them (`amplitude_ai.pth`
   and the stdlib-only `_amplitude_ai` package) but no activation variable, and with
   `AMPLITUDE_AI_API_KEY` set but no LLM SDK imported. Runs are interleaved; medians.

    python benchmarks/startup.py [--runs 200]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import json, sys, time
t0 = time.perf_counter()
import amplitude
t1 = time.perf_counter()
import amplitude.ai
t2 = time.perf_counter()
heavy = sorted(m for m in ("openai", "wrapt", "amplitude.ai._dispatch", "dataclasses") if m in sys.modules)
print(json.dumps({"amplitude": t1 - t0, "amplitude.ai": t2 - t1, "heavy": heavy}))
"""


def _env(**extra: str) -> dict[str, str]:
    # Installed packages run from compiled bytecode; let it be written and used.
    env = {
        k: v
        for k, v in os.environ.items()
        if k != "PYTHONDONTWRITEBYTECODE" and not k.startswith("AMPLITUDE_AI")
    }
    env.update(extra)
    return env


def import_cost(runs: int) -> None:
    def probe() -> dict[str, Any]:
        command = [sys.executable, "-c", PROBE]
        done = subprocess.run(command, capture_output=True, text=True, check=True, env=_env())
        result: dict[str, Any] = json.loads(done.stdout)
        return result

    probe()
    results = [probe() for _ in range(runs)]
    base = statistics.median(r["amplitude"] for r in results) * 1e3
    ours = statistics.median(r["amplitude.ai"] for r in results) * 1e3
    print(f"import amplitude                     {base:8.2f} ms  (amplitude-analytics itself)")
    heavy = results[0]["heavy"] or "nothing heavy"
    print(f"import amplitude.ai, on top          {ours:8.2f} ms  (loads: {heavy})")


def pth_cost(runs: int) -> None:
    with tempfile.TemporaryDirectory(prefix="amplitude-ai-startup-") as scratch:
        bare, ours = Path(scratch, "bare"), Path(scratch, "ours")
        for path in (bare, ours):
            venv.EnvBuilder(with_pip=False).create(path)
        (site,) = ours.glob("lib/python*/site-packages")
        shutil.copy(ROOT / "src" / "amplitude_ai.pth", site)
        shutil.copytree(ROOT / "src" / "_amplitude_ai", site / "_amplitude_ai")
        cases = {
            "without the package": (bare / "bin" / "python", _env()),
            "with it, not activated": (ours / "bin" / "python", _env()),
            "with it, key set, no LLM SDK": (ours / "bin" / "python", _env(AMPLITUDE_AI_API_KEY="k")),
        }
        timings: dict[str, list[float]] = {name: [] for name in cases}
        for python, env in cases.values():  # warm up: write bytecode
            subprocess.run([python, "-c", "pass"], env=env, check=True)
        for _ in range(runs):
            for name, (python, env) in cases.items():
                start = time.perf_counter()
                subprocess.run([python, "-c", "pass"], env=env, check=True)
                timings[name].append(time.perf_counter() - start)
    base = statistics.median(timings["without the package"])
    for name, values in timings.items():
        median = statistics.median(values)
        print(f"python -c pass, {name:28}{median * 1e3:8.2f} ms  (x{median / base:.3f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, medians over {args.runs} fresh interpreters each")
    import_cost(max(20, args.runs // 5))
    pth_cost(args.runs)


if __name__ == "__main__":
    main()
