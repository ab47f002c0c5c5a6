"""The pod-security lab's node-escape Pod on the embedded cluster's real node, where the "node" is
this very machine (as the lesson warns): its nsenter reaches this machine's own namespaces, with
reads only. That the host is left exactly as it was is checked by the session's fixture when the
cluster goes down (hoststate)."""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

import pytest

from kubelab.lab.loader import load_lab

LAB = load_lab("pod-security").folder
NAMESPACE = "podsec-e2e"


def pretty_name(text: str) -> str:
    m = re.search(r'^PRETTY_NAME="?([^"\n]*)"?', text, re.MULTILINE)
    assert m, f"no PRETTY_NAME in {text!r}"
    return m.group(1)


def test_the_nsenter_pod_reaches_this_machines_namespaces_by_reading_only(embedded_cluster):
    if not embedded_cluster.real_node:
        pytest.skip("needs the embedded cluster's real node (containers)")
    kubectl = embedded_cluster.kubectl
    kubectl("create", "namespace", NAMESPACE)
    try:
        kubectl("apply", "-n", NAMESPACE, "-f", str(LAB / "nsenter-pod.yaml"))
        kubectl(
            "wait", "-n", NAMESPACE, "--for=condition=Ready", "pod/nsenter-pod", "--timeout=90s"
        )
        logs = kubectl("logs", "-n", NAMESPACE, "nsenter-pod").stdout
        container = re.search(r"^container: (mnt:\[\d+\]), (.*)$", logs, re.MULTILINE)
        node = re.search(r"^node: +(mnt:\[\d+\]), (.*), user (\S+) on (\S+)$", logs, re.MULTILINE)
        assert container and node, logs
        # the container: its own mount namespace, our image's Debian
        assert container.group(1) != os.readlink("/proc/self/ns/mnt")
        assert pretty_name(container.group(2)) == "Debian GNU/Linux 12 (bookworm)"
        # after nsenter: this machine -- its mount namespace, OS, host name -- as root
        assert node.group(1) == os.readlink("/proc/self/ns/mnt"), logs
        assert pretty_name(node.group(2)) == pretty_name(Path("/etc/os-release").read_text())
        assert node.group(3) == "root"
        assert node.group(4) == socket.gethostname()
    finally:
        kubectl("delete", "namespace", NAMESPACE, "--ignore-not-found", "--timeout=90s")
