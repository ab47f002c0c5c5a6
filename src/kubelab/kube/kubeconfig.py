"""Read and safely edit the user's kubeconfig.

Every write is atomic (temp file in the same folder + os.replace), keeps a backup of the previous
file next to it (``<name>.kubelab-backup``), leaves the file with mode 0600 and preserves every
entry it does not own.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

from kubelab.errors import KubelabError

BACKUP_SUFFIX = ".kubelab-backup"
# Remembers, per context we added, which context was current before (to restore on remove).
PREVIOUS_KEY = "kubelab.dev/previous-context"


class KubeconfigError(KubelabError):
    """The kubeconfig cannot be read or written."""


def kubeconfig_path() -> Path:
    """$KUBECONFIG's first file, else ~/.kube/config."""
    env = os.environ.get("KUBECONFIG", "")
    for part in env.split(os.pathsep):
        if part.strip():
            return Path(part.strip()).expanduser()
    return Path.home() / ".kube" / "config"


def _empty() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [],
        "users": [],
        "contexts": [],
        "current-context": "",
    }


def load(path: Path | None = None) -> dict[str, Any]:
    """The kubeconfig as a dict (an empty config if the file does not exist)."""
    p = path or kubeconfig_path()
    try:
        text = p.read_text()
    except FileNotFoundError:
        return _empty()
    except OSError as exc:
        raise KubeconfigError(
            f"cannot read kubeconfig {p}: {exc.strerror}", "check the file's permissions"
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise KubeconfigError(
            f"kubeconfig {p} is not valid YAML{where}",
            f"fix the file, or restore {p}{BACKUP_SUFFIX} if kubelab wrote it",
        ) from None
    if data is None:
        return _empty()
    if not isinstance(data, dict):
        raise KubeconfigError(f"kubeconfig {p} is not a mapping", "fix or move the file away")
    for key in ("clusters", "users", "contexts"):
        if data.get(key) is None:
            data[key] = []
    return data


def current_context(cfg: dict[str, Any]) -> str | None:
    return cfg.get("current-context") or None


def _find(items: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    for item in items or []:
        if isinstance(item, dict) and item.get("name") == name:
            return item
    return None


def context_entry(cfg: dict[str, Any], name: str) -> dict[str, Any] | None:
    """The named context entry, with its cluster's server URL added as ``server``.

    Returns ``{"name", "cluster", "user", "namespace", "server"}`` or None.
    """
    ctx = _find(cfg.get("contexts", []), name)
    if ctx is None:
        return None
    body = ctx.get("context") or {}
    cluster = _find(cfg.get("clusters", []), body.get("cluster", ""))
    server = ((cluster or {}).get("cluster") or {}).get("server")
    return {
        "name": name,
        "cluster": body.get("cluster"),
        "user": body.get("user"),
        "namespace": body.get("namespace"),
        "server": server,
    }


def _write(cfg: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if path.exists():
        backup = path.with_name(path.name + BACKUP_SUFFIX)
        data = path.read_bytes()
        fd = os.open(backup, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(backup, 0o600)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            yaml.safe_dump(cfg, f, default_flow_style=False, sort_keys=False)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _upsert_named(items: list[dict[str, Any]], entry: dict[str, Any]) -> None:
    for i, item in enumerate(items):
        if isinstance(item, dict) and item.get("name") == entry["name"]:
            items[i] = entry
            return
    items.append(entry)


def upsert(
    cluster: dict[str, Any],
    user: dict[str, Any],
    context: dict[str, Any],
    make_current: bool = True,
    path: Path | None = None,
) -> None:
    """Add or replace one cluster, user and context (kubeconfig list entries with ``name``).

    With make_current, the context becomes current and the previously current one is
    remembered in the kubeconfig's ``preferences.extensions`` so that :func:`remove` can
    restore it.
    """
    p = path or kubeconfig_path()
    for kind, entry in (("cluster", cluster), ("user", user), ("context", context)):
        if not isinstance(entry, dict) or not entry.get("name"):
            raise ValueError(f"{kind} entry needs a name")
    cfg = load(p)
    _upsert_named(cfg["clusters"], cluster)
    _upsert_named(cfg["users"], user)
    _upsert_named(cfg["contexts"], context)
    if make_current:
        previous = current_context(cfg)
        if previous and previous != context["name"]:
            _remember_previous(cfg, context["name"], previous)
        cfg["current-context"] = context["name"]
    _write(cfg, p)


def _extensions(cfg: dict[str, Any]) -> list[dict[str, Any]]:
    prefs = cfg.get("preferences")
    if not isinstance(prefs, dict):
        prefs = cfg["preferences"] = {}
    exts = prefs.get("extensions")
    if not isinstance(exts, list):
        exts = prefs["extensions"] = []
    return exts


def _previous_map(cfg: dict[str, Any]) -> dict[str, str]:
    ext = _find(_extensions(cfg), PREVIOUS_KEY)
    value = (ext or {}).get("extension")
    return dict(value) if isinstance(value, dict) else {}


def _remember_previous(cfg: dict[str, Any], context: str, previous: str) -> None:
    mapping = _previous_map(cfg)
    mapping[context] = previous
    _store_previous(cfg, mapping)


def _store_previous(cfg: dict[str, Any], mapping: dict[str, str]) -> None:
    exts = _extensions(cfg)
    exts[:] = [e for e in exts if not (isinstance(e, dict) and e.get("name") == PREVIOUS_KEY)]
    if mapping:
        exts.append({"name": PREVIOUS_KEY, "extension": mapping})
    if not exts:
        cfg["preferences"].pop("extensions", None)


def remove(context_name: str, path: Path | None = None) -> None:
    """Remove a context and the cluster and user it names (if no other context uses them).

    If it was current, the context that was current before :func:`upsert` switched becomes
    current again. A missing context or file is not an error.
    """
    p = path or kubeconfig_path()
    if not p.exists():
        return
    cfg = load(p)
    ctx = _find(cfg["contexts"], context_name)
    mapping = _previous_map(cfg)
    previous = mapping.pop(context_name, None)
    if ctx is None and previous is None:
        return
    cfg["contexts"] = [c for c in cfg["contexts"] if c is not ctx]
    body = (ctx or {}).get("context") or {}
    still_used_clusters = {(c.get("context") or {}).get("cluster") for c in cfg["contexts"]}
    still_used_users = {(c.get("context") or {}).get("user") for c in cfg["contexts"]}
    if body.get("cluster") and body["cluster"] not in still_used_clusters:
        cfg["clusters"] = [c for c in cfg["clusters"] if c.get("name") != body["cluster"]]
    if body.get("user") and body["user"] not in still_used_users:
        cfg["users"] = [u for u in cfg["users"] if u.get("name") != body["user"]]
    if current_context(cfg) == context_name:
        cfg["current-context"] = previous or ""
    _store_previous(cfg, mapping)
    _write(cfg, p)
