"""An explicit start-up hook for amplitude-llm-tracking, for environments that prefer a
`sitecustomize` to the `.pth` file the package installs.

Copy this file to a directory on the interpreter's path (for example site-packages, or
a directory listed in PYTHONPATH). It reads the same AMPLITUDE_AI_* variables as the
`.pth` bootstrap and calls the public API; with no AMPLITUDE_AI_API_KEY (and no
AMPLITUDE_AI_DRY_RUN) it does nothing and imports nothing. It never raises: a problem
is one line on stderr and the program runs untracked.
"""

import os
import sys


def _start_amplitude_ai() -> None:
    if not (os.environ.get("AMPLITUDE_AI_API_KEY") or os.environ.get("AMPLITUDE_AI_DRY_RUN")):
        return
    try:
        import amplitude.ai

        # The keyword arguments are the variables' names in lower case; configure()
        # validates them and raises ValueError naming a bad one.
        names = (
            "api_key", "server_url", "server_zone", "user_id", "device_id", "enabled", "providers",
            "disabled_providers", "dry_run", "debug", "flush_interval_ms", "flush_queue_size",
            "shutdown_timeout_ms",
        )  # fmt: skip
        settings = {name: os.environ.get("AMPLITUDE_AI_" + name.upper()) for name in names}
        amplitude.ai.configure(**{name: value for name, value in settings.items() if value is not None})
    except Exception as exc:
        sys.stderr.write(f"amplitude-ai: not tracking: {exc}\n")


_start_amplitude_ai()
