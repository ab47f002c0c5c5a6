"""A connection to the one cluster a command acts on: guarded context, flavour, capabilities."""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from kubelab.errors import MissingToolError
from kubelab.flavours import Flavour, detect
from kubelab.kube.client import Kube
from kubelab.kube.context import Context, current_context, pinned_kubeconfig
from kubelab.kube.guard import choose, flavour_of_context, guard_proxy
from kubelab.requirements import Capabilities


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


def with_course_programs(path: str) -> str:
    """PATH that also reaches the course's own programs (apps/*: `make venv` installs them beside
    kubelab, e.g. probeapp-operator) when kubelab runs from its venv without it being activated:
    kubelab's own bin folder, last, so that nothing the learner has is shadowed."""
    own = str(Path(sys.executable).parent)
    return path if own in path.split(os.pathsep) else f"{path}{os.pathsep}{own}"


def kubeconfig_contexts(kubeconfig: str | None = None) -> list[Context]:
    """Every context of the kubeconfig kubectl would use, with its cluster's server."""
    return read_kubeconfig(kubeconfig)[0]


def read_kubeconfig(kubeconfig: str | None = None) -> tuple[list[Context], dict[str, str]]:
    """Every context of the kubeconfig kubectl would use, with its cluster's server, and the
    clusters' proxy-url by cluster name (those that have one)."""
    from kubelab.kube import kubeconfig as kc

    paths = [Path(p) for p in kubeconfig.split(os.pathsep) if p] if kubeconfig else None
    config = kc.load_merged(paths).config
    contexts = []
    for item in config["contexts"]:
        entry = kc.context_entry(config, item["name"])
        if entry is not None:
            contexts.append(
                Context(
                    name=entry["name"],
                    cluster=entry["cluster"] or "",
                    server=entry["server"] or "",
                    user=entry["user"] or "",
                    namespace=entry["namespace"],
                )
            )
    proxies = {
        c["name"]: c["cluster"]["proxy-url"]
        for c in config["clusters"]
        if isinstance(c.get("cluster"), dict) and c["cluster"].get("proxy-url")
    }
    return contexts, proxies


@dataclass
class Session:
    context: Context  # the guarded context kubelab acts and observes with
    flavour: Flavour  # resolved against the live nodes
    kube: Kube
    capabilities: Capabilities
    kubeconfig: Path  # private, pinned to `context`
    env: dict[str, str]  # what a lab's commands run with
    current: Context | None = None  # the kubeconfig's current context, when it is not `context`
    note: str | None = None  # why `context` is not the current one: print it

    @classmethod
    def open(cls, allow: list[str] | None = None) -> Session:
        """Guard (name and server, before any network I/O), then connect and detect.

        When the current context is a lab user of a training cluster (same server, e.g. an RBAC
        lab's `jane@kind-x`), the session observes as that training context and `note` says so.
        """
        current = current_context()
        contexts, proxies = read_kubeconfig()
        choice = choose(current, contexts, allow)
        context = choice.context
        guard_proxy(context, proxies.get(context.cluster), allow)
        path = tool_path(context.name)
        kubectl = shutil.which("kubectl", path=path)
        if kubectl is None:
            raise MissingToolError(
                "kubectl is not on PATH",
                "install kubectl (README: prerequisites) or build the cached one: `make tools`",
            )
        pinned = pinned_kubeconfig(context.name)
        try:
            kube = Kube(pinned, context.name)
            nodes = kube.nodes()
        except BaseException:  # unreachable or refused: the pinned copy holds credentials
            pinned.unlink(missing_ok=True)
            raise
        flavour = detect(context.name, nodes)
        env = {**os.environ, "KUBECONFIG": str(pinned), "PATH": with_course_programs(path)}
        capabilities = Capabilities(kube, flavour, len(nodes), path)
        other = current if current.name != context.name else None
        return cls(context, flavour, kube, capabilities, pinned, env, other, choice.note)

    def close(self) -> None:
        self.kubeconfig.unlink(missing_ok=True)

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
