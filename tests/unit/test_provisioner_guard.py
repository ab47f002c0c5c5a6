"""The volume provisioner's path guard: it makes and removes folders directly under its root only.

These run on the real file system (a temporary folder standing for the cluster's state folder)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kubelab.embedded.provisioner import UnsafePath, VolumeRoot

NAME = "pvc-0f2b4c6d-1a2b-4c3d-8e9f-0123456789ab"


@pytest.fixture
def root(tmp_path: Path) -> VolumeRoot:
    cluster = tmp_path / "clusters" / "demo"
    cluster.mkdir(parents=True)
    r = VolumeRoot(cluster / "volumes", required_parent=cluster)
    r.ensure()
    return r


def test_make_and_remove_a_volume_folder(root: VolumeRoot) -> None:
    folder = root.make(NAME)
    assert folder == root.path / NAME and folder.is_dir()
    assert folder.stat().st_mode & 0o777 == 0o777
    (folder / "sub").mkdir()
    (folder / "sub" / "data.txt").write_text("x")
    root.remove(str(folder))
    assert not folder.exists()
    root.remove(str(folder))  # already gone: nothing to do


@pytest.mark.parametrize(
    "bad_root",
    ["/", "/tmp", "relative/volumes"],
)
def test_refuses_a_root_near_slash_or_relative(bad_root: str) -> None:
    with pytest.raises(UnsafePath):
        VolumeRoot(Path(bad_root))


def test_refuses_a_root_outside_the_cluster_folder(tmp_path: Path) -> None:
    (tmp_path / "cluster").mkdir()
    with pytest.raises(UnsafePath, match="not inside"):
        VolumeRoot(tmp_path / "elsewhere" / "volumes", required_parent=tmp_path / "cluster")
    with pytest.raises(UnsafePath, match="not inside"):  # the cluster folder itself
        VolumeRoot(tmp_path / "cluster", required_parent=tmp_path / "cluster")


def test_cannot_remove_anything_outside_its_root(root: VolumeRoot, tmp_path: Path) -> None:
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    sibling = root.path.parent / NAME  # right name, wrong folder
    sibling.mkdir()
    for path in (
        str(outside),
        str(sibling),
        "/",
        "/etc",
        f"{root.path}/../{NAME}",
        f"{root.path}/{NAME}/..",
        f"{root.path}//{NAME}",
        f"{root.path}/{NAME}/nested",
        f"{root.path}/not-a-volume",
        str(root.path),
        NAME,  # relative
    ):
        with pytest.raises(UnsafePath):
            root.remove(path)
    assert (outside / "keep.txt").read_text() == "keep"
    assert sibling.is_dir()
    assert root.path.is_dir()


def test_a_link_in_the_root_is_never_followed(root: VolumeRoot, tmp_path: Path) -> None:
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    link = root.path / NAME
    os.symlink(outside, link)
    with pytest.raises(UnsafePath, match="link"):
        root.remove(str(link))
    with pytest.raises(UnsafePath, match="link"):
        root.make(NAME)
    assert (outside / "keep.txt").read_text() == "keep"
    # a link INSIDE a volume folder is removed as a link; its target stays
    link.unlink()
    folder = root.make(NAME)
    os.symlink(outside, folder / "escape")
    root.remove(str(folder))
    assert not folder.exists()
    assert (outside / "keep.txt").read_text() == "keep"


def test_names_must_be_volume_names(root: VolumeRoot) -> None:
    for bad in ("", "..", "pvc-../x", "pvc-1", f"{NAME}/x", "/etc", "pvc-" + "Z" * 36):
        with pytest.raises(UnsafePath):
            root.folder(bad)
