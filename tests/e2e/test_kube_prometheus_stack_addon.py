"""kube-prometheus-stack on the embedded cluster: the real Prometheus Operator and Prometheus as
host processes. A second install changes nothing and says so; a ServiceMonitor reaches
Prometheus' running configuration through the operator (no container needed for that); nothing
listens beyond loopback; uninstalling leaves nothing of it. (The lab's dashboard step runs every
panel's PromQL against this Prometheus on the real node: tests/e2e/test_labs.py.)"""

from __future__ import annotations

import json
import urllib.request

from sockets import listening_addresses
from waiting import poll

from kubelab.addons import kube_prometheus_stack as kps
from kubelab.embedded import cluster
from kubelab.embedded.cluster import cluster_dir

SERVICE_MONITOR = {
    "apiVersion": "monitoring.coreos.com/v1",
    "kind": "ServiceMonitor",
    "metadata": {"name": "e2e-web", "namespace": "default", "labels": {"release": kps.RELEASE}},
    "spec": {"selector": {"matchLabels": {"app": "e2e-web"}}, "endpoints": [{"port": "http"}]},
}


def _loaded_config(folder) -> str:
    port = int((folder / "prometheus.port").read_text())
    url = f"http://127.0.0.1:{port}/api/v1/status/config"
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.load(r)["data"]["yaml"]


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
        said = " ".join(again.stdout.split())  # the terminal may wrap lines
        assert "nothing changed" in said and "starting" not in said, said
        assert pids == {p: int((folder / f"{p}.pid").read_text()) for p in pids}

        # the operator and Prometheus listen, on loopback only; the sync listens on nothing
        for program in ("prometheus-operator", "prometheus"):
            addresses = listening_addresses(pids[program])
            assert addresses and all(
                a.startswith(("0100007F:", "00000000000000000000000001000000:")) for a in addresses
            ), (program, addresses)
        assert listening_addresses(pids["config-sync"]) == []
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
        poll(f"Prometheus runs the job {job}", lambda: job in _loaded_config(folder), 60)
        # …and goes again when the ServiceMonitor does
        c.kubectl("delete", "servicemonitor", "e2e-web")
        poll(f"the job {job} is gone", lambda: job not in _loaded_config(folder), 60)
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
