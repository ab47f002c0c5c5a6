"""Ctrl-C, SIGTERM and SIGHUP during a run: the first one stops the step and lets the lab's
cleanup run; a second one skips the cleanup. Either way the caller exits 128 + the signal."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(BaseException):
    """Raised in the main thread when a stop signal arrives."""

    def __init__(self, signum: int, again: bool) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.again = again  # a second signal: skip the cleanup

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


@contextmanager
def stop_signals() -> Iterator[None]:
    """Turn stop signals into `Interrupted` inside the block; restore the handlers after."""
    received: list[int] = []

    def handler(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)
        raise Interrupted(signum, again=len(received) > 1)

    previous = {s: signal.signal(s, handler) for s in SIGNALS}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
