"""`stress memory`: allocate and touch memory step by step, reporting progress."""

from __future__ import annotations

import os

from kubelab_stress.runtime import StopSignal, log
from kubelab_stress.sizes import format_size


def _touch(size: int, page: int) -> bytearray:
    """A ``size``-byte buffer with one byte written in every page, so the kernel really
    backs it with RAM (a fresh allocation is only promised, not used, until written)."""
    chunk = bytearray(size)
    chunk[::page] = b"\x01" * len(range(0, size, page))
    return chunk


def run_memory(n_bytes: int, step: int, hold: bool) -> int:
    stop = StopSignal()
    stop.install()
    page = os.sysconf("SC_PAGESIZE")
    log(
        "start",
        f"stress memory: allocating {format_size(n_bytes)} in steps of {format_size(step)}",
        mode="memory",
        target_bytes=n_bytes,
        step_bytes=step,
        hold=hold,
        pid=os.getpid(),
    )
    chunks: list[bytearray] = []
    allocated = 0
    while allocated < n_bytes and stop.received is None:
        size = min(step, n_bytes - allocated)
        chunks.append(_touch(size, page))
        allocated += size
        log(
            "progress",
            f"allocated {format_size(allocated)} of {format_size(n_bytes)}",
            allocated_bytes=allocated,
            target_bytes=n_bytes,
        )
    if stop.received is not None:
        log("stop", f"stress memory: stopped ({stop.name})", reason=stop.name)
        return 0
    if not hold:
        log("done", f"stress memory: touched {format_size(allocated)}, exiting")
        return 0
    log("holding", f"stress memory: holding {format_size(allocated)} until SIGTERM")
    stop.wait()
    log("stop", f"stress memory: released {format_size(allocated)} ({stop.name})")
    del chunks
    return 0
