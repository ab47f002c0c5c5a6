"""What a ProbeApp should own, as plain objects: no API calls here, so it is testable alone.

A ProbeApp named N gets a Deployment N and a Service N (port 80 → the app's 8080), both labelled
app.kubernetes.io/managed-by=probeapp-operator and app.kubernetes.io/instance=N, and both owned
by the ProbeApp (the ownerReference is added by the caller, which knows the owner's uid).
"""

from __future__ import annotations

from typing import Any

from probeapp_operator import MANAGER

IMAGE = "localhost/kubelab/probe-test-app"
DEFAULTS = {"replicas": 1, "version": "v1"}


def labels(name: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "probe-test-app",
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/managed-by": MANAGER,
    }


def selector(name: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": "probe-test-app", "app.kubernetes.io/instance": name}


def desired(name: str, spec: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(Deployment, Service) for a ProbeApp's spec (the CRD's schema has validated it)."""
    replicas = int(spec.get("replicas", DEFAULTS["replicas"]))
    version = str(spec.get("version", DEFAULTS["version"]))
    probe = {"port": 8080}
    container = {
        "name": "probe-test-app",
        "image": f"{IMAGE}:{version}",
        "ports": [{"name": "http", "containerPort": 8080}],
        "resources": {"requests": {"cpu": "50m", "memory": "40Mi"}},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "livenessProbe": {"httpGet": {"path": "/livez", **probe}, "periodSeconds": 10},
        "readinessProbe": {"httpGet": {"path": "/readyz", **probe}, "periodSeconds": 5},
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels(name)},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector(name)},
            "template": {
                "metadata": {"labels": labels(name)},
                "spec": {
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 10001,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [container],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": labels(name)},
        "spec": {
            "selector": selector(name),
            "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
        },
    }
    return deployment, service


def status_from(deployment: dict[str, Any] | None, generation: int | None) -> dict[str, Any]:
    """The ProbeApp's status, read from its Deployment (None: not there yet)."""
    spec = (deployment or {}).get("spec") or {}
    st = (deployment or {}).get("status") or {}
    want = int(spec.get("replicas", 0) or 0)
    ready = int(st.get("readyReplicas", 0) or 0)
    rolled = (
        deployment is not None
        and st.get("observedGeneration") == (deployment.get("metadata") or {}).get("generation")
        and int(st.get("updatedReplicas", 0) or 0) == want
    )
    ok = rolled and ready == want
    if deployment is None:
        reason, message = "Creating", "the Deployment does not exist yet"
    elif ok:
        reason, message = "AllReplicasReady", f"{ready}/{want} replicas ready"
    else:
        reason, message = "Progressing", f"{ready}/{want} replicas ready"
    return {
        "replicas": want,
        "readyReplicas": ready,
        "observedGeneration": generation,
        "conditions": [
            {"type": "Ready", "status": "True" if ok else "False", "reason": reason,
             "message": message}
        ],
    }  # fmt: skip


def drifted(deployment: dict[str, Any], spec: dict[str, Any]) -> bool:
    """Whether someone changed what the operator owns in the Deployment (replicas or image)."""
    want, _ = desired(deployment["metadata"]["name"], spec)
    have_spec = deployment.get("spec") or {}
    have = [c.get("image") for c in have_spec["template"]["spec"].get("containers", [])]
    return have_spec.get("replicas") != want["spec"]["replicas"] or have != [
        c["image"] for c in want["spec"]["template"]["spec"]["containers"]
    ]
