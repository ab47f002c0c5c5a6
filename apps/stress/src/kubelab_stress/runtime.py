"""Shared bits: one JSON log line per event, and stopping on SIGTERM/SIGINT."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from datetime import UTC, datetime
from types import FrameType
from typing import Any

_POLL_SECONDS = 0.05


def log(event: str, msg: str, **fields: Any) -> None:
    """Write one JSON line to stdout and flush it at once (kubectl logs shows it even if we die)."""
    record = {
        "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "event": event,
        "msg": msg,
        **fields,
    }
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()


class StopSignal:
    """Remembers the first SIGTERM/SIGINT. We run as PID 1 in a container, where a signal
    without a handler is ignored, so the handlers are what make `kubectl delete` quick."""

    def __init__(self) -> None:
        self.received: int | None = None

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.received is None:
            self.received = signum

    @property
    def name(self) -> str | None:
        return None if self.received is None else signal.Signals(self.received).name

    def wait(self, seconds: float | None = None) -> bool:
        """Sleep until a stop signal arrives (True) or ``seconds`` pass (False)."""
        deadline = None if seconds is None else time.monotonic() + seconds
        while self.received is None:
            if deadline is None:
                time.sleep(_POLL_SECONDS)
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(_POLL_SECONDS, left))
        return True


def die_with_parent(parent: int) -> None:
    """Ask Linux to SIGKILL this process when its parent dies (best effort), so no busy
    worker outlives a `stress` that was killed with SIGKILL. ``parent`` is the pid the parent
    had before forking: read here with getppid() it would already be 1 had the parent died
    first, and the worker would spin on as an orphan."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(0)
