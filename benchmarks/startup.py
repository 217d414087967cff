"""Import cost of `amplitude.ai` on top of `amplitude`, in fresh interpreters.

Each run starts a new interpreter; the two imports are timed inside it with
perf_counter (so interpreter start-up noise stays out). Medians over runs.

    python benchmarks/startup.py [--runs 40]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from typing import Any

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args()
    # Installed packages run from compiled bytecode; make sure it exists and is used.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}

    def probe() -> dict[str, Any]:
        command = [sys.executable, "-c", PROBE]
        done = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
        result: dict[str, Any] = json.loads(done.stdout)
        return result

    probe()
    runs = [probe() for _ in range(args.runs)]
    base = statistics.median(r["amplitude"] for r in runs) * 1e3
    ours = statistics.median(r["amplitude.ai"] for r in runs) * 1e3
    print(f"python {sys.version.split()[0]}, {args.runs} fresh interpreters, medians")
    print(f"import amplitude                 {base:7.2f} ms  (amplitude-analytics itself)")
    print(f"import amplitude.ai, on top      {ours:7.2f} ms")
    print(f"loaded by it (should be none):   {runs[0]['heavy'] or 'none'}")


if __name__ == "__main__":
    main()
