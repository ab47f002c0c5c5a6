"""The course's own images: built from apps/<app>/ with the local Docker, loaded per flavour.

Each app declares its image in its pyproject.toml:

    [tool.kubelab.image]
    name = "localhost/kubelab/probe-test-app"
    [tool.kubelab.image.tags]
    v1 = { APP_VERSION = "v1" }     # tag -> docker build args
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from kubelab.errors import KubelabError, MissingToolError
from kubelab.flavours import Flavour


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
    from kubelab.lab.loader import labs_root

    return labs_root().parent / "apps"


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


def build_commands(app: str | None = None, root: Path | None = None) -> list[list[str]]:
    commands = []
    for image in images(app, root):
        cmd = ["docker", "build", "--tag", image.ref]
        for key, value in image.build_args.items():
            cmd += ["--build-arg", f"{key}={value}"]
        commands.append([*cmd, str(image.folder)])
    return commands


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
