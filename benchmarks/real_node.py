"""Benchmark: the embedded cluster with its real node, warm caches (binaries and images built).

Each run: `up --real-node` (1 simulated node) until the real node is Ready, then `kubectl apply`
of lab 1's probe-test-app Pod until it is Ready, then `down`. Prints the seconds of each phase.

    python benchmarks/real_node.py [--runs 3] [--settle 12]

Needs Linux, root and `make tools`. Targets (issue 8): node Ready within 20 s of `up`; the Pod
Ready within 5 s of `kubectl apply`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from kubelab.embedded import build, cluster, node  # noqa: E402
from kubelab.errors import KubelabError  # noqa: E402

POD = REPO / "labs" / "probe-test-app" / "probe-test-app-pod.yaml"


def _pod_state(kubectl: list[str]) -> tuple[bool, bool]:
    """(its container is running, the Pod is Ready)"""
    proc = subprocess.run([*kubectl, "get", "pod", "probe-test-app", "-o", "json"],
                          capture_output=True, text=True)  # fmt: skip
    if proc.returncode != 0:
        return False, False
    status = json.loads(proc.stdout).get("status", {})
    running = any("running" in (c.get("state") or {}) for c in status.get("containerStatuses", []))
    conds = status.get("conditions", [])
    return running, any(c["type"] == "Ready" and c["status"] == "True" for c in conds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--settle",
        type=float,
        default=12,
        help="seconds between the node being Ready and the apply (default 12): while the "
        "kubelet is younger than a probe's period it delays each new probe worker by a random "
        "part of that period, as after a kubelet restart; an apply right after `up` measures "
        "that too",
    )
    args = parser.parse_args()
    reason = node.unsupported_reason()
    if reason:
        print(f"error: {reason}")
        return 1
    if build.missing(build.GROUPS):
        print(f"error: binaries missing: {', '.join(build.missing(build.GROUPS))}; {build.HINT}")
        return 1
    ups, readys, pods, downs, runs = [], [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["KUBECONFIG"] = str(Path(tmp) / "config")
        for i in range(args.runs):
            name = f"bench-{uuid.uuid4().hex[:5]}"
            marks: dict[str, float] = {}
            start = time.monotonic()

            def progress(msg: str, marks: dict[str, float] = marks, start: float = start) -> None:
                if msg.startswith(f"node {node.NODE_NAME} Ready"):
                    marks["ready"] = time.monotonic() - start

            try:
                res = cluster.up(nodes=1, name=name, progress=progress, real_node=True)
                kubectl = [str(build.bin_dir() / "kubectl"), "--context", res.context]
                time.sleep(args.settle)  # a benchmark's pause, not a wait for a condition
                t0 = time.monotonic()
                subprocess.run([*kubectl, "apply", "-f", str(POD)], check=True,
                               capture_output=True)  # fmt: skip
                deadline = t0 + 60
                running_s = None
                while time.monotonic() < deadline:
                    running, ready = _pod_state(kubectl)
                    if running and running_s is None:
                        running_s = time.monotonic() - t0
                    if ready:
                        break
                    time.sleep(0.05)
                pod_s = time.monotonic() - t0
                t1 = time.monotonic()
                cluster.down(name=name, progress=lambda _m: None)
                down_s = time.monotonic() - t1
            except KubelabError as exc:
                print(f"error: {exc}")
                cluster.down(name=name, progress=lambda _m: None)
                return 1
            ups.append(res.seconds)
            readys.append(marks.get("ready", float("nan")))
            pods.append(pod_s)
            runs.append(running_s if running_s is not None else float("nan"))
            downs.append(down_s)
            print(
                f"run {i + 1}: real node Ready {readys[-1]:.1f}s after `up` began, cluster "
                f"ready {res.seconds:.1f}s; probe-test-app container running {runs[-1]:.1f}s and "
                f"Pod Ready {pod_s:.1f}s after apply; "
                f"down {down_s:.1f}s"
            )
    print(
        f"node Ready: median {statistics.median(readys):.1f}s (max {max(readys):.1f}); "
        f"up: median {statistics.median(ups):.1f}s; container running: median "
        f"{statistics.median(runs):.1f}s; Pod Ready: median "
        f"{statistics.median(pods):.1f}s (max {max(pods):.1f}); down: median "
        f"{statistics.median(downs):.1f}s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
