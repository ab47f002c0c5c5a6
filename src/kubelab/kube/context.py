"""Which kubeconfig context kubelab acts on (the guard that keeps it off real clusters is
kubelab.kube.guard).

Commands of a run get a private kubeconfig pinned to the checked context, so a `kubectl config
use-context` elsewhere during a run cannot redirect a lab's `kubectl apply`.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from kubelab.errors import KubelabError, MissingToolError


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


def __getattr__(name: str) -> object:
    # the guard moved to kubelab.kube.guard; old imports keep working (lazily: guard imports us)
    if name in ("guard", "flavour_of_context", "allowed_contexts", "TRAINING_CONTEXTS"):
        from kubelab.kube import guard

        return getattr(guard, name)
    raise AttributeError(name)


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
