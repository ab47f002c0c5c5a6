"""Every lab under labs/, end to end, on the embedded cluster, through the same runner learners
use: each step passes, or is skipped exactly when a requirement the cluster lacks says so; the
cleanup leaves nothing behind. A new lab folder is picked up with no change here."""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path

import pytest

from kubelab.lab.loader import lab_names, load_lab


def course_labs() -> list[str]:
    """The labs this test runs: every folder with a lab.yaml under labs/ ($KUBELAB_LABS)."""
    return lab_names()


KUBE_ROUTER_HEALTH = 20244  # the real node's kube-router (kubelab.embedded.node)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def cluster_facts(cluster) -> dict[str, bool]:
    """What the embedded cluster can do, read from the cluster itself (not from kubelab's own
    capability code, which is what this test checks)."""
    nodes = json.loads(cluster.kubectl("get", "nodes", "-o", "json").stdout)["items"]
    real = [
        n for n in nodes
        if (n["metadata"].get("annotations") or {}).get("kwok.x-k8s.io/node") != "fake"
    ]  # fmt: skip
    metrics = cluster.kubectl(
        "get", "apiservice", "v1beta1.metrics.k8s.io", "-o",
        "jsonpath={.status.conditions[?(@.type=='Available')].status}", check=False,
    ).stdout  # fmt: skip
    classes = cluster.kubectl("get", "storageclass", "-o", "json", check=False)
    default_class = classes.returncode == 0 and any(
        (c["metadata"].get("annotations") or {}).get("storageclass.kubernetes.io/is-default-class")
        == "true"
        for c in json.loads(classes.stdout)["items"]
    )
    # a release of metrics-server as helm records it (its release Secrets in kube-system)
    release = cluster.kubectl(
        "get", "secret", "-n", "kube-system", "-l", "owner=helm,name=metrics-server",
        "-o", "name", check=False,
    ).stdout.strip()  # fmt: skip
    return {
        # metrics-server is the only add-on; the embedded cluster serves it beside its real node
        "addon:metrics-server": metrics == "True",
        "addon-release:metrics-server": bool(release) and metrics == "True",
        # host processes on the embedded cluster, never a Helm release (no Grafana, no exporters)
        "addon-release:kube-prometheus-stack": False,
        # the real node runs kube-router's network-policy firewall as a host process: it answers
        "network-policy": bool(real) and _answers(f"http://127.0.0.1:{KUBE_ROUTER_HEALTH}/healthz"),
        "containers": bool(real),
        "loadbalancer": False,
        "csr-signing": True,
        "helm": True,  # the cached helm is on the cluster's PATH
        "metrics-api": metrics == "True",
        "default-storageclass": default_class,
        "node_count": len(nodes),
    }


# Add-ons this test installs for the labs that require them (and removes afterwards, so the
# other labs run on a cluster without them). On the embedded cluster without its real node an
# add-on can run only as a host process (Gatekeeper, Argo CD); with containers, any add-on can.
HOST_PROCESS_ADDONS = {
    "argo-cd",
    "argo-rollouts",
    "gatekeeper",
    "kube-prometheus-stack",
    "traefik",
}
# Add-ons that cannot run on the embedded cluster at all (Istio's Envoy is C++, and the node
# pulls no images): their steps skip, real node or not.
NEVER_EMBEDDED_ADDONS = {"istio-base", "istio", "kiali"}


def lab_addons(loaded) -> list[str]:
    needs = {r for s in loaded.steps for r in s.effective_requires(loaded.spec.requires)}
    return sorted(r.removeprefix("addon:") for r in needs if r.startswith("addon:"))


def gatekeeper_left_behind(cluster) -> list[str]:
    """What of Gatekeeper is still in the cluster (nothing, after an uninstall)."""
    crds = cluster.kubectl("get", "crd", "-o", "name").stdout.split()
    left = [c for c in crds if c.endswith("gatekeeper.sh")]
    hooks = cluster.kubectl("get", "validatingwebhookconfiguration", "-o", "name").stdout.split()
    left += [h for h in hooks if "gatekeeper" in h]
    ns = cluster.kubectl("get", "namespace", "gatekeeper-system", check=False)
    if ns.returncode == 0:
        left.append("namespace/gatekeeper-system")
    return left


def traefik_left_behind(cluster) -> list[str]:
    """What of Traefik is still in the cluster (nothing, after an uninstall): its CRDs, the
    Gateway API's, its classes and namespace."""
    crds = cluster.kubectl("get", "crd", "-o", "name").stdout.split()
    left = [c for c in crds if c.endswith(("traefik.io", "gateway.networking.k8s.io"))]
    for kind in ("ingressclass", "namespace"):
        if cluster.kubectl("get", kind, "traefik", check=False).returncode == 0:
            left.append(f"{kind}/traefik")
    return left


def expected_skip(requirements: list[str], facts: dict) -> bool:
    for req in requirements:
        if req.startswith("nodes>="):
            if facts["node_count"] < int(req.removeprefix("nodes>=")):
                return True
        elif req in facts:
            if not facts[req]:
                return True
        else:
            pytest.fail(f"teach test_labs.py how to tell whether the cluster meets {req!r}")
    return False


@pytest.mark.parametrize("lab", course_labs())
def test_lab_passes_end_to_end(lab, embedded_cluster, kubelab_cli, tmp_path):
    facts = cluster_facts(embedded_cluster)
    report_file = tmp_path / "report.json"
    env = {**embedded_cluster.env, "KUBELAB_STATE": str(tmp_path / "state")}
    loaded = load_lab(lab).lab
    installed = []
    for addon in lab_addons(loaded):
        facts[f"addon:{addon}"] = addon not in NEVER_EMBEDDED_ADDONS and (
            facts["containers"] or addon in HOST_PROCESS_ADDONS
        )
        if facts[f"addon:{addon}"]:
            got = kubelab_cli("addons", "install", addon, env=env)
            assert got.returncode == 0, got.stdout[-3000:] + got.stderr[-3000:]
            installed.append(addon)
        # installed by helm where containers run, except a host-process add-on (never a release)
        release = facts[f"addon:{addon}"] and addon not in HOST_PROCESS_ADDONS
        facts.setdefault(f"addon-release:{addon}", release)
    try:
        proc = kubelab_cli("run", lab, "--report", str(report_file), env=env)
    finally:
        for addon in installed:
            gone = kubelab_cli("addons", "uninstall", addon, env=env)
            assert gone.returncode == 0, gone.stdout[-3000:] + gone.stderr[-3000:]
        if "gatekeeper" in installed:
            assert gatekeeper_left_behind(embedded_cluster) == []
        if "traefik" in installed:
            assert traefik_left_behind(embedded_cluster) == []
        if "argo-cd" in installed:
            crds = embedded_cluster.kubectl("get", "crd", "-o", "name").stdout.split()
            assert [c for c in crds if c.endswith("argoproj.io")] == []
    report = json.loads(report_file.read_text())
    assert [s["id"] for s in report["steps"]] == [s.id for s in loaded.steps]
    for step, result in zip(loaded.steps, report["steps"], strict=True):
        needs = step.effective_requires(loaded.spec.requires)
        want = "skipped" if expected_skip(needs, facts) else "passed"
        assert result["status"] == want, (step.id, needs, result["reason"], proc.stdout[-4000:])
    assert report["cleanup"]["status"] == "passed", report["cleanup"]
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert not (tmp_path / "state" / "work" / lab).exists()
    junit = tmp_path / "report.xml"
    again = kubelab_cli("run", lab, "--step", loaded.steps[0].id, "--report", str(junit), env=env)
    assert again.returncode == 0, again.stdout[-3000:]  # (an add-on step skips: removed above)
    assert "<testsuite" in junit.read_text()


def test_a_new_lab_folder_is_picked_up_without_a_test_change(tmp_path, monkeypatch):
    root = tmp_path / "labs"
    for name in ("alpha", "zeta-new"):
        (root / name).mkdir(parents=True)
        (root / name / "lab.yaml").write_text("placeholder: the test only lists folders\n")
    (root / "notes").mkdir()  # a folder without lab.yaml is not a lab
    monkeypatch.setenv("KUBELAB_LABS", str(root))
    assert course_labs() == ["alpha", "zeta-new"]
    assert Path(os.environ["KUBELAB_LABS"]) == root
