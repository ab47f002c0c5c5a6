"""The real node's pieces that need no cluster: the image writer, the preflight, the configs."""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path

import pytest

from kubelab.embedded import cluster, hoststate, images, node


def _image(tmp_path: Path, name: str) -> Path:
    layer = images._layer_from_entries(
        [
            images.Entry("bin/hello", b"#!/bin/sh\necho hi\n", 0o755),
            images.Entry("bin/sh", link="/bin/busybox"),
            images.Entry("tmp", None, 0o1777),
        ]
    )
    return images.write_image(
        tmp_path / name, "localhost/kubelab/hello:v1", [layer], images.ImageConfig(cmd=["hello"])
    )


def test_image_archives_are_reproducible_and_complete(tmp_path: Path) -> None:
    first, second = _image(tmp_path, "a.tar"), _image(tmp_path, "b.tar")
    assert first.read_bytes() == second.read_bytes()
    with tarfile.open(first) as tar:
        names = set(tar.getnames())
        index = json.load(tar.extractfile("index.json"))  # type: ignore[arg-type]
        docker = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        manifest_desc = index["manifests"][0]
        assert manifest_desc["annotations"]["io.containerd.image.name"] == (
            "localhost/kubelab/hello:v1"
        )
        blob = tar.extractfile("blobs/sha256/" + manifest_desc["digest"].split(":")[1])
        manifest = json.loads(blob.read())  # type: ignore[union-attr]
        for desc in [manifest["config"], *manifest["layers"]]:
            data = tar.extractfile("blobs/sha256/" + desc["digest"].split(":")[1]).read()  # type: ignore[union-attr]
            assert hashlib.sha256(data).hexdigest() == desc["digest"].split(":")[1]
            assert len(data) == desc["size"]
    assert {"oci-layout", "index.json", "manifest.json"} <= names
    assert docker[0]["RepoTags"] == ["localhost/kubelab/hello:v1"]


def test_layers_have_parents_owner_root_and_mtime_zero() -> None:
    import io

    layer = images._layer_from_entries([images.Entry("a/b/c.txt", b"x")])
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == ["a", "a/b", "a/b/c.txt"]
    assert all(m.uid == 0 and m.gid == 0 and m.mtime == 0 for m in members)


def test_real_node_needs_linux_and_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(node.os, "geteuid", lambda: 1000)
    assert "root" in (node.unsupported_reason() or "")
    with pytest.raises(node.RealNodeError) as exc:
        node.preflight("any")
    assert "kind" in (exc.value.hint or "") and "k3d" in (exc.value.hint or "")


def test_up_with_real_node_as_non_root_starts_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("KUBELAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "config"))
    monkeypatch.setattr(node.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(cluster, "_require_binaries", lambda: tmp_path)
    with pytest.raises(node.RealNodeError):
        cluster.up(name="nonroot", real_node=True, progress=lambda _m: None)
    assert not cluster.cluster_dir("nonroot").exists()
    assert not (tmp_path / "config").exists()


def test_configs_keep_pods_on_the_machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBELAB_CACHE", str(tmp_path))
    paths = node.Paths("unit")
    cni = json.loads(node._cni_config(paths))
    bridge = cni["plugins"][0]
    assert bridge["ipMasq"] is False
    routes = [r["dst"] for r in bridge["ipam"]["routes"]]
    assert "0.0.0.0/0" not in routes and routes == [str(node.NODE_CIDR), node.SERVICE_CIDR]
    containerd = node._containerd_config(paths)
    assert "restrict_oom_score_adj = true" in containerd
    assert 'stream_server_address = "127.0.0.1"' in containerd
    kubelet = node._kubelet_config(paths, tmp_path / "ca.crt", (tmp_path / "c", tmp_path / "k"))
    assert "anonymous: {enabled: false}" in kubelet and "readOnlyPort: 0" in kubelet


def test_host_state_diff_ignores_only_what_it_is_told() -> None:
    before = {"links": ["eth0", "lo"], "sysctls": {"a": "1"}}
    after = {"links": ["eth0", "klh1", "lo"], "sysctls": {"a": "1"}}
    assert hoststate.diff(before, after, ignore=r"^klh") == {}
    assert hoststate.diff(before, after) == {"links": (before["links"], after["links"])}
    assert hoststate.diff(before, {**after, "sysctls": {"a": "2"}}, ignore=r"^klh")
