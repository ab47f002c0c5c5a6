"""The `stress` command as a learner runs it: real processes, real signals."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

MIB = 1024 * 1024


def _run(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kubelab_stress", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _gone(pid: int) -> bool:
    """True once ``pid`` no longer exists (or is only a zombie nobody has reaped yet)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in {"Z", "X"}


def _wait_gone(pids: list[int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not all(_gone(p) for p in pids):
        assert time.monotonic() < deadline, f"worker processes still alive: {pids}"
        time.sleep(0.05)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["memory", "--bytes", "lots"], "invalid size 'lots'"),
        (["memory", "--bytes", "10M", "--step", "0"], "invalid size '0'"),
        (["memory"], "--bytes"),
        (["cpu", "--workers", "two"], "must be a whole number"),
        (["cpu", "--seconds", "-1"], "must be a number of seconds"),
        (["disk"], "invalid choice"),
        ([], "required"),
    ],
)
def test_stress_bad_input_is_one_clear_line(args: list[str], fragment: str) -> None:
    result = _run(*args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert fragment in lines[0]
    assert "--help" in lines[0]
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_stress_cpu_runs_for_the_given_seconds(run_stress) -> None:
    proc = run_stress("cpu", "--workers", "2", "--seconds", "1")
    start = proc.wait_for_event("start", timeout=15)
    assert start["workers"] == 2
    assert len(start["worker_pids"]) == 2
    assert proc.finish(timeout=15) == 0
    assert proc.events[-1]["event"] == "stop"
    assert proc.events[-1]["reason"] == "time is up"
    _wait_gone(start["worker_pids"], timeout=5)


def test_stress_cpu_workers_really_burn_cpu(run_stress) -> None:
    proc = run_stress("cpu", "--workers", "1")
    start = proc.wait_for_event("start", timeout=15)
    worker = start["worker_pids"][0]
    clock = 100  # USER_HZ on Linux

    def cpu_seconds() -> float:
        fields = Path(f"/proc/{worker}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / clock  # utime + stime

    deadline = time.monotonic() + 20
    while cpu_seconds() < 0.5:  # a sleeping worker would never get here
        assert time.monotonic() < deadline, "the worker is not using CPU"
        time.sleep(0.05)
    proc.popen.send_signal(signal.SIGTERM)
    assert proc.finish(timeout=10) == 0


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_stress_cpu_stops_promptly_on_signal(run_stress, signum: signal.Signals) -> None:
    proc = run_stress("cpu", "--workers", "2")
    start = proc.wait_for_event("start", timeout=15)
    proc.popen.send_signal(signum)
    assert proc.finish(timeout=5) == 0
    assert proc.events[-1]["reason"] == signum.name
    _wait_gone(start["worker_pids"], timeout=5)


def test_stress_cpu_workers_die_with_a_killed_parent(run_stress) -> None:
    proc = run_stress("cpu", "--workers", "2")
    start = proc.wait_for_event("start", timeout=15)
    proc.popen.kill()  # no chance to clean up: the kernel must stop the workers
    proc.popen.wait(timeout=5)
    _wait_gone(start["worker_pids"], timeout=5)


def test_stress_memory_reports_progress_and_exits(run_stress) -> None:
    proc = run_stress("memory", "--bytes", "25M", "--step", "10M")
    assert proc.finish(timeout=30) == 0
    progress = [e["allocated_bytes"] for e in proc.events if e["event"] == "progress"]
    assert progress == [10 * MIB, 20 * MIB, 25 * MIB]
    assert proc.events[-1]["event"] == "done"


def test_stress_memory_hold_really_uses_the_memory(run_stress) -> None:
    proc = run_stress("memory", "--bytes", "64M", "--hold")
    proc.wait_for_event("holding", timeout=30)
    status = Path(f"/proc/{proc.pid}/status").read_text()
    rss_line = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
    rss_kib = int(rss_line.split()[1])
    # Touched pages are resident; an untouched allocation would leave RSS near the ~10 MiB
    # of the interpreter itself.
    assert rss_kib * 1024 >= 64 * MIB
    assert proc.popen.poll() is None, "--hold must keep running"
    proc.popen.send_signal(signal.SIGTERM)
    assert proc.finish(timeout=5) == 0
    assert proc.events[-1]["event"] == "stop"
