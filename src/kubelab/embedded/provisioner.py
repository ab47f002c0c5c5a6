"""kubelab's local volume provisioner: dynamic PersistentVolumes for the embedded cluster.

A small external provisioner, as Docker Desktop's hostpath, kind's and k3d's local-path and
minikube's storage-provisioner are for theirs. It runs as a host process of the embedded cluster
(started and stopped by :mod:`kubelab.embedded.cluster`) and does what the Kubernetes external
provisioner contract asks:

- it makes sure the default StorageClass ``standard`` exists (provisioner
  ``kubelab.dev/local-path``, ``WaitForFirstConsumer``, reclaim policy ``Delete``);
- for a claim of one of its classes that the PV controller handed to it (annotation
  ``volume.kubernetes.io/storage-provisioner``) it makes a folder and a ``local`` PersistentVolume
  bound to that claim, with node affinity for the node the scheduler chose
  (``volume.kubernetes.io/selected-node``; with ``Immediate`` binding: the real node if there is
  one, else the first Ready node);
- a volume it made that is ``Released`` with reclaim policy ``Delete`` loses its folder, then the
  PersistentVolume; with ``Retain`` both stay (and the folder stays even when someone deletes
  the PersistentVolume, as a disk would: it goes with the cluster, at ``cluster down``).

Every folder lives directly under ONE root, the cluster's own state folder
(``<cluster dir>/volumes``). :class:`VolumeRoot` is the only code that makes or removes folders
and refuses any path that is not a direct child of that root named like a volume.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import shutil
import signal
import stat
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

PROVISIONER = "kubelab.dev/local-path"
DEFAULT_CLASS = "standard"
USER = "kubelab:local-path-provisioner"  # the identity it authenticates as (its certificate's CN)
ANN_SELECTED_NODE = "volume.kubernetes.io/selected-node"
ANN_STORAGE_PROVISIONER = "volume.kubernetes.io/storage-provisioner"
ANN_BETA_STORAGE_PROVISIONER = "volume.beta.kubernetes.io/storage-provisioner"
ANN_PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"
ANN_DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class"
REAL_NODE_LABEL = "kubelab.dev/node=real"
RESYNC_S = 10.0  # a full pass at least this often, besides the one each change triggers
# the only names a volume folder may have: the PV's name, pvc-<the claim's uid>
VOLUME_NAME = re.compile(r"pvc-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

log = logging.getLogger("kubelab.provisioner")


class UnsafePath(Exception):
    """A folder the provisioner was asked to make or remove is not one of its own."""


class VolumeRoot:
    """The one folder under which volumes are made and removed: the guard of every path."""

    def __init__(self, root: Path, *, required_parent: Path | None = None) -> None:
        if not root.is_absolute():
            raise UnsafePath(f"the volume root must be an absolute path, not {root}")
        resolved = Path(os.path.realpath(root))
        if len(resolved.parts) < 3:  # never "/", "/var", "/home" ...
            raise UnsafePath(f"refusing {resolved} as the volume root: too close to /")
        if required_parent is not None:
            parent = Path(os.path.realpath(required_parent))
            if parent == resolved or parent not in resolved.parents:
                raise UnsafePath(f"the volume root {resolved} is not inside {parent}")
        self.path = resolved

    def ensure(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        os.chmod(self.path, 0o711)  # others may pass through to a volume, not list them

    def folder(self, name: str) -> Path:
        """The folder of volume `name` (which must look like a volume's name)."""
        if not VOLUME_NAME.fullmatch(name or ""):
            raise UnsafePath(f"{name!r} is not a volume name (pvc-<uid>)")
        return self.path / name

    def check(self, path: str | os.PathLike[str]) -> Path:
        """`path` if it is a volume folder directly under the root; UnsafePath otherwise.

        Judged on the text (absolute, no `..`, the root as its parent, a volume's name) AND on the
        file system (the real path is the same, and it is a folder, not a link)."""
        text = os.fspath(path)
        candidate = Path(text)
        if not candidate.is_absolute() or ".." in candidate.parts or "//" in text:
            raise UnsafePath(f"{text} is not an absolute, normalised path")
        if candidate.parent != self.path:
            raise UnsafePath(f"{text} is not directly under the volume root {self.path}")
        self.folder(candidate.name)  # the name check
        if os.path.lexists(candidate):
            info = os.lstat(candidate)
            if not stat.S_ISDIR(info.st_mode):
                raise UnsafePath(f"{text} is not a folder (a link or a file): left alone")
            if Path(os.path.realpath(candidate)) != candidate:
                raise UnsafePath(f"{text} resolves elsewhere: left alone")
        return candidate

    def make(self, name: str) -> Path:
        folder = self.check(self.folder(name))
        folder.mkdir(exist_ok=True)
        # any uid may write (as local-path does): a Pod's user is not known in advance
        os.chmod(folder, 0o777)
        return folder

    def remove(self, path: str | os.PathLike[str]) -> None:
        folder = self.check(path)
        if not os.path.lexists(folder):
            return
        # rmtree does not follow links inside the folder (fd-based on Linux)
        shutil.rmtree(folder)

    def names(self) -> list[str]:
        if not self.path.is_dir():
            return []
        return sorted(p.name for p in self.path.iterdir() if VOLUME_NAME.fullmatch(p.name))


# ---------------------------------------------------------------- the objects


def default_class() -> dict[str, Any]:
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {
            "name": DEFAULT_CLASS,
            "annotations": {ANN_DEFAULT_CLASS: "true"},
            "labels": {"app.kubernetes.io/managed-by": "kubelab"},
        },
        "provisioner": PROVISIONER,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "WaitForFirstConsumer",
        "allowVolumeExpansion": False,
    }


RBAC_MANIFEST = f"""apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {{name: "kubelab:local-path-provisioner"}}
rules:
- apiGroups: [""]
  resources: [persistentvolumes]
  verbs: [get, list, watch, create, delete]
- apiGroups: [""]
  resources: [persistentvolumeclaims]
  verbs: [get, list, watch]
- apiGroups: [storage.k8s.io]
  resources: [storageclasses]
  verbs: [get, list, watch, create]
- apiGroups: [""]
  resources: [nodes]
  verbs: [get, list]
- apiGroups: [""]
  resources: [events]
  verbs: [create, patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: "kubelab:local-path-provisioner"}}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: "kubelab:local-path-provisioner"
subjects: [{{apiGroup: rbac.authorization.k8s.io, kind: User, name: "{USER}"}}]
"""


def volume_for(
    claim: dict[str, Any], klass: dict[str, Any], node: dict[str, Any], folder: Path
) -> dict[str, Any]:
    """The PersistentVolume for a claim: a local volume on `node`, pre-bound to the claim."""
    meta, spec = claim["metadata"], claim.get("spec") or {}
    labels = node["metadata"].get("labels") or {}
    hostname = labels.get("kubernetes.io/hostname", node["metadata"]["name"])
    pv: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": folder.name,
            "annotations": {ANN_PROVISIONED_BY: PROVISIONER},
            "labels": {"app.kubernetes.io/managed-by": "kubelab"},
        },
        "spec": {
            "capacity": {"storage": spec["resources"]["requests"]["storage"]},
            "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": klass.get("reclaimPolicy") or "Delete",
            "storageClassName": klass["metadata"]["name"],
            "volumeMode": "Filesystem",
            "claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "namespace": meta["namespace"],
                "name": meta["name"],
                "uid": meta["uid"],
            },
            "local": {"path": str(folder)},
            "nodeAffinity": {
                "required": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {
                                    "key": "kubernetes.io/hostname",
                                    "operator": "In",
                                    "values": [hostname],
                                }
                            ]
                        }
                    ]
                }
            },
        },
    }
    if klass.get("mountOptions"):
        pv["spec"]["mountOptions"] = klass["mountOptions"]
    return pv


# ---------------------------------------------------------------- the controller


class Provisioner:
    """Reconciles claims and volumes of this provisioner's classes against one VolumeRoot."""

    def __init__(self, api_client: Any, root: VolumeRoot) -> None:
        from kubernetes import client

        self.api = api_client
        self.core = client.CoreV1Api(api_client)
        self.storage = client.StorageV1Api(api_client)
        self.root = root
        self._ApiException = client.ApiException

    # -- reading (as plain dicts: the same shapes as the manifests above)

    def _list(self, method: Any, **kwargs: Any) -> list[dict[str, Any]]:
        result = method(_preload_content=False, _request_timeout=(5, 20), **kwargs)
        return json.loads(result.data).get("items", [])

    def ensure_default_class(self) -> None:
        try:
            self.storage.create_storage_class(default_class(), _request_timeout=(5, 20))
            log.info("created the default StorageClass %s", DEFAULT_CLASS)
        except self._ApiException as exc:
            if exc.status != 409:  # it exists: a learner's edits to it are theirs
                raise

    def reconcile(self) -> None:
        classes = {
            c["metadata"]["name"]: c
            for c in self._list(self.storage.list_storage_class)
            if c.get("provisioner") == PROVISIONER
        }
        volumes = self._list(self.core.list_persistent_volume)
        ours = [
            v
            for v in volumes
            if (v["metadata"].get("annotations") or {}).get(ANN_PROVISIONED_BY) == PROVISIONER
        ]
        for volume in ours:
            self._reclaim(volume)
        existing = {v["metadata"]["name"] for v in volumes}
        for claim in self._list(self.core.list_persistent_volume_claim_for_all_namespaces):
            self._provision(claim, classes, existing)

    def _reclaim(self, volume: dict[str, Any]) -> None:
        spec, status = volume.get("spec") or {}, volume.get("status") or {}
        if status.get("phase") != "Released":
            return
        if spec.get("persistentVolumeReclaimPolicy") != "Delete":
            return  # Retain: the volume and its data stay until someone deletes them
        name = volume["metadata"]["name"]
        path = (spec.get("local") or {}).get("path") or (spec.get("hostPath") or {}).get("path")
        try:
            if path:
                self.root.remove(path)
        except (UnsafePath, OSError) as exc:
            log.error("not deleting %s: %s", name, exc)
            self._event(volume, "VolumeFailedDelete", f"{PROVISIONER} left it: {exc}", "Warning")
            return
        with contextlib.suppress(self._ApiException):
            self.core.delete_persistent_volume(name, _request_timeout=(5, 20))
            log.info("deleted %s and its folder (reclaim policy Delete)", name)

    def _provision(
        self, claim: dict[str, Any], classes: dict[str, dict[str, Any]], existing: set[str]
    ) -> None:
        meta, spec = claim["metadata"], claim.get("spec") or {}
        ann = meta.get("annotations") or {}
        if spec.get("volumeName") or (claim.get("status") or {}).get("phase") != "Pending":
            return
        klass = classes.get(spec.get("storageClassName") or "")
        if klass is None:
            return
        handed = PROVISIONER in (ann.get(ANN_STORAGE_PROVISIONER),
                                 ann.get(ANN_BETA_STORAGE_PROVISIONER))  # fmt: skip
        if not handed:
            return  # the PV controller has not asked for a volume (yet)
        name = f"pvc-{meta['uid']}"
        if name in existing:
            return
        if spec.get("volumeMode") == "Block" or spec.get("dataSource"):
            self._event(claim, "ProvisioningFailed",
                        f"{PROVISIONER} makes Filesystem volumes only, without a data source",
                        "Warning")  # fmt: skip
            return
        node = self._node_for(claim, klass)
        if node is None:
            return
        folder = self.root.make(name)
        try:
            self.core.create_persistent_volume(
                volume_for(claim, klass, node, folder), _request_timeout=(5, 20)
            )
        except self._ApiException as exc:
            if exc.status != 409:
                self.root.remove(folder)
                self._event(claim, "ProvisioningFailed", f"creating {name}: {exc.reason}",
                            "Warning")  # fmt: skip
                return
        existing.add(name)
        where = node["metadata"]["name"]
        log.info("provisioned %s for %s/%s on %s", name, meta["namespace"], meta["name"], where)
        self._event(
            claim, "ProvisioningSucceeded", f"Provisioned volume {name} on node {where} ({folder})"
        )

    def _node_for(self, claim: dict[str, Any], klass: dict[str, Any]) -> dict[str, Any] | None:
        selected = (claim["metadata"].get("annotations") or {}).get(ANN_SELECTED_NODE)
        if klass.get("volumeBindingMode") == "WaitForFirstConsumer":
            if not selected:
                return None  # the scheduler picks the node when a Pod uses the claim
            try:
                resp = self.core.read_node(selected, _preload_content=False,
                                           _request_timeout=(5, 20))  # fmt: skip
            except self._ApiException:
                return None
            return json.loads(resp.data)
        nodes = self._list(self.core.list_node, label_selector=REAL_NODE_LABEL) or self._list(
            self.core.list_node
        )
        ready = [
            n for n in nodes
            if any(c.get("type") == "Ready" and c.get("status") == "True"
                   for c in (n.get("status") or {}).get("conditions") or [])
        ]  # fmt: skip
        return sorted(ready, key=lambda n: n["metadata"]["name"])[0] if ready else None

    def _event(self, obj: dict[str, Any], reason: str, message: str, kind: str = "Normal") -> None:
        meta = obj["metadata"]
        namespace = meta.get("namespace") or "default"
        now = datetime.now(UTC)
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": namespace},
            "involvedObject": {
                "apiVersion": "v1",
                "kind": obj.get("kind") or "PersistentVolumeClaim",
                "name": meta["name"],
                "namespace": meta.get("namespace"),
                "uid": meta.get("uid"),
            },
            "reason": reason,
            "message": message,
            "type": kind,
            "source": {"component": PROVISIONER},
            "firstTimestamp": now.isoformat(),
            "lastTimestamp": now.isoformat(),
            "count": 1,
        }
        with contextlib.suppress(Exception):
            self.core.create_namespaced_event(namespace, event, _request_timeout=(5, 10))


def _watch(method: Any, wake: threading.Event, stop: threading.Event) -> None:
    """Wake the reconcile loop on every change of one kind (re-watching as watches end)."""
    from kubernetes import watch

    while not stop.is_set():
        try:
            for _ in watch.Watch().stream(method, timeout_seconds=60, _request_timeout=(5, 90)):
                wake.set()
                if stop.is_set():
                    return
        except Exception as exc:  # the API server restarting, a dropped connection
            log.debug("watch ended: %s", exc)
            stop.wait(1)


def run(kubeconfig: Path, root: VolumeRoot, stop: threading.Event | None = None) -> None:
    """Serve until `stop` is set (or SIGTERM/SIGINT when run as a program)."""
    from kubernetes import client, config

    stop = stop or threading.Event()
    api_client = config.new_client_from_config(config_file=str(kubeconfig))
    prov = Provisioner(api_client, root)
    root.ensure()
    wake = threading.Event()
    for method in (prov.core.list_persistent_volume_claim_for_all_namespaces,
                   prov.core.list_persistent_volume):  # fmt: skip
        threading.Thread(target=_watch, args=(method, wake, stop), daemon=True).start()
    class_ready = False
    log.info("serving %s; volumes under %s", PROVISIONER, root.path)
    while not stop.is_set():
        wake.clear()
        try:
            if not class_ready:
                prov.ensure_default_class()
                class_ready = True
            prov.reconcile()
        except Exception as exc:  # keep serving: the next change or resync tries again
            log.warning("reconcile failed: %s", exc)
            stop.wait(1)
        wake.wait(RESYNC_S)
    client.ApiClient.close(api_client)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kubelab.embedded.provisioner",
        description="kubelab's local volume provisioner for the embedded cluster",
    )
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--root", type=Path, required=True, help="the folder volumes live in")
    parser.add_argument(
        "--cluster-dir", type=Path, required=True, help="the cluster's state folder (holds root)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr
    )
    try:
        root = VolumeRoot(args.root, required_parent=args.cluster_dir)
    except UnsafePath as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    run(args.kubeconfig, root, stop)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
