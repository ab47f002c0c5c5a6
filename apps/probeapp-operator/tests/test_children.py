"""What the operator wants a ProbeApp to own, and the status it reports (no cluster needed; the
operator against a real API server: tests/e2e/test_probeapp_operator.py)."""

from __future__ import annotations

import copy

from probeapp_operator.children import desired, drifted, status_from


def test_children_follow_the_spec():
    deployment, service = desired("hello", {"replicas": 3, "version": "v2"})
    assert deployment["metadata"]["name"] == service["metadata"]["name"] == "hello"
    assert deployment["spec"]["replicas"] == 3
    pod = deployment["spec"]["template"]
    assert pod["spec"]["containers"][0]["image"] == "localhost/kubelab/probe-test-app:v2"
    # the Service selects exactly the Deployment's Pods
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert deployment["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]
    assert service["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http"}]


def test_defaults_match_the_crd():
    deployment, _ = desired("hello", {})
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":v1")


def test_pods_are_non_root_with_requests_and_probes():
    deployment, _ = desired("hello", {"replicas": 1, "version": "v1"})
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    assert container["resources"]["requests"] == {"cpu": "50m", "memory": "40Mi"}
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_drift_is_replicas_or_image():
    spec = {"replicas": 2, "version": "v1"}
    deployment, _ = desired("hello", spec)
    assert not drifted(deployment, spec)
    scaled = copy.deepcopy(deployment)
    scaled["spec"]["replicas"] = 1
    assert drifted(scaled, spec)
    assert drifted(deployment, {"replicas": 2, "version": "v2"})


def _live(replicas: int, ready: int, updated: int, generation: int = 2, observed: int = 2):
    return {
        "metadata": {"name": "hello", "generation": generation},
        "spec": {"replicas": replicas},
        "status": {"observedGeneration": observed, "readyReplicas": ready,
                   "updatedReplicas": updated},
    }  # fmt: skip


def test_status_ready_only_when_rolled_out_and_all_ready():
    ok = status_from(_live(2, 2, 2), 5)
    assert ok["replicas"] == 2 and ok["readyReplicas"] == 2 and ok["observedGeneration"] == 5
    assert ok["conditions"][0] == {"type": "Ready", "status": "True", "reason":
                                   "AllReplicasReady", "message": "2/2 replicas ready"}  # fmt: skip
    assert status_from(_live(3, 2, 3), 1)["conditions"][0]["status"] == "False"
    # the old ReplicaSet's Pods are ready but the new template is not rolled out yet
    assert status_from(_live(2, 2, 1), 1)["conditions"][0]["reason"] == "Progressing"
    assert status_from(_live(2, 2, 2, observed=1), 1)["conditions"][0]["status"] == "False"


def test_status_without_a_deployment():
    st = status_from(None, 1)
    assert st["readyReplicas"] == 0
    assert st["conditions"][0]["reason"] == "Creating"
