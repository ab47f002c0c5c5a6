"""A connection to the one cluster a command acts on: guarded context, flavour, capabilities."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from kubelab.errors import MissingToolError
from kubelab.flavours import Capabilities, Flavour, detect
from kubelab.kube.client import Kube
from kubelab.kube.context import (
    Context,
    current_context,
    flavour_of_context,
    guard,
    pinned_kubeconfig,
)


def tool_path(context: str | None = None) -> str:
    """PATH with the cached binaries (kubectl, helm): first for the embedded cluster, whose
    version they match; otherwise a fallback after the learner's own tools."""
    path = os.environ.get("PATH", "")
    try:
        from kubelab.embedded.build import bin_dir

        cached = bin_dir()
    except Exception:  # no cache configured: PATH as it is
        return path
    if not cached.is_dir():
        return path
    if context and flavour_of_context(context) == "embedded":
        return f"{cached}{os.pathsep}{path}"
    return f"{path}{os.pathsep}{cached}"


@dataclass
class Session:
    context: Context
    flavour: Flavour
    kube: Kube
    capabilities: Capabilities
    kubeconfig: Path  # private, pinned to `context`
    env: dict[str, str]  # what a lab's commands run with

    @classmethod
    def open(cls, allow: list[str] | None = None) -> Session:
        context = current_context()
        guard(context, allow)
        path = tool_path(context.name)
        kubectl = shutil.which("kubectl", path=path)
        if kubectl is None:
            raise MissingToolError(
                "kubectl is not on PATH",
                "install kubectl (README: prerequisites) or build the cached one: `make tools`",
            )
        pinned = pinned_kubeconfig(context.name, kubectl)
        try:
            kube = Kube(pinned, context.name)
            nodes = kube.nodes()
        except BaseException:  # unreachable or refused: the pinned copy holds credentials
            pinned.unlink(missing_ok=True)
            raise
        flavour = detect(context.name, nodes)
        env = {**os.environ, "KUBECONFIG": str(pinned), "PATH": path}
        capabilities = Capabilities(kube, flavour, len(nodes), path)
        return cls(context, flavour, kube, capabilities, pinned, env)

    def close(self) -> None:
        self.kubeconfig.unlink(missing_ok=True)

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
