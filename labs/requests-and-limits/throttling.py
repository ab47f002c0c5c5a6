#!/usr/bin/env python3
"""How often the kernel has throttled the cpu-stressor's container.

Reads the CFS counters of the container's cgroup through `kubectl exec` (cgroup v2:
/sys/fs/cgroup/cpu.stat; v1: /sys/fs/cgroup/cpu/cpu.stat) and prints
"periods P, throttled T (N%)": in N% of the 100 ms periods in which the container wanted to
run, it had used up its quota and had to wait. Python 3 standard library only.
"""

import subprocess
import sys

READ_CPU_STAT = "cat /sys/fs/cgroup/cpu.stat 2>/dev/null || cat /sys/fs/cgroup/cpu/cpu.stat"
COMMAND = ["kubectl", "exec", "deployment/cpu-stressor", "-c", "stress", "--", "sh", "-c"]


def main() -> int:
    try:
        proc = subprocess.run(
            [*COMMAND, READ_CPU_STAT], capture_output=True, text=True, timeout=30, check=False
        )
    except FileNotFoundError:
        print("throttling.py: kubectl is not on your PATH", file=sys.stderr)
        return 1
    except subprocess.TimeoutExpired:
        print("throttling.py: kubectl exec did not answer within 30 s", file=sys.stderr)
        return 1
    if proc.returncode != 0:
        print(f"throttling.py: kubectl exec failed: {proc.stderr.strip()}", file=sys.stderr)
        print("is deployment/cpu-stressor running? (kubectl get pods)", file=sys.stderr)
        return proc.returncode
    counters = {}
    for line in proc.stdout.splitlines():
        name, _, value = line.partition(" ")
        if value.strip().isdigit():
            counters[name] = int(value)
    periods, throttled = counters.get("nr_periods", 0), counters.get("nr_throttled", 0)
    share = 100 * throttled // periods if periods else 0
    print(f"periods {periods}, throttled {throttled} ({share}%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
