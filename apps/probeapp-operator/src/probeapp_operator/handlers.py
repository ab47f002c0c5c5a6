"""The kopf handlers: ProbeApp created/changed/resumed → apply its children; a child Deployment
changed (or deleted by hand) → report its readiness in the ProbeApp's status (or re-create it).

There is no deletion handler on purpose: the children carry ownerReferences to the ProbeApp, so
Kubernetes' garbage collector removes them, and kopf needs no finalizer (a ProbeApp can be
deleted while the operator is down).
"""

from __future__ import annotations

from typing import Any

import kopf
import kubernetes
from kubernetes.client.exceptions import ApiException

from probeapp_operator import GROUP, KIND, MANAGER, PLURAL, VERSION
from probeapp_operator.children import desired, drifted, status_from

APPLY = "application/apply-patch+yaml"


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    # Watch only what the handlers name (no cluster-wide scan of CRDs and namespaces): the
    # operator then needs no ClusterRole, only a Role in the namespace it serves.
    settings.scanning.disabled = True
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="kubelab.dev")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix="kubelab.dev")
    settings.watching.server_timeout = 60  # re-list now and then, as every controller does
    try:
        kubernetes.config.load_incluster_config()
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config()


def _apply(name: str, namespace: str, owner: kopf.Body, logger: kopf.Logger) -> None:
    deployment, service = desired(name, owner.get("spec") or {})
    kopf.adopt([deployment, service], owner=owner)  # ownerReferences (controller), namespace
    apps, core = kubernetes.client.AppsV1Api(), kubernetes.client.CoreV1Api()
    opts = {"field_manager": MANAGER, "force": True, "_content_type": APPLY}
    apps.patch_namespaced_deployment(name, namespace, deployment, **opts)
    core.patch_namespaced_service(name, namespace, service, **opts)
    replicas = deployment["spec"]["replicas"]
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    logger.info(f"applied Deployment {name} ({replicas} replicas of {image}) and Service {name}")


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL, field="spec")
def reconcile(name: str, namespace: str, body: kopf.Body, logger: kopf.Logger, **_: Any) -> None:
    _apply(name, namespace, body, logger)


def _owner(meta: dict[str, Any]) -> str | None:
    for ref in meta.get("ownerReferences") or []:
        if ref.get("kind") == KIND and ref.get("apiVersion") == f"{GROUP}/{VERSION}":
            return str(ref["name"])
    return None


@kopf.on.event("apps", "v1", "deployments", labels={"app.kubernetes.io/managed-by": MANAGER})
def child_changed(
    type: str, body: kopf.Body, namespace: str, logger: kopf.Logger, **_: Any
) -> None:
    owner_name = _owner(dict(body.get("metadata") or {}))
    if owner_name is None:
        return
    custom = kubernetes.client.CustomObjectsApi()
    try:
        owner = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, owner_name)
    except ApiException as exc:
        if exc.status == 404:  # the ProbeApp is gone: the garbage collector takes the child
            return
        raise
    if (owner.get("metadata") or {}).get("deletionTimestamp"):
        return
    if type == "DELETED":  # someone deleted the child by hand: put it back
        logger.info(f"Deployment {owner_name} was deleted; re-creating it")
        _apply(owner_name, namespace, kopf.Body(owner), logger)
        return
    if drifted(dict(body), owner.get("spec") or {}):  # e.g. `kubectl scale`: set it back
        logger.info(f"Deployment {owner_name} differs from the ProbeApp's spec; re-applying")
        _apply(owner_name, namespace, kopf.Body(owner), logger)
        return
    status = status_from(dict(body), owner["metadata"].get("generation"))
    if (owner.get("status") or {}) != {**(owner.get("status") or {}), **status}:
        custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, PLURAL, owner_name, {"status": status}
        )
