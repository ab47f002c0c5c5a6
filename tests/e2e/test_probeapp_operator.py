"""apps/probeapp-operator against the embedded cluster's real API server, as its own
ServiceAccount (deploy/rbac.yaml, through a token kubeconfig): the CRD's schema, the operator's
children with owner references, reconciliation of a spec change and of drift, status, garbage
collection, and its clear refusals (no CRD, no rights)."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from waiting import poll

DEPLOY = Path(__file__).resolve().parents[2] / "apps" / "probeapp-operator" / "deploy"
CRD = "probeapps.kubelab.dev"


def _get(cluster, ns: str, kind: str, name: str) -> dict[str, Any] | None:
    proc = cluster.kubectl("get", "-n", ns, kind, name, "-o", "json", check=False)
    return json.loads(proc.stdout) if proc.returncode == 0 else None


def _sa_kubeconfig(cluster, ns: str, path: Path) -> Path:
    """A kubeconfig for the operator's ServiceAccount: the cluster's address and CA, its token."""
    raw = cluster.kubectl("config", "view", "--minify", "--flatten", "-o", "json").stdout
    entry = json.loads(raw)["clusters"][0]
    token = cluster.kubectl("create", "token", "probeapp-operator", "-n", ns).stdout.strip()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": entry["cluster"]}],
        "users": [{"name": "probeapp-operator", "user": {"token": token}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "probeapp-operator",
                                               "namespace": ns}}],
        "current-context": "c",
    }  # fmt: skip
    path.write_text(json.dumps(config))
    path.chmod(0o600)
    return path


def _operator(cluster, kubeconfig: Path, ns: str, log: Path) -> subprocess.Popen[bytes]:
    env = {**cluster.env, "KUBECONFIG": str(kubeconfig)}
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "probeapp_operator", "--namespace", ns],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip


def _run_operator(cluster, kubeconfig: Path, ns: str) -> subprocess.CompletedProcess[str]:
    env = {**cluster.env, "KUBECONFIG": str(kubeconfig)}
    return subprocess.run(
        [sys.executable, "-m", "probeapp_operator", "--namespace", ns],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


@pytest.fixture
def namespace(embedded_cluster) -> Iterator[str]:
    ns = f"op-{uuid.uuid4().hex[:6]}"
    embedded_cluster.kubectl("create", "namespace", ns)
    embedded_cluster.kubectl("apply", "-n", ns, "-f", str(DEPLOY / "rbac.yaml"))
    try:
        yield ns
    finally:
        embedded_cluster.kubectl("delete", "crd", CRD, "--ignore-not-found", timeout=120)
        embedded_cluster.kubectl("delete", "namespace", ns, "--wait=false")


def test_operator_refuses_clearly_without_crd_or_rights(embedded_cluster, namespace, tmp_path):
    c = embedded_cluster
    c.kubectl("delete", "crd", CRD, "--ignore-not-found", timeout=120)
    kubeconfig = _sa_kubeconfig(c, namespace, tmp_path / "sa.kubeconfig")
    proc = _run_operator(c, kubeconfig, namespace)
    assert proc.returncode == 2, proc.stderr
    assert "install the CRD first" in proc.stderr and "Traceback" not in proc.stderr
    c.kubectl("apply", "-f", str(DEPLOY / "crd.yaml"))
    c.kubectl("wait", "--for=condition=Established", f"crd/{CRD}", "--timeout=30s")
    proc = _run_operator(c, kubeconfig, "kube-system")  # its Role is in `namespace` only
    assert proc.returncode == 2, proc.stderr
    assert "not allowed to list probeapps in namespace kube-system" in proc.stderr


def test_schema_rejects_a_bad_probeapp(embedded_cluster, namespace):
    c = embedded_cluster
    c.kubectl("apply", "-f", str(DEPLOY / "crd.yaml"))
    c.kubectl("wait", "--for=condition=Established", f"crd/{CRD}", "--timeout=30s")
    bad = {"apiVersion": "kubelab.dev/v1alpha1", "kind": "ProbeApp",
           "metadata": {"name": "bad"}, "spec": {"replicas": 6, "version": "v9"}}  # fmt: skip
    proc = c.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(bad), check=False)
    assert proc.returncode != 0
    assert "spec.replicas in body should be less than or equal to 5" in proc.stderr
    assert 'spec.version: Unsupported value: "v9"' in proc.stderr
    assert _get(c, namespace, "probeapp", "bad") is None


def test_operator_owns_reconciles_reports_and_children_are_collected(
    embedded_cluster, namespace, tmp_path
):
    c = embedded_cluster
    ns = namespace
    c.kubectl("apply", "-f", str(DEPLOY / "crd.yaml"))
    c.kubectl("wait", "--for=condition=Established", f"crd/{CRD}", "--timeout=30s")
    app = {"apiVersion": "kubelab.dev/v1alpha1", "kind": "ProbeApp",
           "metadata": {"name": "hello"}, "spec": {"replicas": 2}}  # fmt: skip
    c.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(app))
    owner = _get(c, ns, "probeapp", "hello")
    assert owner is not None and owner["spec"] == {"replicas": 2, "version": "v1"}  # defaulted
    assert _get(c, ns, "deployment", "hello") is None  # nothing acts on it yet

    log = tmp_path / "operator.log"
    operator = _operator(c, _sa_kubeconfig(c, ns, tmp_path / "sa.kubeconfig"), ns, log)
    try:
        uid = owner["metadata"]["uid"]
        ref = {"apiVersion": "kubelab.dev/v1alpha1", "kind": "ProbeApp", "name": "hello",
               "uid": uid, "controller": True, "blockOwnerDeletion": True}  # fmt: skip
        deployment = poll("the Deployment", lambda: _get(c, ns, "deployment", "hello"), 60)
        service = poll("the Service", lambda: _get(c, ns, "service", "hello"), 30)
        assert deployment["metadata"]["ownerReferences"] == [ref]
        assert service["metadata"]["ownerReferences"] == [ref]
        assert deployment["spec"]["replicas"] == 2
        image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
        assert image == "localhost/kubelab/probe-test-app:v1"

        def ready(replicas: int, generation: int):
            def check():
                st = (_get(c, ns, "probeapp", "hello") or {}).get("status") or {}
                cond = {x["type"]: x["status"] for x in st.get("conditions", [])}
                return (st.get("readyReplicas") == replicas
                        and st.get("observedGeneration") == generation
                        and cond.get("Ready") == "True") and st  # fmt: skip

            return check

        poll("status: 2 ready, generation 1", ready(2, 1), 90)
        printed = c.kubectl("get", "-n", ns, "probeapp", "hello").stdout
        assert printed.split("\n")[1].split()[:5] == ["hello", "v1", "2", "2", "AllReplicasReady"]

        # a spec change is reconciled, and reported with the new generation
        c.kubectl("patch", "-n", ns, "probeapp", "hello", "--type=merge",
                  "-p", '{"spec":{"replicas":3,"version":"v2"}}')  # fmt: skip

        def updated():
            d = _get(c, ns, "deployment", "hello") or {}
            spec = d.get("spec") or {}
            tag = spec.get("template", {}).get("spec", {}).get("containers", [{}])[0].get("image")
            return spec.get("replicas") == 3 and tag == "localhost/kubelab/probe-test-app:v2"

        poll("the Deployment at 3 × v2", updated, 60)
        poll("status: 3 ready, generation 2", ready(3, 2), 90)

        # drift: a scale by hand is undone; a Deployment deleted by hand comes back
        c.kubectl("scale", "-n", ns, "deployment", "hello", "--replicas=1")
        poll("replicas back to 3",
             lambda: (_get(c, ns, "deployment", "hello") or {}).get("spec", {}).get("replicas")
             == 3, 30)  # fmt: skip
        old = _get(c, ns, "deployment", "hello")["metadata"]["uid"]
        c.kubectl("delete", "-n", ns, "deployment", "hello")
        again = poll("a new Deployment",
                     lambda: (d := _get(c, ns, "deployment", "hello"))
                     and d["metadata"]["uid"] != old and d, 30)  # fmt: skip
        assert again["metadata"]["ownerReferences"] == [ref]
        assert operator.poll() is None, log.read_text()
    finally:
        operator.terminate()
        operator.wait(timeout=30)
    text = log.read_text()
    assert "Operator is stopping" in text, text
    assert "Traceback" not in text and "Forbidden" not in text, text  # its Role sufficed

    # with the operator stopped, deleting the owner still collects the children (no finalizer)
    assert "finalizers" not in _get(c, ns, "probeapp", "hello")["metadata"]
    c.kubectl("delete", "-n", ns, "probeapp", "hello", "--timeout=30s")
    c.kubectl("wait", "-n", ns, "--for=delete", "deployment/hello", "service/hello",
              "--timeout=60s")  # fmt: skip
    poll("the Pods gone",
         lambda: not json.loads(c.kubectl("get", "pods", "-n", ns, "-l",
                                          "app.kubernetes.io/instance=hello", "-o",
                                          "json").stdout)["items"], 90)  # fmt: skip


def test_operator_image_starts_as_in_cluster(embedded_cluster, namespace):
    """The image built from apps/probeapp-operator/Dockerfile, in operator.yaml's Pod (its
    ServiceAccount, non-root, read-only root filesystem), imports kopf and the handlers. (The
    operator itself cannot run in a Pod here: the real node's Pods do not reach the API server,
    which listens on loopback only; the tests above run it as the same ServiceAccount.)"""
    c = embedded_cluster
    if c.real_node is None:
        pytest.skip("needs the real node (containers)")
    import yaml

    deployment = yaml.safe_load((DEPLOY / "operator.yaml").read_text())
    pod_spec = deployment["spec"]["template"]["spec"]
    pod_spec["restartPolicy"] = "Never"
    pod_spec["containers"][0]["command"] = [
        "python", "-c",
        "import importlib.metadata as m, kopf, probeapp_operator.handlers; "
        "print('kopf', m.version('kopf'), 'handlers loaded')",
    ]  # fmt: skip
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "operator-image"},
           "spec": pod_spec}  # fmt: skip
    c.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(pod))
    phase = poll(
        "the Pod to finish",
        lambda: (
            (_get(c, namespace, "pod", "operator-image") or {}).get("status", {}).get("phase")
            in ("Succeeded", "Failed")
            and _get(c, namespace, "pod", "operator-image")["status"]["phase"]
        ),
        90,
    )
    logs = c.kubectl("logs", "-n", namespace, "operator-image").stdout
    assert phase == "Succeeded", logs
    assert "kopf 1.45.2 handlers loaded" in logs
