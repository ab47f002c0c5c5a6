"""`kubelab images build|load`: the commands per app and per flavour. No Docker engine runs on
our machines, so these tests check the commands produced; none claims that a build ran."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import yaml

from kubelab.cluster.flavour import FLAVOURS
from kubelab.errors import KubelabError
from kubelab.images import apps_root, build_commands, images, load_commands

REPO = Path(__file__).resolve().parents[2]


def fake_app(root: Path, name: str, tags: str) -> None:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "pyproject.toml").write_text(
        f'[project]\nname = "{name}"\n[tool.kubelab.image]\nname = "kubelab/{name}"\n'
        f"[tool.kubelab.image.tags]\n{tags}\n"
    )


def test_build_commands_tag_each_image_with_its_build_args(tmp_path):
    fake_app(tmp_path, "web", 'v1 = { APP_VERSION = "v1" }\nv2 = { APP_VERSION = "v2" }')
    assert build_commands(root=tmp_path) == [
        [
            "docker",
            "build",
            "--tag",
            "kubelab/web:v1",
            "--build-arg",
            "APP_VERSION=v1",
            str(tmp_path / "web"),
        ],
        [
            "docker",
            "build",
            "--tag",
            "kubelab/web:v2",
            "--build-arg",
            "APP_VERSION=v2",
            str(tmp_path / "web"),
        ],
    ]


def test_unknown_app_names_the_known_ones(tmp_path):
    fake_app(tmp_path, "web", "v1 = {}")
    with pytest.raises(KubelabError, match="the apps are: web"):
        build_commands("nope", root=tmp_path)


@pytest.mark.parametrize(
    ("flavour", "context", "expected"),
    [
        ("kind", "kind-lab", [["kind", "load", "docker-image", "--name", "lab", "kubelab/web:v1"]]),
        ("k3d", "k3d-lab", [["k3d", "image", "import", "--cluster", "lab", "kubelab/web:v1"]]),
        (
            "minikube",
            "minikube",
            [["minikube", "--profile", "minikube", "image", "load", "kubelab/web:v1"]],
        ),
        ("docker-desktop", "docker-desktop", []),
        ("orbstack", "orbstack", []),
        ("rancher-desktop", "rancher-desktop", []),
        ("embedded", "kwok-kubelab", []),
    ],
)
def test_load_commands_per_flavour(tmp_path, flavour, context, expected):
    fake_app(tmp_path, "web", "v1 = {}")
    assert load_commands(FLAVOURS[flavour], context, root=tmp_path) == expected


def test_every_image_a_lab_uses_is_built_by_an_app():
    built = {image.ref for image in images(root=apps_root())}
    used = set()
    for manifest in (REPO / "labs").glob("*/*.yaml"):
        for doc in yaml.safe_load_all(manifest.read_text()):
            text = yaml.safe_dump(doc)
            used |= {
                line.split("image:", 1)[1].strip().strip("'\"")
                for line in text.splitlines()
                if "image: kubelab/" in line
            }
    assert used, "no lab uses a kubelab/ image"
    assert used <= built, f"images used by labs but built by no app: {sorted(used - built)}"


def test_every_app_declares_an_image_with_a_dockerfile():
    for pyproject in sorted((REPO / "apps").glob("*/pyproject.toml")):
        data = tomllib.loads(pyproject.read_text())
        assert data["tool"]["kubelab"]["image"]["tags"], pyproject
        assert (pyproject.parent / "Dockerfile").is_file(), pyproject.parent


def test_build_dry_run_prints_the_commands(kubelab_cli):
    proc = kubelab_cli("images", "build", "probe-test-app", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "docker build --tag localhost/kubelab/probe-test-app:v1 --build-arg APP_VERSION=v1" in proc.stdout
    assert "localhost/kubelab/probe-test-app:v2" in proc.stdout
