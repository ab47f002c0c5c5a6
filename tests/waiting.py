"""Waiting in end-to-end tests: poll a condition with a deadline (never a fixed sleep)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def poll(what: str, fn: Callable[[], Any], timeout: float = 60, interval: float = 0.5) -> Any:
    """fn() until it returns something truthy (returned); AssertionError naming `what` and the
    last value after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}")
