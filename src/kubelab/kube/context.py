"""Which kubeconfig context kubelab acts on (the guard that keeps it off real clusters is
kubelab.kube.guard).

Commands of a run get a private kubeconfig pinned to the checked context, so a `kubectl config
use-context` elsewhere during a run cannot redirect a lab's `kubectl apply`.
"""

from __future__ import annotations

import atexit
import base64
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from kubelab.errors import KubelabError
from kubelab.kube import kubeconfig as kc


@dataclass(frozen=True)
class Context:
    name: str
    cluster: str
    server: str
    user: str
    namespace: str | None


def current_context(kubeconfig: str | None = None) -> Context:
    """The current context of the kubeconfig kubectl would use ($KUBECONFIG or ~/.kube/config)."""
    paths = [Path(p) for p in kubeconfig.split(os.pathsep) if p] if kubeconfig else None
    merged = kc.load_merged(paths)
    location = os.pathsep.join(str(p) for p in paths or kc.kubeconfig_paths())
    if not merged.files:
        raise KubelabError(
            f"no kubeconfig found at {location}",
            "start a local cluster (Docker Desktop, kind, k3d, minikube...) or run "
            "`kubelab cluster up` for the embedded one",
        )
    name = kc.current_context(merged.config)
    if not name:
        raise KubelabError(
            f"the kubeconfig ({location}) has no current context",
            "pick one with `kubectl config use-context NAME`",
        )
    entry = kc.context_entry(merged.config, name)
    if entry is None:
        raise KubelabError(
            f"the current context {name!r} is not defined in {location}",
            "pick an existing one: `kubectl config get-contexts`, then "
            "`kubectl config use-context NAME`",
        )
    return Context(
        name=name,
        cluster=entry["cluster"] or "",
        server=entry["server"] or "",
        user=entry["user"] or "",
        namespace=entry["namespace"],
    )


def _inline(body: dict[str, Any], kind: str, what: str, origin: Path) -> dict[str, Any]:
    """Replace file references by their content (*-data), as `kubectl config view --flatten`."""
    body = dict(body)
    for key in ("certificate-authority", "client-certificate", "client-key"):
        path = body.pop(key, None)
        if not path or body.get(f"{key}-data"):
            continue
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise kc.KubeconfigError(
                f"kubeconfig {origin}: {what}: {kind}.{key} {path}: cannot read it: {exc.strerror}",
                "fix the path (relative paths are relative to the kubeconfig file) or "
                "recreate the cluster's kubeconfig entry",
            ) from None
        body[f"{key}-data"] = base64.b64encode(data).decode()
    return body


_private: tuple[int, Path] | None = None  # (pid, folder) of this process's private folder


def private_dir() -> Path:
    """This process's folder for files holding credentials: 0700, made on first use in the
    temp folder and removed with whatever is left in it when the process exits."""
    global _private
    if _private is None or _private[0] != os.getpid() or not _private[1].is_dir():
        folder = Path(tempfile.mkdtemp(prefix="kubelab-"))  # 0700, a fresh unguessable name
        _private = (os.getpid(), folder)
        atexit.register(_remove_private, os.getpid(), folder)
    return _private[1]


def _remove_private(pid: int, folder: Path) -> None:
    if os.getpid() == pid:  # not in a forked child that inherited the handler
        shutil.rmtree(folder, ignore_errors=True)


def pinned_kubeconfig(context: str) -> Path:
    """A private kubeconfig holding only `context`, its cluster and user, flattened (file
    references inlined), with it as the current context; mode 0600 in a private folder.

    Built here rather than by `kubectl config view --minify --flatten` so that every odd
    kubeconfig gives the same clear errors.
    """
    merged = kc.load_merged()
    ctx = merged.entry("contexts", context)
    if ctx is None:
        raise KubelabError(f"there is no context {context!r} in the kubeconfig")
    body = ctx.get("context") or {}
    out: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [],
        "users": [],
        "contexts": [{"name": context, "context": body}],
        "current-context": context,
    }
    for section, kind in (("clusters", "cluster"), ("users", "user")):
        name = body.get(kind)
        entry = merged.entry(section, name) if name else None
        if entry is None:
            continue  # kubectl allows a context without a user; the client says what is missing
        origin = merged.origin[(section, name)]
        inlined = _inline(entry.get(kind) or {}, kind, f"{section} {name!r}", origin)
        out[section].append({"name": name, kind: inlined})
    fd, name = tempfile.mkstemp(prefix="kubelab-", suffix=".kubeconfig", dir=private_dir())
    with os.fdopen(fd, "w") as fh:  # mkstemp made it 0600
        yaml.safe_dump(out, fh, default_flow_style=False, sort_keys=False)
    return Path(name)
