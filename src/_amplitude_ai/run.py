"""`amplitude-ai-run`: run any command with LLM calls tracked, no code changes.

    amplitude-ai-run [options] [--] COMMAND [ARGS...]

Sets the `AMPLITUDE_AI_*` variables from the options, makes sure Python processes
started by COMMAND load the bootstrap even where the environment's `.pth` file is not
processed (through a `sitecustomize` on PYTHONPATH that chains to any existing one),
then replaces itself with COMMAND (same PID, so signals and the exit status pass
through). Light on purpose: imports no provider SDK and not the Amplitude client.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Sequence

SITE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_site")

# option -> variable; flags set "1".
_VALUE_OPTIONS = {
    "api_key": "AMPLITUDE_AI_API_KEY",
    "server_url": "AMPLITUDE_AI_SERVER_URL",
    "server_zone": "AMPLITUDE_AI_SERVER_ZONE",
    "user_id": "AMPLITUDE_AI_USER_ID",
    "device_id": "AMPLITUDE_AI_DEVICE_ID",
    "providers": "AMPLITUDE_AI_PROVIDERS",
    "disabled_providers": "AMPLITUDE_AI_DISABLED_PROVIDERS",
    "flush_interval_ms": "AMPLITUDE_AI_FLUSH_INTERVAL_MS",
    "flush_queue_size": "AMPLITUDE_AI_FLUSH_QUEUE_SIZE",
    "shutdown_timeout_ms": "AMPLITUDE_AI_SHUTDOWN_TIMEOUT_MS",
}
_FLAG_OPTIONS = {"dry_run": "AMPLITUDE_AI_DRY_RUN", "debug": "AMPLITUDE_AI_DEBUG"}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="amplitude-ai-run",
        description="Run COMMAND with its LLM calls tracked as Amplitude events. Options "
        "override the AMPLITUDE_AI_* environment variables of the same name.",
        epilog="examples: amplitude-ai-run python app.py | amplitude-ai-run --dry-run -- python -m pkg "
        "| amplitude-ai-run uvicorn app:api",
    )
    for option, variable in _VALUE_OPTIONS.items():
        flag = "--" + option.replace("_", "-")
        parser.add_argument(flag, dest=option, metavar="VALUE", help=f"sets {variable}")
    parser.add_argument(
        "--dry-run", action="store_true", help="print events to stderr, send nothing (no key needed)"
    )
    parser.add_argument("--debug", action="store_true", help="log what is patched and every event")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command to run, and its arguments")
    return parser


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("amplitude-llm-tracking")
    except Exception:
        return "unknown"


def environment(options: argparse.Namespace, base: dict[str, str]) -> dict[str, str]:
    """The child's environment: `base` plus the options and the sitecustomize path."""
    env = dict(base)
    for option, variable in _VALUE_OPTIONS.items():
        value = getattr(options, option)
        if value is not None:
            env[variable] = value
    for option, variable in _FLAG_OPTIONS.items():
        if getattr(options, option):
            env[variable] = "1"
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != SITE_DIR]
    env["PYTHONPATH"] = os.pathsep.join([SITE_DIR, *paths])
    return env


def main(argv: Sequence[str] | None = None) -> int:
    options = _parser().parse_args(argv)
    command = list(options.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        _parser().print_usage(sys.stderr)
        sys.stderr.write("amplitude-ai-run: error: no command given\n")
        return 2
    env = environment(options, dict(os.environ))
    program = command[0]
    resolved = program if os.sep in program else shutil.which(program, path=env.get("PATH"))
    if resolved is None or not os.path.exists(resolved):
        sys.stderr.write(f"amplitude-ai-run: {program}: command not found\n")
        return 127
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(resolved, command, env)
    except OSError as exc:
        sys.stderr.write(f"amplitude-ai-run: {program}: {exc.strerror}\n")
        return 126
    return 0  # not reached: execve does not return


if __name__ == "__main__":
    sys.exit(main())
