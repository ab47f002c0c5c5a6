"""Benchmark: kube-prometheus-stack on the embedded cluster (host processes), warm caches.

Each run: a fresh embedded cluster (simulated nodes only), `kubelab addons install
kube-prometheus-stack` until ready, a second install (must change nothing), the RSS of its three
processes once Prometheus has scraped both of its targets, `kubelab addons uninstall`, `down`.

    python benchmarks/kube_prometheus_stack.py [--runs 3]

Needs `make tools` (the add-ons group builds the operator and Prometheus).
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
import urllib.request
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from kubelab.addons import kube_prometheus_stack as kps  # noqa: E402
from kubelab.embedded import build, cluster  # noqa: E402
from kubelab.embedded.cluster import cluster_dir  # noqa: E402

PROGRAMS = ("prometheus-operator", "prometheus", "config-sync")


def _kubelab(*args: str) -> float:
    t0 = time.monotonic()
    kubelab = str(Path(sys.executable).with_name("kubelab"))
    proc = subprocess.run([kubelab, *args], capture_output=True,
                          text=True, timeout=600, check=False)  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"kubelab {' '.join(args)} failed:\n{(proc.stdout + proc.stderr)[-2000:]}")
    return time.monotonic() - t0


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _both_targets_scraped(folder: Path, deadline: float) -> None:
    port = int((folder / "prometheus.port").read_text())
    url = f"http://127.0.0.1:{port}/api/v1/query?query=count(up%3D%3D1)"
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                result = json.load(r)["data"]["result"]
            if result and int(result[0]["value"][1]) >= 2:
                return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.5)
    raise SystemExit("Prometheus did not scrape its two targets within 60 s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    missing = build.missing(("control-plane", "addons"))
    if missing:
        print(f"error: binaries missing: {', '.join(missing)}; {build.HINT}")
        return 1
    installs, uninstalls, totals = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["KUBECONFIG"] = str(Path(tmp) / "config")
        for i in range(args.runs):
            name = f"bench-{uuid.uuid4().hex[:5]}"
            try:
                cluster.up(nodes=1, name=name, progress=lambda _m: None)
                install = _kubelab("addons", "install", kps.NAME)
                again = _kubelab("addons", "install", kps.NAME)
                folder = cluster_dir(name) / "addons" / kps.NAME
                _both_targets_scraped(folder, time.monotonic() + 60)
                rss = {p: _rss_mb(int((folder / f"{p}.pid").read_text())) for p in PROGRAMS}
                uninstall = _kubelab("addons", "uninstall", kps.NAME)
            finally:
                cluster.down(name=name, progress=lambda _m: None)
            installs.append(install)
            uninstalls.append(uninstall)
            totals.append(sum(rss.values()))
            parts = ", ".join(f"{p} {mb:.0f}" for p, mb in rss.items())
            print(
                f"run {i + 1}: install {install:.1f}s, again {again:.1f}s, "
                f"uninstall {uninstall:.1f}s; RSS MB: {parts}; total {sum(rss.values()):.0f}"
            )
    print(
        f"install: median {statistics.median(installs):.1f}s; uninstall: median "
        f"{statistics.median(uninstalls):.1f}s; RSS of the three: median "
        f"{statistics.median(totals):.0f} MB"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
