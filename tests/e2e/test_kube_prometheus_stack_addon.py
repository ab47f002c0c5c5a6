"""kube-prometheus-stack on the embedded cluster: the real Prometheus Operator and Prometheus as
host processes. A second install changes nothing and says so; a ServiceMonitor reaches
Prometheus' running configuration through the operator (no container needed for that); nothing
listens beyond loopback; uninstalling leaves nothing of it. (The lab's dashboard step runs every
panel's PromQL against this Prometheus on the real node: tests/e2e/test_labs.py.)"""

from __future__ import annotations

import json
import time
import urllib.request

from kubelab.addons import kube_prometheus_stack as kps
from kubelab.embedded import cluster, hoststate
from kubelab.embedded.cluster import cluster_dir

SERVICE_MONITOR = {
    "apiVersion": "monitoring.coreos.com/v1",
    "kind": "ServiceMonitor",
    "metadata": {"name": "e2e-web", "namespace": "default", "labels": {"release": kps.RELEASE}},
    "spec": {"selector": {"matchLabels": {"app": "e2e-web"}}, "endpoints": [{"port": "http"}]},
}


def _until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            assert value, f"not true after {timeout:.0f}s: {what}"
            return value
        time.sleep(0.5)


def _loaded_config(folder) -> str:
    port = int((folder / "prometheus.port").read_text())
    url = f"http://127.0.0.1:{port}/api/v1/status/config"
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.load(r)["data"]["yaml"]


def _listening(pid: int) -> list[str]:
    inodes = cluster._socket_inodes(pid)
    return [
        cols[1] for _, cols in hoststate.socket_rows(("tcp", "tcp6"))
        if cols[3] == "0A" and cols[9] in inodes
    ]  # fmt: skip


def test_stack_host_processes_install_once_follow_servicemonitors_and_uninstall_clean(
    embedded_cluster, kubelab_cli
):
    c, env = embedded_cluster, embedded_cluster.env
    folder = cluster_dir(c.name) / "addons" / kps.NAME
    got = kubelab_cli("addons", "install", kps.NAME, env=env)
    assert got.returncode == 0, got.stdout[-3000:] + got.stderr[-3000:]
    try:
        pids = {p: int((folder / f"{p}.pid").read_text()) for p in
                ("prometheus-operator", "prometheus", "config-sync")}  # fmt: skip
        again = kubelab_cli("addons", "install", kps.NAME, env=env)
        assert again.returncode == 0, again.stdout[-3000:]
        assert "nothing changed" in again.stdout and "starting" not in again.stdout
        assert pids == {p: int((folder / f"{p}.pid").read_text()) for p in pids}

        # the operator and Prometheus listen, on loopback only; the sync listens on nothing
        for program in ("prometheus-operator", "prometheus"):
            addresses = _listening(pids[program])
            assert addresses and all(
                a.startswith(("0100007F:", "00000000000000000000000001000000:")) for a in addresses
            ), (program, addresses)
        assert _listening(pids["config-sync"]) == []
        # each runs as a user of its own with upstream's permissions, not as the admin
        can = c.kubectl("auth", "can-i", "list", "endpointslices", "--all-namespaces",
                        "--as", kps.IDENTITIES["prometheus"], check=False)  # fmt: skip
        assert can.stdout.strip() == "yes"
        can = c.kubectl("auth", "can-i", "create", "pods",
                        "--as", kps.IDENTITIES["prometheus"], check=False)  # fmt: skip
        assert can.stdout.strip() == "no"

        # a ServiceMonitor becomes a scrape job in Prometheus' running configuration
        c.kubectl("apply", "-f", "-", input=json.dumps(SERVICE_MONITOR))
        job = "serviceMonitor/default/e2e-web/0"
        _until(lambda: job in _loaded_config(folder), 60, f"Prometheus runs the job {job}")
        # …and goes again when the ServiceMonitor does
        c.kubectl("delete", "servicemonitor", "e2e-web")
        _until(lambda: job not in _loaded_config(folder), 60, f"the job {job} is gone")
    finally:
        c.kubectl("delete", "servicemonitor", "e2e-web", "--ignore-not-found", check=False)
        gone = kubelab_cli("addons", "uninstall", kps.NAME, env=env)
    assert gone.returncode == 0, gone.stdout[-3000:] + gone.stderr[-3000:]
    crds = [n for n in c.kubectl("get", "crd", "-o", "name").stdout.split()
            if n.endswith(".monitoring.coreos.com")]  # fmt: skip
    assert crds == []
    assert c.kubectl("get", "namespace", kps.NAMESPACE, check=False).returncode != 0
    rbac = c.kubectl("get", "clusterrole,clusterrolebinding", "-l", "kubelab.dev/addon",
                     "-o", "name").stdout.split()  # fmt: skip
    assert rbac == []
    assert not folder.exists()
    for pid in pids.values():
        assert cluster._alive(pid) is False, pid
    status = kubelab_cli("addons", "status", kps.NAME, env=env)
    assert "not installed" in status.stdout
