"""Benchmark: warm-cache start of the embedded cluster until its nodes are Ready, then stop.

Runs `up` -> Ready -> `down` N times with a temporary KUBECONFIG and a throwaway cluster name,
and prints the seconds for each phase plus the control plane's resident memory.

    python benchmarks/embedded_cluster.py [--runs 3] [--nodes 1]

Needs the binaries built (`python3 tools/build_k8s.py`). Target: up -> Ready < 30 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from kubelab.embedded import build, cluster
from kubelab.errors import KubelabError


def _rss_mb(pids: dict[str, int]) -> float:
    total = 0
    for pid in pids.values():
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--nodes", type=int, default=1)
    args = parser.parse_args()
    if build.missing():
        print(f"error: binaries missing: {', '.join(build.missing())}; {build.HINT}")
        return 1
    ups, downs = [], []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["KUBECONFIG"] = str(Path(tmp) / "config")
        for i in range(args.runs):
            name = f"bench-{uuid.uuid4().hex[:5]}"
            try:
                res = cluster.up(nodes=args.nodes, name=name, progress=lambda _m: None)
                pids, _ = cluster.cluster_footprint(name)
                rss = _rss_mb(pids)
                t0 = time.monotonic()
                cluster.down(name=name, progress=lambda _m: None)
                down_s = time.monotonic() - t0
            except KubelabError as exc:
                print(f"error: {exc}")
                cluster.down(name=name, progress=lambda _m: None)
                return 1
            ups.append(res.seconds)
            downs.append(down_s)
            print(
                f"run {i + 1}: up->{args.nodes} node(s) Ready {res.seconds:.1f}s, "
                f"down {down_s:.1f}s, control plane RSS {rss:.0f} MB"
            )
    print(
        f"up->Ready: median {statistics.median(ups):.1f}s "
        f"(min {min(ups):.1f}, max {max(ups):.1f}); "
        f"down: median {statistics.median(downs):.1f}s; Kubernetes {build.k8s_version()}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
