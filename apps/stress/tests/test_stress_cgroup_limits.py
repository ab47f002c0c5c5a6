"""`stress` under real kernel limits, the way a container runtime applies a Pod's limits:
a memory limit OOM-kills it, a CPU quota throttles it."""

from __future__ import annotations

import signal
import time
from pathlib import Path

MIB = 1024 * 1024


def _cgroup_of(pid: int) -> str:
    return Path(f"/proc/{pid}/cgroup").read_text()


def test_stress_memory_over_the_limit_is_oom_killed(stress_cgroup, run_stress) -> None:
    group = stress_cgroup(["memory"])
    group.limit_memory(100 * MIB)
    proc = run_stress("memory", "--bytes", "150M", "--hold", preexec_fn=group.join)
    returncode = proc.finish(timeout=60)
    progress = [e["allocated_bytes"] for e in proc.events if e["event"] == "progress"]
    print(  # the figures for the issue notes (pytest -s)
        f"\nmemory: rc={returncode} oom_kills={group.oom_kills()} "
        f"last progress={max(progress, default=0) / MIB:.0f}MiB of 150MiB, limit 100MiB"
    )
    assert returncode == -signal.SIGKILL, f"expected an OOM kill, got rc={returncode}"
    assert group.oom_kills() >= 1
    assert progress, "progress lines must show how far it got before the kill"
    assert max(progress) < 100 * MIB
    assert not any(e["event"] == "holding" for e in proc.events)


def test_stress_memory_under_the_limit_survives(stress_cgroup, run_stress) -> None:
    group = stress_cgroup(["memory"])
    group.limit_memory(100 * MIB)
    proc = run_stress("memory", "--bytes", "50M", "--hold", preexec_fn=group.join)
    proc.wait_for_event("holding", timeout=30)
    assert group.dirs.get("memory", group.dirs.get("v2")).name in _cgroup_of(proc.pid)
    assert group.memory_peak() >= 50 * MIB, "the memory must be charged to the limited cgroup"
    assert proc.popen.poll() is None
    assert group.oom_kills() == 0
    proc.popen.send_signal(signal.SIGTERM)
    assert proc.finish(timeout=10) == 0


def test_stress_cpu_over_the_limit_is_throttled(stress_cgroup, run_stress) -> None:
    group = stress_cgroup(["cpu", "cpuacct"])
    group.limit_cpu(quota_us=100_000, period_us=100_000)  # limits.cpu: "1"
    started = time.monotonic()
    proc = run_stress("cpu", "--workers", "2", "--seconds", "3", preexec_fn=group.join)
    start = proc.wait_for_event("start", timeout=15)
    for pid in start["worker_pids"]:
        assert group.dirs.get("cpu", group.dirs.get("v2")).name in _cgroup_of(pid)
    assert proc.finish(timeout=30) == 0
    wall = time.monotonic() - started

    periods, throttled = group.cpu_throttling()
    used = group.cpu_usage_seconds()
    print(
        f"\ncpu: throttled in {throttled} of {periods} periods, "
        f"{used:.2f}s CPU in {wall:.2f}s wall (quota 1 CPU, 2 workers)"
    )
    assert periods > 10
    # Two busy workers use the period's 100 ms of quota in ~50 ms: throttled in most periods.
    assert throttled / periods > 0.5, f"throttled in {throttled} of {periods} periods"
    # ...and never get more than one CPU's worth of time in total.
    assert used <= 1.0 * wall * 1.1 + 0.2, f"used {used:.2f}s CPU in {wall:.2f}s wall time"
    assert used >= 1.5, f"used only {used:.2f}s CPU: the workers did not run"
