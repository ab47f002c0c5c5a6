#!/usr/bin/env python3
"""Install the servers and programs the test suite talks to, from Debian's packages.

Idempotent and quick when everything is there: only missing packages are installed, and
`apt-get update` runs only when something is missing. Needs root (CI runs as root); a learner
without root gets the exact command to run instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

# package -> what needs it
PACKAGES = {
    "rabbitmq-server": "apps/rabbitmq-worker tests (a real broker on loopback)",
    "chromium": "apps/bluegreen-demo tests (a real headless browser)",
    # the embedded cluster's real node (`kubelab cluster up --real-node`)
    "libseccomp-dev": "runc's seccomp support (built by `make tools`)",
    "gcc": "Kubernetes' pause.c, the Pod sandbox image; runc (cgo)",
    "libc6-dev": "static pause binary",
    "busybox-static": "the busybox stand-in image",
    "debootstrap": "the Python base image (Debian bookworm) the apps' Dockerfiles build FROM",
    "buildah": "builds apps/*/Dockerfile offline",
    "nftables": "kube-proxy's nftables mode (the `nft` program)",
    "iptables": "the kubelet's iptables checks; kube-router's network-policy firewall",
    "ipset": "kube-router's network-policy firewall (sets of Pod addresses)",
    "iproute2": "the node's bridge",
    "openssl": "the node's certificates",
    "shellcheck": "actionlint's check of the CI workflows' shell scripts",
    # the argo-cd add-on on the embedded cluster (host processes)
    "redis-server": "Argo CD's cache (started by kubelab on 127.0.0.1, never as a service)",
}


def installed(package: str) -> bool:
    proc = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True, check=False
    )
    return proc.returncode == 0 and proc.stdout.strip() == "install ok installed"


def main() -> int:
    if shutil.which("dpkg-query") is None:
        print("test-deps: not a Debian/Ubuntu system; install by hand: " + ", ".join(PACKAGES))
        return 1
    missing = [p for p in PACKAGES if not installed(p)]
    if not missing:
        print("test-deps: all present (" + ", ".join(PACKAGES) + ")")
        return 0
    command = ["apt-get", "install", "-y", "--no-install-recommends", *missing]
    if os.geteuid() != 0:
        print("test-deps: missing " + ", ".join(f"{p} ({PACKAGES[p]})" for p in missing))
        print("  run: sudo apt-get update && sudo " + " ".join(command))
        return 1
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print("test-deps: installing " + ", ".join(missing))
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env)
    subprocess.run(command, check=True, env=env)
    return 0


if __name__ == "__main__":
    sys.exit(main())
