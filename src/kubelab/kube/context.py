"""Which kubeconfig context kubelab acts on, and the guard that keeps it off real clusters.

kubelab only acts on contexts it recognises as local training clusters. Anything else needs the
exact context name to be allowed explicitly (--allow-context NAME or KUBELAB_ALLOW_CONTEXTS).
Commands of a run get a private kubeconfig pinned to the checked context, so a `kubectl config
use-context` elsewhere during a run cannot redirect a lab's `kubectl apply`.
"""

from __future__ import annotations

import fnmatch
import json
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from kubelab.errors import ContextRefusedError, KubelabError, MissingToolError

# Context names the local cluster tools create (kind, k3d and kwokctl prefix the cluster name).
TRAINING_CONTEXTS: dict[str, str] = {
    "docker-desktop": "docker-desktop",
    "docker-for-desktop": "docker-desktop",
    "kind-*": "kind",
    "k3d-*": "k3d",
    "minikube": "minikube",
    "rancher-desktop": "rancher-desktop",
    "orbstack": "orbstack",
    "kwok-*": "embedded",
}


def flavour_of_context(name: str) -> str | None:
    """The local cluster flavour a context name stands for, or None if it is not a training one."""
    for pattern, flavour in TRAINING_CONTEXTS.items():
        if fnmatch.fnmatchcase(name, pattern):
            return flavour
    return None


def allowed_contexts(extra: list[str] | None = None) -> set[str]:
    env = os.environ.get("KUBELAB_ALLOW_CONTEXTS", "")
    return {c.strip() for c in env.split(",") if c.strip()} | set(extra or [])


@dataclass(frozen=True)
class Context:
    name: str
    cluster: str
    server: str
    user: str
    namespace: str | None


def current_context(kubeconfig: str | None = None) -> Context:
    """The current context of the kubeconfig kubectl would use ($KUBECONFIG or ~/.kube/config)."""
    from kubernetes.config.config_exception import ConfigException
    from kubernetes.config.kube_config import KUBE_CONFIG_DEFAULT_LOCATION, KubeConfigMerger

    location = kubeconfig or os.environ.get("KUBECONFIG") or KUBE_CONFIG_DEFAULT_LOCATION
    try:
        merged = KubeConfigMerger(location).config
    except ConfigException as exc:
        raise KubelabError(f"cannot read the kubeconfig {location}: {exc}") from None
    if not merged:
        raise KubelabError(
            f"no kubeconfig found at {location}",
            "start a local cluster (Docker Desktop, kind, k3d, minikube...) or run "
            "`kubelab cluster up` for the embedded one",
        )
    name = merged.safe_get("current-context")
    if not name:
        raise KubelabError(
            "the kubeconfig has no current context",
            "pick one with `kubectl config use-context NAME`",
        )
    ctx = next((c for c in merged.safe_get("contexts") or [] if c["name"] == name), None)
    if ctx is None:
        raise KubelabError(f"the current context {name!r} is not defined in {location}")
    cluster_name = ctx["context"].safe_get("cluster") or ""
    cluster = next(
        (c for c in merged.safe_get("clusters") or [] if c["name"] == cluster_name), None
    )
    server = cluster["cluster"].safe_get("server") if cluster else ""
    return Context(
        name=name,
        cluster=cluster_name,
        server=server or "",
        user=ctx["context"].safe_get("user") or "",
        namespace=ctx["context"].safe_get("namespace"),
    )


def guard(context: Context, allow: list[str] | None = None) -> str:
    """Return the flavour hint for a training context; refuse any other context."""
    flavour = flavour_of_context(context.name)
    if flavour:
        return flavour
    if context.name in allowed_contexts(allow):
        return "unknown"
    raise ContextRefusedError(
        f"refusing to act on context {context.name!r} (server {context.server or '?'}): "
        "it is not a local training cluster",
        "switch to a local cluster (`kubectl config use-context docker-desktop`, kind-…, k3d-…, "
        "minikube, rancher-desktop, orbstack) or start one with `kubelab cluster up`; if this "
        f"really is a throw-away cluster, allow it by name: --allow-context {context.name}",
    )


def pinned_kubeconfig(context: str, kubectl: str = "kubectl") -> Path:
    """A private kubeconfig holding only `context`, flattened, with it as the current context."""
    try:
        proc = subprocess.run(
            [
                kubectl,
                "config",
                "view",
                "--minify",
                "--flatten",
                "--context",
                context,
                "-o",
                "json",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except FileNotFoundError:
        raise MissingToolError(
            "kubectl is not on PATH", "install kubectl (see the README's prerequisites)"
        ) from None
    if proc.returncode != 0:
        raise KubelabError(f"kubectl config view failed: {proc.stderr.strip()}")
    config = json.loads(proc.stdout)
    config["current-context"] = context
    fd, name = tempfile.mkstemp(prefix="kubelab-", suffix=".kubeconfig")
    with os.fdopen(fd, "w") as fh:
        json.dump(config, fh)
    os.chmod(name, 0o600)
    return Path(name)
