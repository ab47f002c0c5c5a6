"""`stress cpu`: N processes, each keeping one core at 100 %."""

from __future__ import annotations

import multiprocessing
import os
import signal

from kubelab_stress.runtime import StopSignal, die_with_parent, log

_STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


def _spin(parent: int) -> None:
    """Worker body: pure arithmetic in a loop, until the parent terminates us."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the parent, which stops us
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)  # blocked by run_cpu across fork
    die_with_parent(parent)
    x = 1
    while True:
        x = (x * 1103515245 + 12345) & 0xFFFFFFFF


def run_cpu(workers: int, seconds: float | None) -> int:
    stop = StopSignal()
    stop.install()
    ctx = multiprocessing.get_context("fork")
    procs = [
        ctx.Process(target=_spin, args=(os.getpid(),), name=f"stress-cpu-{i}", daemon=True)
        for i in range(workers)
    ]
    # A worker inherits the parent's handlers until _spin resets them; a SIGTERM landing in that
    # window would be swallowed and the worker would spin on. Keep the stop signals blocked
    # (pending, not lost) across the forks: each worker unblocks once its own handlers are set.
    signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    try:
        for proc in procs:
            proc.start()
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
    how_long = "until SIGTERM" if seconds is None else f"for {seconds:g}s"
    log(
        "start",
        f"stress cpu: {workers} busy worker(s) {how_long}, cpus visible: {os.cpu_count()}",
        mode="cpu",
        workers=workers,
        seconds=seconds,
        pid=os.getpid(),
        worker_pids=[proc.pid for proc in procs],
    )
    stop.wait(seconds)
    for proc in procs:
        proc.terminate()
    for proc in procs:
        proc.join(timeout=5)
        if proc.is_alive():
            proc.kill()
            proc.join()
    reason = stop.name or "time is up"
    log("stop", f"stress cpu: stopped ({reason})", mode="cpu", reason=reason)
    return 0
