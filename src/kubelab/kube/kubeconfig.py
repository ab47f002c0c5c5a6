"""The one kubeconfig reader and writer.

Reading follows kubectl: $KUBECONFIG may list several files, merged so that the first file to
define a cluster, user or context name wins and the first file that sets current-context names
it; without $KUBECONFIG, ~/.kube/config. Every way a file can be unusable (not there is fine:
it is empty) is a :class:`KubeconfigError` naming the file and what to do, never a traceback.

Writing (:func:`upsert`, :func:`remove`) edits the first file only, under an exclusive lock on a
sibling lock file, as one atomic replace (temp file + fsync + os.replace), after a backup of the
previous content (``<name>.kubelab-backup``), leaving mode 0600. A symlinked kubeconfig stays a
symlink: its target is what gets written. A file or folder without write permission is refused
(even for root) and left as it was.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import os
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kubelab.errors import KubelabError

BACKUP_SUFFIX = ".kubelab-backup"
# Not kubectl's own "<file>.lock": client-go creates that with O_EXCL and would fail while ours
# exists, so ours is a separate file that is only ever flock()ed.
LOCK_SUFFIX = ".kubelab-lock"
# Remembers, per context we added, which context was current before (to restore on remove).
PREVIOUS_KEY = "kubelab.dev/previous-context"
# Far above any real kubeconfig (inline certificates are a few KiB each); read no more than this.
MAX_BYTES = 16 * 1024 * 1024
SECTIONS = {"clusters": "cluster", "users": "user", "contexts": "context"}
# Fields that must be strings when present; anything else is a hand-edit gone wrong.
_STRING_FIELDS = {
    "cluster": (
        "server",
        "certificate-authority",
        "certificate-authority-data",
        "tls-server-name",
        "proxy-url",
    ),
    "user": (
        "token",
        "tokenFile",
        "client-certificate",
        "client-certificate-data",
        "client-key",
        "client-key-data",
        "username",
        "password",
    ),
    "context": ("cluster", "user", "namespace"),
}
_MAPPING_FIELDS = {"cluster": (), "user": ("exec", "auth-provider"), "context": ()}
# File references resolved against the folder of the file that names them (as kubectl does).
FILE_FIELDS = {
    "cluster": ("certificate-authority",),
    "user": ("client-certificate", "client-key", "tokenFile"),
}


class KubeconfigError(KubelabError):
    """The kubeconfig cannot be read or written."""


def kubeconfig_paths() -> list[Path]:
    """The files kubectl reads: $KUBECONFIG's (in order, no repeats), else ~/.kube/config."""
    paths: list[Path] = []
    for part in os.environ.get("KUBECONFIG", "").split(os.pathsep):
        if part.strip():
            path = Path(part.strip()).expanduser()
            if path not in paths:
                paths.append(path)
    return paths or [Path.home() / ".kube" / "config"]


def kubeconfig_path() -> Path:
    """The file kubelab writes: $KUBECONFIG's first file, else ~/.kube/config."""
    return kubeconfig_paths()[0]


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


# --- reading ----------------------------------------------------------------------------------


def _bad(path: Path, problem: str, hint: str | None = None) -> KubeconfigError:
    return KubeconfigError(
        f"kubeconfig {path}: {problem}",
        hint
        or (
            f"fix the file or move it away (kubectl reads it too); if kubelab wrote it, "
            f"{path}{BACKUP_SUFFIX} holds the previous version"
        ),
    )


def _read_bytes(path: Path) -> bytes | None:
    """The file's bytes, None when it does not exist; never blocks on a FIFO or reads /dev/zero
    for ever."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _bad(
            path, f"cannot read it: {exc.strerror}", "check the path and its permissions"
        ) from None
    if stat.S_ISDIR(st.st_mode):
        raise _bad(
            path,
            "is a folder, not a file",
            "point KUBECONFIG at the kubeconfig file itself (e.g. ~/.kube/config)",
        )
    if stat.S_ISFIFO(st.st_mode) or stat.S_ISSOCK(st.st_mode):
        raise _bad(path, "is not a regular file", "point KUBECONFIG at a kubeconfig file")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as fh:
            data = fh.read(MAX_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _bad(
            path,
            f"cannot read it: {exc.strerror}",
            "check the file's permissions (`ls -l`); kubectl needs to read it too",
        ) from None
    if len(data) > MAX_BYTES:
        raise _bad(path, f"is larger than {MAX_BYTES // (1024 * 1024)} MiB: not a kubeconfig")
    return data


def _decode(path: Path, data: bytes) -> str:
    if b"\x00" in data:
        line = data[: data.index(b"\x00")].count(b"\n") + 1
        raise _bad(path, f"line {line}: contains NUL bytes: this is a binary file, not YAML")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise _bad(path, f"line {line}: is not UTF-8 text (byte {data[exc.start]:#04x})") from None


def _parse(path: Path, text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}: " if mark else ""
        raise _bad(path, f"{where}not valid YAML: {exc.problem or exc.context}") from None
    except (yaml.YAMLError, RecursionError, ValueError, TypeError) as exc:
        # RecursionError: absurd nesting; ValueError/TypeError: e.g. a bad !!timestamp
        raise _bad(path, f"not valid YAML: {type(exc).__name__}: {exc}") from None


def _check_shape(path: Path, data: Any) -> dict[str, Any]:
    """A dict with list-valued sections of well-shaped named entries, or a clear error."""
    if data is None:
        return _empty()
    if not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else f"a single {type(data).__name__} value"
        raise _bad(path, f"is {kind}, not a mapping of clusters, users and contexts")
    current = data.get("current-context")
    if current is not None and not isinstance(current, str):
        raise _bad(path, f"current-context must be a context name, not {current!r:.40}")
    for section, kind in SECTIONS.items():
        items = data.get(section)
        if items is None:
            data[section] = []
            continue
        if not isinstance(items, list):
            raise _bad(path, f"{section}: must be a list of entries, not {type(items).__name__}")
        for i, item in enumerate(items):
            where = f"{section}[{i}]"
            if not isinstance(item, dict):
                raise _bad(path, f"{where}: must be a mapping with name and {kind}")
            name = item.get("name")
            if not isinstance(name, str) or not name:
                raise _bad(path, f"{where}: needs a name (a non-empty string)")
            body = item.get(kind)
            if body is None:
                continue
            if not isinstance(body, dict):
                raise _bad(path, f"{where} ({name}): {kind}: must be a mapping")
            for key in _STRING_FIELDS[kind]:
                if body.get(key) is not None and not isinstance(body[key], str):
                    raise _bad(path, f"{where} ({name}): {kind}.{key}: must be a string")
            for key in _MAPPING_FIELDS[kind]:
                if body.get(key) is not None and not isinstance(body[key], dict):
                    raise _bad(path, f"{where} ({name}): {kind}.{key}: must be a mapping")
    return data


def read_file(path: Path) -> dict[str, Any] | None:
    """One kubeconfig file, checked; None when it does not exist."""
    data = _read_bytes(path)
    if data is None:
        return None
    return _check_shape(path, _parse(path, _decode(path, data)))


def load(path: Path | None = None) -> dict[str, Any]:
    """One kubeconfig file as a dict (an empty config if it does not exist), default the file
    kubelab writes."""
    return read_file(path or kubeconfig_path()) or _empty()


@dataclass
class Merged:
    """The kubeconfig kubectl sees: entries merged over $KUBECONFIG's files, with file
    references made absolute (relative to the file that named them)."""

    config: dict[str, Any]
    files: list[Path]  # the files that exist, in order
    origin: dict[tuple[str, str], Path] = field(default_factory=dict)  # (section, name) -> file

    def entry(self, section: str, name: str) -> dict[str, Any] | None:
        return _find(self.config[section], name)


def _absolute(body: dict[str, Any], kind: str, folder: Path) -> dict[str, Any]:
    body = dict(body)
    for key in FILE_FIELDS.get(kind, ()):
        value = body.get(key)
        if isinstance(value, str) and value and not os.path.isabs(value):
            body[key] = str(folder / os.path.expanduser(value))
    exec_ = body.get("exec")
    if kind == "user" and isinstance(exec_, dict):
        command = exec_.get("command")
        # kubectl resolves only a command given as a relative path, not a name looked up on PATH
        if isinstance(command, str) and os.sep in command and not os.path.isabs(command):
            body["exec"] = {**exec_, "command": str(folder / command)}
    return body


def load_merged(paths: list[Path] | None = None) -> Merged:
    """Merge the kubeconfig files as kubectl does."""
    merged = _empty()
    result = Merged(merged, [])
    current_set = False
    for path in paths or kubeconfig_paths():
        cfg = read_file(path)
        if cfg is None:
            continue
        result.files.append(path)
        folder = path.absolute().parent
        if not current_set and cfg.get("current-context"):
            merged["current-context"] = cfg["current-context"]
            current_set = True
        for section, kind in SECTIONS.items():
            for item in cfg[section]:
                if (section, item["name"]) in result.origin:
                    continue  # the first file to define a name wins
                result.origin[(section, item["name"])] = path
                body = item.get(kind) or {}
                merged[section].append({**item, kind: _absolute(body, kind, folder)})
    return result


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


# --- writing ----------------------------------------------------------------------------------


def _read_only(path: Path, what: str) -> KubeconfigError:
    return KubeconfigError(
        f"kubeconfig {path}: the {what} is read-only; kubelab changed nothing",
        "make it writable (`chmod u+w`) or point KUBECONFIG at a writable file first",
    )


def _check_writable(target: Path) -> None:
    """Refuse before touching anything. Mode bits are checked rather than access(2) so that a
    file the user made read-only stays so even when kubelab runs as root."""
    folder = target.parent
    if folder.exists():
        if not folder.is_dir():
            raise KubeconfigError(f"kubeconfig {target}: {folder} is not a folder")
        if not folder.stat().st_mode & stat.S_IWUSR or not os.access(folder, os.W_OK):
            raise _read_only(target, f"folder {folder}")
    if target.exists():
        if target.is_dir():
            raise _bad(target, "is a folder, not a file", "point KUBECONFIG at a file")
        if not target.stat().st_mode & stat.S_IWUSR or not os.access(target, os.W_OK):
            raise _read_only(target, "file")


@contextlib.contextmanager
def _locked(target: Path) -> Iterator[None]:
    """An exclusive lock for one read-modify-write of ``target`` (waits for other writers)."""
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    lock = target.with_name(target.name + LOCK_SUFFIX)
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise KubeconfigError(
            f"kubeconfig {target}: cannot create the lock file {lock}: {exc.strerror}",
            "check the folder's permissions",
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _write_atomic(target: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


@contextlib.contextmanager
def editing(path: Path | None = None) -> Iterator[dict[str, Any]]:
    """Read-modify-write one kubeconfig file under its lock: change the yielded dict in place;
    it is written (atomically, after a backup) when the block ends without an error."""
    link = path or kubeconfig_path()
    target = Path(os.path.realpath(link))  # a symlink stays one: write where it points
    _check_writable(target)
    with _locked(target):
        before = _read_bytes(target)
        cfg = (
            _check_shape(target, _parse(target, _decode(target, before)))
            if before is not None
            else _empty()
        )
        original = copy.deepcopy(cfg)
        yield cfg
        if cfg == original:
            return  # nothing changed: no backup, no rewrite
        after = yaml.safe_dump(cfg, default_flow_style=False, sort_keys=False).encode()
        try:
            if before is not None:
                _write_atomic(target.with_name(target.name + BACKUP_SUFFIX), before)
            _write_atomic(target, after)
        except OSError as exc:
            raise KubeconfigError(
                f"kubeconfig {target}: cannot write it: {exc.strerror}",
                "check the file's and its folder's permissions and free space",
            ) from None


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
    for kind, entry in (("cluster", cluster), ("user", user), ("context", context)):
        if not isinstance(entry, dict) or not entry.get("name"):
            raise ValueError(f"{kind} entry needs a name")
    with editing(path) as cfg:
        _upsert_named(cfg["clusters"], cluster)
        _upsert_named(cfg["users"], user)
        _upsert_named(cfg["contexts"], context)
        if make_current:
            previous = current_context(cfg)
            if previous and previous != context["name"]:
                _remember_previous(cfg, context["name"], previous)
            cfg["current-context"] = context["name"]


def _extensions(cfg: dict[str, Any]) -> list[dict[str, Any]]:
    prefs = cfg.get("preferences")
    if not isinstance(prefs, dict):
        prefs = cfg["preferences"] = {}
    exts = prefs.get("extensions")
    if not isinstance(exts, list):
        exts = prefs["extensions"] = []
    return exts


def _previous_map(cfg: dict[str, Any]) -> dict[str, str]:
    prefs = cfg.get("preferences")
    exts = prefs.get("extensions") if isinstance(prefs, dict) else None
    ext = _find(exts if isinstance(exts, list) else [], PREVIOUS_KEY)
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


def check_removable(context_name: str, path: Path | None = None) -> None:
    """Raise (before anything else is done) when :func:`remove` would have to change a
    kubeconfig that cannot be written."""
    p = path or kubeconfig_path()
    cfg = load(p)
    if _find(cfg.get("contexts") or [], context_name) or context_name in _previous_map(cfg):
        _check_writable(p)


def remove(context_name: str, path: Path | None = None) -> None:
    """Remove a context and the cluster and user it names (if no other context uses them).

    If it was current, the context that was current before :func:`upsert` switched becomes
    current again. A missing context or file is not an error.
    """
    p = path or kubeconfig_path()
    if not p.exists():
        return
    with editing(p) as cfg:
        ctx = _find(cfg["contexts"], context_name)
        mapping = _previous_map(cfg)
        previous = mapping.pop(context_name, None)
        if ctx is None and previous is None:
            return
        cfg["contexts"] = [c for c in cfg["contexts"] if c is not ctx]
        body = (ctx or {}).get("context") or {}
        used_clusters = {(c.get("context") or {}).get("cluster") for c in cfg["contexts"]}
        used_users = {(c.get("context") or {}).get("user") for c in cfg["contexts"]}
        if body.get("cluster") and body["cluster"] not in used_clusters:
            cfg["clusters"] = [c for c in cfg["clusters"] if c.get("name") != body["cluster"]]
        if body.get("user") and body["user"] not in used_users:
            cfg["users"] = [u for u in cfg["users"] if u.get("name") != body["user"]]
        if current_context(cfg) == context_name:
            cfg["current-context"] = previous or ""
        _store_previous(cfg, mapping)
