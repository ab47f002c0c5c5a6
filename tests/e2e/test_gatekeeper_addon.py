"""Gatekeeper on the embedded cluster: the real manager as a host process, called by the real API
server through a `url:` webhook. It denies by policy; a crashed manager cannot lock the cluster
(failurePolicy Ignore); uninstalling (or `cluster down`) leaves nothing behind."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from sockets import listening_addresses
from waiting import poll

from kubelab.embedded import cluster
from kubelab.embedded.cluster import cluster_dir

LAB = Path(__file__).resolve().parents[2] / "labs" / "admission-gatekeeper"
NAMESPACE = "gk-e2e"


def _pod(name: str, labels: dict[str, str]) -> str:
    return json.dumps({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels},
        "spec": {"containers": [{"name": "c", "image": "localhost/kubelab/probe-test-app:v1"}]},
    })  # fmt: skip


def test_gatekeeper_host_process_enforces_and_cannot_lock_the_cluster(
    embedded_cluster, kubelab_cli
):
    c, env = embedded_cluster, embedded_cluster.env
    got = kubelab_cli("addons", "install", "gatekeeper", env=env)
    assert got.returncode == 0, got.stdout[-3000:] + got.stderr[-3000:]
    pid_file = cluster_dir(c.name) / "addons" / "gatekeeper" / "gatekeeper.pid"
    try:
        hook = json.loads(
            c.kubectl(
                "get",
                "validatingwebhookconfiguration",
                "gatekeeper-validating-webhook-configuration",
                "-o",
                "json",
            ).stdout
        )["webhooks"][0]
        assert hook["clientConfig"]["url"].startswith("https://127.0.0.1:")
        # nothing of it listens beyond loopback (its Prometheus exporter would, on ":PORT")
        manager = int(pid_file.read_text())
        listening = listening_addresses(manager)
        assert listening and all(
            a.startswith(("0100007F:", "00000000000000000000000001000000:")) for a in listening
        ), listening
        assert hook["failurePolicy"] == "Ignore"
        excluded = hook["namespaceSelector"]["matchExpressions"][1]["values"]
        assert "kube-system" in excluded and "gatekeeper-system" in excluded

        # a policy for one namespace, enforced by the manager through the API server
        policy = (LAB / "pods-must-have-owner.yaml").read_text()
        c.kubectl("create", "namespace", NAMESPACE)
        c.kubectl("apply", "-f", str(LAB / "k8srequiredlabels-template.yaml"))
        crd = "crd/k8srequiredlabels.constraints.gatekeeper.sh"
        poll(f"{crd} made", lambda: c.kubectl("get", crd, check=False).returncode == 0, 60)
        c.kubectl("wait", "--for=condition=Established", "--timeout=60s", crd)
        c.kubectl("apply", "-f", "-", input=policy.replace("[admission-demo]", f"[{NAMESPACE}]"))

        def denied():
            proc = c.kubectl("create", "--dry-run=server", "-f", "-", check=False,
                             input=_pod("no-owner", {}))  # fmt: skip
            return proc.returncode != 0 and "validation.gatekeeper.sh" in proc.stderr

        poll("a Pod without owner is denied by Gatekeeper", denied, 60)
        c.kubectl("create", "-f", "-", input=_pod("ok", {"owner": "jane.agilebank.demo"}))

        # the manager dies: writes go through unchecked, within the webhook's timeout
        pid = int(pid_file.read_text())
        os.kill(pid, signal.SIGKILL)
        started = time.monotonic()
        c.kubectl("create", "-f", "-", input=_pod("after-crash", {}), timeout=30)
        assert time.monotonic() - started < 10
    finally:
        gone = kubelab_cli("addons", "uninstall", "gatekeeper", env=env)
        c.kubectl("delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=false")
    assert gone.returncode == 0, gone.stdout[-3000:] + gone.stderr[-3000:]
    crds = [n for n in c.kubectl("get", "crd", "-o", "name").stdout.split() if "gatekeeper" in n]
    hooks = c.kubectl("get", "validatingwebhookconfiguration", "-o", "name").stdout.split()
    assert crds == [] and [h for h in hooks if "gatekeeper" in h] == []
    assert c.kubectl("get", "namespace", "gatekeeper-system", check=False).returncode != 0
    assert not pid_file.exists()


def test_cluster_down_stops_the_gatekeeper_host_process(embedded_cluster, kubelab_cli, monkeypatch):
    """`kubelab addons install` then `cluster down` without an uninstall: nothing keeps running.
    (Checked on a second cluster of its own, so the session's cluster stays up.)"""

    name = f"{embedded_cluster.name}-gk"
    kubeconfig = embedded_cluster.kubeconfig.with_name("gk-down")
    env = {**embedded_cluster.env, "KUBECONFIG": str(kubeconfig)}
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    try:
        cluster.up(nodes=1, name=name, progress=lambda _m: None)
        got = kubelab_cli("addons", "install", "gatekeeper", env=env)
        assert got.returncode == 0, got.stdout[-3000:] + got.stderr[-3000:]
        pid = int((cluster_dir(name) / "addons" / "gatekeeper" / "gatekeeper.pid").read_text())
        assert Path(f"/proc/{pid}").exists()
    finally:
        cluster.down(name=name, progress=lambda _m: None)
    assert not Path(f"/proc/{pid}").exists() or " Z " in Path(f"/proc/{pid}/stat").read_text()
