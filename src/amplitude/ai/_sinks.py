"""Stand-ins for an Amplitude client."""

from __future__ import annotations

import json
import sys
import threading
from typing import Any


class DryRunClient:
    """Prints each event as one JSON line on stderr, in the shape the HTTP API receives;
    sends nothing and needs no API key (`AMPLITUDE_AI_DRY_RUN=1`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # one whole line per event, even from many threads

    def track(self, event: Any) -> None:
        line = json.dumps(event.get_event_body(), sort_keys=True, default=str)
        with self._lock:
            sys.stderr.write(line + "\n")
            sys.stderr.flush()

    def flush(self) -> None:
        pass

    def shutdown(self) -> None:
        pass
