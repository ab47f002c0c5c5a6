"""The course's own images: built from apps/<app>/ with the local Docker, loaded per flavour.

Each app declares its image in its pyproject.toml:

    [tool.kubelab.image]
    name = "localhost/kubelab/probe-test-app"
    [tool.kubelab.image.tags]
    v1 = { APP_VERSION = "v1" }     # tag -> docker build args
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from kubelab import paths
from kubelab.errors import KubelabError, MissingToolError
from kubelab.flavours import Flavour

OWN_IMAGE = re.compile(r"localhost/kubelab/[a-z0-9-]+:[\w.-]+")


@dataclass(frozen=True)
class Image:
    app: str
    folder: Path
    name: str
    tag: str
    build_args: dict[str, str]

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.tag}"


def apps_root() -> Path:
    return paths.apps_root()


def images(app: str | None = None, root: Path | None = None) -> list[Image]:
    root = root or apps_root()
    found: list[Image] = []
    for pyproject in sorted(root.glob("*/pyproject.toml")):
        folder = pyproject.parent
        if app and folder.name != app:
            continue
        try:
            data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise KubelabError(f"{pyproject}: cannot read: {exc}") from None
        spec = data.get("tool", {}).get("kubelab", {}).get("image")
        if not spec:
            continue
        if not spec.get("name") or not spec.get("tags"):
            raise KubelabError(
                f"{pyproject}: [tool.kubelab.image] needs 'name' and a [tool.kubelab.image.tags] "
                "table (tag = {{ BUILD_ARG = value }})"
            )
        for tag, args in spec["tags"].items():
            found.append(
                Image(
                    folder.name,
                    folder,
                    spec["name"],
                    tag,
                    {k: str(v) for k, v in (args or {}).items()},
                )
            )
    if app and not found:
        known = sorted({i.app for i in images(None, root)})
        raise KubelabError(
            f"there is no app {app!r} with an image", f"the apps are: {', '.join(known)}"
        )
    return found


def build_command(image: Image) -> list[str]:
    cmd = ["docker", "build", "--tag", image.ref]
    for key, value in image.build_args.items():
        cmd += ["--build-arg", f"{key}={value}"]
    return [*cmd, str(image.folder)]


def build_commands(app: str | None = None, root: Path | None = None) -> list[list[str]]:
    return [build_command(image) for image in images(app, root)]


def needed_by(lab_folder: Path, root: Path | None = None) -> list[Image]:
    """The course's images a lab's files name (manifests, lab.yaml, scripts)."""
    named: set[str] = set()
    for path in lab_folder.iterdir():
        if path.suffix in (".yaml", ".yml", ".sh") and path.is_file():
            named |= set(OWN_IMAGE.findall(path.read_text(encoding="utf-8", errors="replace")))
    return [image for image in images(root=root) if image.ref in named]


def prepare_for_lab(console: Console, flavour: Flavour, context: str, lab_folder: Path) -> None:
    """`kubelab up`: build and load the images the lab needs where a Docker engine can, and say
    what to do where it cannot (a Pod of a missing image fails with ErrImagePull)."""
    needed = needed_by(lab_folder)
    if not needed or not flavour.containers or flavour.name == "embedded":
        return  # nothing runs containers, or the embedded cluster's node imports its own images
    refs = ", ".join(image.ref for image in needed)
    commands = [build_command(image) for image in needed]
    commands += flavour.load_commands(context, [image.ref for image in needed])
    console.print(f"building the images the lab needs: {refs}")
    try:
        execute(console, commands, dry_run=False)
    except MissingToolError as exc:
        console.print(
            f"[yellow]{escape(exc.message)}: the lab needs the images {refs}[/]\n"
            "  → start Docker (Desktop, OrbStack, Rancher Desktop, dockerd), then run "
            "`kubelab images build` and `kubelab images load`"
        )


def load_commands(
    flavour: Flavour, context: str, app: str | None = None, root: Path | None = None
) -> list[list[str]]:
    """What puts the locally built images on the cluster's nodes; [] when nothing is needed
    (the flavour knows: kind and k3d copy them in, minikube loads them, Docker Desktop, OrbStack
    and Rancher Desktop share Docker's image store)."""
    return flavour.load_commands(context, [image.ref for image in images(app, root)])


def execute(console: Console, commands: list[list[str]], dry_run: bool) -> None:
    if not commands:
        console.print("no images to build")
        return
    if not dry_run:
        for tool in sorted({c[0] for c in commands}):
            if shutil.which(tool) is None:
                raise MissingToolError(
                    f"{tool} is not on PATH",
                    f"install {tool}, or print the commands with --dry-run",
                )
        if any(c[0] == "docker" for c in commands) and not docker_engine_answers():
            raise MissingToolError(
                "no Docker engine answers (`docker info` failed)",
                "start Docker Desktop / OrbStack / Rancher Desktop (or dockerd), or print the "
                "commands with --dry-run",
            )
    for command in commands:
        console.print(f"[cyan]$[/] {escape(shlex.join(command))}")
        if dry_run:
            continue
        if subprocess.run(command, check=False).returncode != 0:
            raise KubelabError(f"`{shlex.join(command)}` failed", "see its output above")


def docker_engine_answers() -> bool:
    try:
        proc = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0
