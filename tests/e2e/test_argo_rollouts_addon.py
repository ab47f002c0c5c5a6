"""Argo Rollouts on the embedded cluster: the real controller as a host process. It reconciles a
Rollout through the real API server, listens on loopback only, a second install changes
nothing and says so, and an uninstall leaves nothing of it."""

from __future__ import annotations

import json

from sockets import listening_addresses
from waiting import poll

from kubelab.embedded.cluster import cluster_dir

ROLLOUT = {
    "apiVersion": "argoproj.io/v1alpha1",
    "kind": "Rollout",
    "metadata": {"name": "addon-e2e", "namespace": "default"},
    "spec": {
        "replicas": 1,
        "selector": {"matchLabels": {"app": "addon-e2e"}},
        "template": {
            "metadata": {"labels": {"app": "addon-e2e"}},
            "spec": {
                # never scheduled: the test is about the controller, not about containers (so the
                # Rollout stays Progressing and the active Service is never switched)
                "nodeSelector": {"kubelab.dev/never": "scheduled"},
                "containers": [{"name": "c", "image": "localhost/kubelab/bluegreen-demo:blue"}],
            },
        },
        "strategy": {"blueGreen": {"activeService": "addon-e2e"}},
    },
}
SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "addon-e2e", "namespace": "default"},
    "spec": {"selector": {"app": "addon-e2e"}, "ports": [{"port": 80}]},
}


def _left_behind(c) -> list[str]:
    crds = [n for n in c.kubectl("get", "crd", "-o", "name").stdout.split() if "argoproj.io" in n]
    ns = c.kubectl("get", "namespace", "argo-rollouts", check=False)
    return crds + (["namespace/argo-rollouts"] if ns.returncode == 0 else [])


def test_argo_rollouts_host_process_reconciles_and_leaves_nothing(embedded_cluster, kubelab_cli):
    c, env = embedded_cluster, embedded_cluster.env
    pid_file = cluster_dir(c.name) / "addons" / "argo-rollouts" / "rollouts-controller.pid"
    got = kubelab_cli("addons", "install", "argo-rollouts", env=env)
    assert got.returncode == 0, got.stdout[-3000:] + got.stderr[-3000:]
    try:
        pid = int(pid_file.read_text())
        again = kubelab_cli("addons", "install", "argo-rollouts", env=env)
        assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
        said = " ".join(again.stdout.split())  # the terminal may wrap lines
        assert "already running" in said and "nothing to change" in said, said
        assert int(pid_file.read_text()) == pid  # the same process, not a second one

        # nothing of it listens beyond loopback (upstream binds 0.0.0.0; patched at build time)
        listening = listening_addresses(pid)
        assert len(listening) == 2, listening  # metrics and healthz
        assert all(a.startswith("0100007F:") for a in listening), listening

        # the controller reconciles: a ReplicaSet owned by the Rollout, its hash in the status
        c.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                        "items": [SERVICE, ROLLOUT]}))  # fmt: skip

        def owned_rs() -> list[dict]:
            items = json.loads(c.kubectl("get", "rs", "-l", "app=addon-e2e", "-o", "json").stdout)
            return [
                rs for rs in items["items"]
                if [o["kind"] for o in rs["metadata"].get("ownerReferences", [])] == ["Rollout"]
            ]  # fmt: skip

        [rs] = poll("the controller creates the Rollout's ReplicaSet", owned_rs, 60)
        rs_hash = rs["metadata"]["labels"]["rollouts-pod-template-hash"]

        def current_hash() -> str:
            ro = json.loads(c.kubectl("get", "rollout", "addon-e2e", "-o", "json").stdout)
            return (ro.get("status") or {}).get("currentPodHash", "")

        assert poll("the Rollout reports its ReplicaSet", current_hash, 30) == rs_hash
    finally:
        c.kubectl("delete", "service", "addon-e2e", "--ignore-not-found")
        gone = kubelab_cli("addons", "uninstall", "argo-rollouts", env=env)
    assert gone.returncode == 0, gone.stdout[-3000:] + gone.stderr[-3000:]
    assert _left_behind(c) == []
    assert not pid_file.exists()
    # the Rollout went with its CRD, and its ReplicaSet with it (owner reference)
    poll(
        "the Rollout's ReplicaSet is garbage-collected",
        lambda: c.kubectl("get", "rs", "-l", "app=addon-e2e", "-o", "name").stdout.strip() == "",
        60,
    )
    status = kubelab_cli("addons", "status", "argo-rollouts", env=env)
    assert "not installed" in status.stdout or "not running" in status.stdout, status.stdout
