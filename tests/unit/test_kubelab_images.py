"""`kubelab images build|load`: the commands per app and per flavour. No Docker engine runs on
our machines, so these tests check the commands produced; none claims that a build ran."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from kubelab.errors import KubelabError
from kubelab.flavours import FLAVOURS
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


OWN_IMAGES = "localhost/kubelab/"
IMAGE_REF = re.compile(r"(?:image:\s*|--image[= ])[\"']?([\w./:@-]+)")


def test_labs_name_only_images_the_course_builds_or_pinned_third_party_ones():
    """Our images live under localhost/kubelab/ (no registry account can publish there) and are
    built by an app; anything else is a third-party image pinned to a version."""
    built = {image.ref for image in images(root=apps_root())}
    used = set()
    for path in (REPO / "labs").glob("*/*"):
        if path.suffix in (".yaml", ".yml", ".sh", ".md"):
            used |= set(IMAGE_REF.findall(path.read_text(encoding="utf-8")))
    ours = {ref for ref in used if "kubelab" in ref}
    assert ours, "no lab uses one of the course's images"
    assert all(ref.startswith(OWN_IMAGES) for ref in ours), sorted(ours)
    assert ours <= built, f"images used by labs but built by no app: {sorted(ours - built)}"
    unpinned = [
        ref for ref in used - ours if ":" not in ref.rsplit("/", 1)[-1] or ref.endswith(":latest")
    ]
    assert not unpinned, f"third-party images without a pinned tag: {unpinned}"


def test_every_app_declares_an_image_with_a_dockerfile():
    for pyproject in sorted((REPO / "apps").glob("*/pyproject.toml")):
        data = tomllib.loads(pyproject.read_text())
        assert data["tool"]["kubelab"]["image"]["tags"], pyproject
        assert (pyproject.parent / "Dockerfile").is_file(), pyproject.parent


def test_build_dry_run_prints_the_commands(kubelab_cli):
    proc = kubelab_cli("images", "build", "probe-test-app", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert (
        "docker build --tag localhost/kubelab/probe-test-app:v1 --build-arg APP_VERSION=v1"
        in proc.stdout
    )
    assert "localhost/kubelab/probe-test-app:v2" in proc.stdout


def test_load_commands_ask_the_flavour(tmp_path):
    """images.py knows no flavour: a new flavour module decides how images reach its nodes."""
    from kubelab.flavours.base import Flavour

    class Shipping(Flavour):
        def load_commands(self, context, refs):
            return [["ship", context, *refs]]

    fake_app(tmp_path, "web", "v1 = {}\nv2 = {}")
    flavour = Shipping(name="shipping", title="Shipping")
    assert load_commands(flavour, "ctx", root=tmp_path) == [
        ["ship", "ctx", "kubelab/web:v1", "kubelab/web:v2"]
    ]


def test_every_flavour_says_how_images_reach_its_nodes():
    assert all(f.images_note for f in FLAVOURS.values())
    assert FLAVOURS["kind"].load_commands("kind-lab", []) == []


def test_up_builds_and_loads_what_the_first_lab_needs(tmp_path, monkeypatch):
    """No Docker engine runs here: `docker` and `kind` are stand-ins that record their argv (the
    real commands are checked above); what is tested is which images `kubelab up` asks for."""
    from rich.console import Console

    from kubelab.flavours import FLAVOURS
    from kubelab.images import prepare_for_lab

    log = tmp_path / "calls"
    for tool in ("docker", "kind"):
        script = tmp_path / tool
        script.write_text(f'#!/bin/sh\necho "{tool} $*" >> {log}\n')
        script.chmod(0o755)
    lab = REPO / "labs" / "probe-test-app"
    console = Console(record=True, width=200)

    monkeypatch.setenv("PATH", str(tmp_path))
    prepare_for_lab(console, FLAVOURS["kind"], "kind-course", lab)
    calls = log.read_text().splitlines()
    assert calls[0] == "docker info --format {{.ServerVersion}}"
    assert calls[1].startswith("docker build --tag localhost/kubelab/probe-test-app:v1 ")
    assert calls[2].startswith("docker build --tag localhost/kubelab/probe-test-app:v2 ")
    assert calls[3] == (
        "kind load docker-image --name course localhost/kubelab/probe-test-app:v1 "
        "localhost/kubelab/probe-test-app:v2"
    )

    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    prepare_for_lab(console, FLAVOURS["docker-desktop"], "docker-desktop", lab)
    said = console.export_text()
    assert "docker is not on PATH: the lab needs the images localhost/kubelab/probe" in said
    assert "`kubelab images build`" in said
