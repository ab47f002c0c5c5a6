"""KEDA on the embedded cluster: its operator and metrics API server as host processes beside the
real node. Installing twice changes nothing and says so; both listen only on loopback and the
node address; the API server serves the external metrics API through them; uninstalling leaves
nothing of KEDA. Without the real node the install is refused with what to do."""

from __future__ import annotations

import json

import pytest
from sockets import listening_addresses

from kubelab.embedded.cluster import cluster_dir

# /proc/net/tcp's little-endian hex of 127.0.0.1 and of the real node's 10.244.0.1
ALLOWED = ("0100007F:", "0100F40A:")


def keda_left_behind(c) -> list[str]:
    """What of KEDA is still in the cluster (nothing, after an uninstall)."""
    left = [n for n in c.kubectl("get", "crd", "-o", "name").stdout.split() if "keda.sh" in n]
    services = c.kubectl("get", "apiservice", "-o", "name").stdout.split()
    left += [s for s in services if "external.metrics.k8s.io" in s]
    roles = c.kubectl("get", "clusterrole,clusterrolebinding", "-o", "name").stdout.split()
    left += [r for r in roles if "keda" in r]
    if c.kubectl("get", "namespace", "keda", check=False).returncode == 0:
        left.append("namespace/keda")
    return left


def test_keda_without_the_real_node_is_refused_with_what_to_do(embedded_cluster, kubelab_cli):
    if embedded_cluster.real_node:
        pytest.skip("the session's cluster has its real node (the other test covers it)")
    got = kubelab_cli("addons", "install", "keda", env=embedded_cluster.env)
    assert got.returncode != 0
    out = got.stdout + got.stderr
    assert "real node" in out and "--real-node" in out, out[-2000:]
    assert "Traceback" not in out
    assert keda_left_behind(embedded_cluster) == []


def test_keda_host_processes_install_twice_serve_the_external_metrics_api_and_uninstall(
    embedded_cluster, kubelab_cli
):
    c, env = embedded_cluster, embedded_cluster.env
    if not c.real_node:
        pytest.skip("KEDA runs on the embedded cluster only beside its real node (Linux, root)")
    folder = cluster_dir(c.name) / "addons" / "keda"
    try:
        first = kubelab_cli("addons", "install", "keda", env=env)
        assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
        pids = {p: int((folder / f"{p}.pid").read_text()) for p in
                ("keda-operator", "keda-metrics-apiserver")}  # fmt: skip
        again = kubelab_cli("addons", "install", "keda", env=env)
        assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
        said = " ".join(again.stdout.split())  # the terminal may wrap lines
        assert "already running" in said and "nothing to change" in said, said
        assert pids == {p: int((folder / f"{p}.pid").read_text()) for p in pids}

        for program, pid in pids.items():
            listening = listening_addresses(pid)
            assert listening, (program, "listens nowhere?")
            assert all(a.startswith(ALLOWED) for a in listening), (program, listening)

        # the aggregation layer reaches the metrics API server on the node address
        api = json.loads(c.kubectl("get", "--raw", "/apis/external.metrics.k8s.io/v1beta1").stdout)
        assert api["groupVersion"] == "external.metrics.k8s.io/v1beta1"
        status = kubelab_cli("addons", "status", "keda", env=env)
        assert status.returncode == 0 and "ready" in status.stdout.lower(), status.stdout
    finally:
        gone = kubelab_cli("addons", "uninstall", "keda", env=env)
    assert gone.returncode == 0, gone.stdout[-3000:] + gone.stderr[-3000:]
    assert keda_left_behind(c) == []
    assert not list(folder.glob("*.pid"))
