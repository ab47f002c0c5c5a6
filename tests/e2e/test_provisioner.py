"""The embedded cluster's volume provisioner against the real API server: the default
StorageClass, WaitForFirstConsumer, local volumes with node affinity, Delete and Retain, the
guard of its root, and its process going with `cluster down`."""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from kubelab.embedded import cluster, provisioner

pytestmark = pytest.mark.e2e


def _wait(what: str, check: Any, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"not true within {timeout}s: {what}")


def _get(c: Any, *args: str) -> dict[str, Any] | None:
    proc = c.kubectl("get", *args, "-o", "json", check=False)
    return json.loads(proc.stdout) if proc.returncode == 0 else None


def _claim_and_pod(name: str, klass: str) -> str:
    return f"""apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: {name}}}
spec:
  storageClassName: {klass}
  accessModes: [ReadWriteOnce]
  resources: {{requests: {{storage: 64Mi}}}}
---
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: c
    image: docker.io/library/busybox:1.37.0
    command: [sh, -c, "echo hello > /data/hello.txt; trap 'exit 0' TERM; sleep 3600 & wait"]
    volumeMounts: [{{name: v, mountPath: /data}}]
  volumes: [{{name: v, persistentVolumeClaim: {{claimName: {name}}}}}]
"""


def test_the_cluster_has_a_default_storageclass(embedded_cluster: Any) -> None:
    sc = _get(embedded_cluster, "storageclass", provisioner.DEFAULT_CLASS)
    assert sc is not None
    assert sc["provisioner"] == provisioner.PROVISIONER
    assert sc["volumeBindingMode"] == "WaitForFirstConsumer"
    assert sc["reclaimPolicy"] == "Delete"
    assert sc["metadata"]["annotations"][provisioner.ANN_DEFAULT_CLASS] == "true"


def test_wait_for_first_consumer_then_a_local_volume_on_the_chosen_node(
    embedded_cluster: Any,
) -> None:
    c = embedded_cluster
    name = f"t-{uuid.uuid4().hex[:6]}"
    claim, pod = _claim_and_pod(name, provisioner.DEFAULT_CLASS).split("---\n")
    c.kubectl("apply", "-f", "-", input=claim)
    try:
        # no Pod uses it: the claim waits, and nothing was provisioned
        _wait("WaitForFirstConsumer event", lambda: "WaitForFirstConsumer" in c.kubectl(
            "get", "events", "--field-selector", f"involvedObject.name={name}",
            "-o", "jsonpath={.items[*].reason}").stdout)  # fmt: skip
        pvc = _get(c, "pvc", name)
        assert pvc["status"]["phase"] == "Pending"
        assert "volumeName" not in pvc["spec"]
        assert provisioner.ANN_SELECTED_NODE not in pvc["metadata"].get("annotations", {})
        c.kubectl("apply", "-f", "-", input=pod)
        pvc = _wait("claim Bound", lambda: (p := _get(c, "pvc", name))
                    and p["status"]["phase"] == "Bound" and p)  # fmt: skip
        node = pvc["metadata"]["annotations"][provisioner.ANN_SELECTED_NODE]
        pv = _get(c, "pv", pvc["spec"]["volumeName"])
        assert pv["metadata"]["name"] == f"pvc-{pvc['metadata']['uid']}"
        assert pv["metadata"]["annotations"][provisioner.ANN_PROVISIONED_BY] == (
            provisioner.PROVISIONER
        )
        assert pv["spec"]["claimRef"]["name"] == name
        assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Delete"
        terms = pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"]
        assert terms[0]["matchExpressions"][0]["values"] == [node]
        folder = Path(pv["spec"]["local"]["path"])
        assert folder.parent == cluster.volumes_dir(c.name)
        assert folder.is_dir()
        if c.real_node:  # the container wrote into the folder on the host
            _wait("file written", lambda: (folder / "hello.txt").exists(), 60)
        # the claim goes: the volume and its folder go (reclaim policy Delete)
        c.kubectl("delete", "pod", name, "--wait=true", "--grace-period=1")
        c.kubectl("delete", "pvc", name, "--wait=true")
        _wait("PV deleted", lambda: _get(c, "pv", pv["metadata"]["name"]) is None)
        assert not folder.exists()
    finally:
        c.kubectl("delete", "pod,pvc", name, "--ignore-not-found", "--grace-period=1",
                  check=False)  # fmt: skip


def test_retain_keeps_the_volume_and_its_folder(embedded_cluster: Any) -> None:
    c = embedded_cluster
    name = f"r-{uuid.uuid4().hex[:6]}"
    klass = f"retain-{name}"
    c.kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": klass}, "provisioner": provisioner.PROVISIONER,
        "reclaimPolicy": "Retain", "volumeBindingMode": "WaitForFirstConsumer",
    }))  # fmt: skip
    pv_name = ""
    try:
        c.kubectl("apply", "-f", "-", input=_claim_and_pod(name, klass))
        pvc = _wait("claim Bound", lambda: (p := _get(c, "pvc", name))
                    and p["status"]["phase"] == "Bound" and p)  # fmt: skip
        pv_name = pvc["spec"]["volumeName"]
        folder = Path(_get(c, "pv", pv_name)["spec"]["local"]["path"])
        c.kubectl("delete", "pod", name, "--wait=true", "--grace-period=1")
        c.kubectl("delete", "pvc", name, "--wait=true")
        _wait("PV Released", lambda: (_get(c, "pv", pv_name) or {}).get("status", {}).get("phase")
              == "Released")  # fmt: skip
        # proof that the provisioner has looked at it since: a later claim got its volume (each
        # pass reclaims before it provisions); the Released volume is still there
        c.kubectl("apply", "-f", "-", input=_claim_and_pod(f"{name}-b", provisioner.DEFAULT_CLASS))
        _wait("later claim Bound", lambda: (_get(c, "pvc", f"{name}-b") or {}).get(
            "status", {}).get("phase") == "Bound")  # fmt: skip
        assert _get(c, "pv", pv_name)["status"]["phase"] == "Released"
        assert folder.is_dir()
        # the admin switches it to Delete: now it goes, folder and all
        c.kubectl("patch", "pv", pv_name, "-p",
                  '{"spec":{"persistentVolumeReclaimPolicy":"Delete"}}')  # fmt: skip
        _wait("PV deleted", lambda: _get(c, "pv", pv_name) is None)
        assert not folder.exists()
    finally:
        c.kubectl("delete", "pod,pvc", name, f"{name}-b", "--ignore-not-found",
                  "--grace-period=1", check=False)  # fmt: skip
        if pv_name:
            c.kubectl("delete", "pv", pv_name, "--ignore-not-found", check=False)
        c.kubectl("delete", "storageclass", klass, "--ignore-not-found", check=False)


def test_it_never_deletes_outside_its_root(embedded_cluster: Any, tmp_path: Path) -> None:
    """A Released volume of ours (by annotation) whose path points elsewhere: the folder stays,
    the PersistentVolume stays, and an event says why."""
    c = embedded_cluster
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "keep.txt").write_text("keep")
    pv_name = f"pvc-{uuid.uuid4()}"
    # a claimRef to a claim that does not exist: the PV controller makes it Released
    c.kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": pv_name,
                     "annotations": {provisioner.ANN_PROVISIONED_BY: provisioner.PROVISIONER}},
        "spec": {
            "capacity": {"storage": "1Mi"}, "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Delete", "storageClassName": "standard",
            "claimRef": {"namespace": "default", "name": "gone", "uid": str(uuid.uuid4())},
            "local": {"path": str(precious)},
            "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": ["nowhere"]}]}]}},
        },
    }))  # fmt: skip
    try:
        selector = f"involvedObject.name={pv_name}"
        reasons = ["get", "events", "-n", "default", "--field-selector", selector,
                   "-o", "jsonpath={.items[*].reason}"]  # fmt: skip
        _wait("refusal event", lambda: "VolumeFailedDelete" in c.kubectl(*reasons).stdout)
        assert (precious / "keep.txt").read_text() == "keep"
        assert _get(c, "pv", pv_name) is not None
    finally:
        c.kubectl("delete", "pv", pv_name, "--ignore-not-found", check=False)
    assert (precious / "keep.txt").read_text() == "keep"


def test_the_provisioner_comes_back_with_up_and_goes_with_down(
    embedded_cluster: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed, `cluster up` starts it again; `cluster down` leaves no process behind."""
    name = embedded_cluster.name
    pid = cluster._provisioner_pid(name)
    assert pid is not None
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    assert str(cluster.cluster_dir(name)).encode() in cmdline
    other = f"prov-{uuid.uuid4().hex[:6]}"
    monkeypatch.setenv("KUBECONFIG", str(embedded_cluster.kubeconfig.parent / "other-config"))
    try:
        cluster.up(nodes=1, name=other, progress=lambda _m: None)
        first = cluster._provisioner_pid(other)
        assert first is not None
        os.kill(first, 9)
        _wait("killed", lambda: cluster._provisioner_pid(other) is None, 10)
        cluster.up(nodes=1, name=other, progress=lambda _m: None)
        second = cluster._provisioner_pid(other)
        assert second is not None and second != first
    finally:
        cluster.down(name=other, progress=lambda _m: None)
    assert not cluster._alive(second)
    assert not cluster.cluster_dir(other).exists()
