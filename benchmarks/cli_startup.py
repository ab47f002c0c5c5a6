"""Benchmark: how fast the `kubelab` command starts (`kubelab --help`), beside kubectl's.

    python benchmarks/cli_startup.py [--runs 21]

Runs each command N times in a fresh process and prints the median and the spread. Target:
`kubelab --help` median <= 0.15 s. The lab format (pydantic) and the Kubernetes client are
imported only by the commands that need them, so help and the cluster commands stay fast.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGET_S = 0.15


def timings(argv: list[str], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        out.append(time.perf_counter() - start)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21)
    args = parser.parse_args()
    kubelab = Path(sys.executable).with_name("kubelab")
    commands = {"kubelab --help": [str(kubelab), "--help"]}
    if kubectl := shutil.which("kubectl"):
        commands["kubectl version --client"] = [kubectl, "version", "--client"]
    median = {}
    for name, argv in commands.items():
        timings(argv, 2)  # warm the page cache
        seconds = timings(argv, args.runs)
        median[name] = statistics.median(seconds)
        print(f"{name:28} median {median[name]:.3f} s  min {min(seconds):.3f}  "
              f"max {max(seconds):.3f}  ({args.runs} runs)")  # fmt: skip
    ok = median["kubelab --help"] <= TARGET_S
    print(f"target kubelab --help <= {TARGET_S} s: {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
