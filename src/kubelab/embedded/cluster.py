"""Start, stop and inspect the embedded cluster: a real control plane with kwok-simulated nodes.

kwokctl (binary runtime) does the orchestration: it generates the PKI, starts etcd,
kube-apiserver, kube-controller-manager, kube-scheduler and kwok-controller as local processes
from the binaries in the kubelab cache (built by tools/build_k8s.py), and writes a kubeconfig.
kubelab adds only what a training cluster needs on top: RBAC + admission on, the controller
manager signing CSRs with the cluster CA, N Ready nodes, and a safe merge of the context
``kwok-<name>`` into the user's kubeconfig.

kwokctl's state lives in ``<kubelab cache>/kwok`` (its KWOK_WORKDIR), so kubelab's clusters
never mix with the user's own kwokctl clusters.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from base64 import b64decode
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kubelab.embedded import build, hoststate
from kubelab.errors import KubelabError
from kubelab.kube import kubeconfig

Progress = Callable[[str], object]

DEFAULT_NAME = "kubelab"
CONTEXT_PREFIX = "kwok-"
CREATE_TIMEOUT_S = 180
READY_TIMEOUT_S = 90
STOP_TIMEOUT_S = 30
# The processes kwokctl starts for a cluster (pid files in <cluster dir>/pids).
COMPONENTS = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok-controller",
)


class EmbeddedClusterError(KubelabError):
    """The embedded cluster cannot be started, stopped or reached."""


@dataclass
class UpResult:
    name: str
    context: str
    kubeconfig: Path  # the user's kubeconfig that now holds the context
    server: str
    seconds: float
    nodes: list[str] = field(default_factory=list)
    already_running: bool = False
    real_node: str | None = None  # name of the real node (kubelet + containerd), if any


@dataclass
class StatusResult:
    api_ok: bool
    nodes: list[tuple[str, bool]]
    message: str

    @property
    def ready(self) -> bool:
        return self.api_ok and bool(self.nodes) and all(ok for _, ok in self.nodes)


# ---------------------------------------------------------------- paths


def context_name(name: str = DEFAULT_NAME) -> str:
    return CONTEXT_PREFIX + name


def workdir() -> Path:
    return build.cache_root() / "kwok"


def cluster_dir(name: str = DEFAULT_NAME) -> Path:
    return workdir() / "clusters" / name


def private_kubeconfig(name: str = DEFAULT_NAME) -> Path:
    """The kubeconfig kwokctl writes for us (one cluster, admin user); never the user's."""
    return cluster_dir(name) / "kubelab-admin.kubeconfig"


def _check_name(name: str) -> None:
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?", name or ""):
        raise EmbeddedClusterError(
            f"invalid cluster name {name!r}",
            "use up to 40 lowercase letters, digits and dashes, starting and ending with a "
            "letter or digit",
        )


def _env(name: str) -> dict[str, str]:
    bins = build.bin_dir()
    return {
        **os.environ,
        "PATH": f"{bins}{os.pathsep}{os.environ.get('PATH', '')}",
        "KWOK_WORKDIR": str(workdir()),
        "KWOK_KUBE_VERSION": build.k8s_version(),
        # whatever kwokctl does to "the" kubeconfig lands in our private file, never the user's
        "KUBECONFIG": str(private_kubeconfig(name)),
    }


# The ports kubelab chooses for each cluster (kwokctl's own choice collided when two clusters
# were created at once).
PORT_OPTIONS = (
    "kubeApiserverPort",
    "etcdPort",
    "etcdPeerPort",
    "kubeControllerManagerPort",
    "kubeSchedulerPort",
    "kwokControllerPort",
)


# the only paths of kube-controller-manager and kube-scheduler that answer without credentials
HEALTH_PATHS = "/healthz,/readyz,/livez"


def _free_ports(count: int) -> list[int]:
    """Ports free on 127.0.0.1 right now (the kernel picks them, so two callers differ)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def kwokctl_config(name: str, ports: dict[str, int], real_node: bool) -> str:
    """kwokctl's --config for this cluster: loopback only, kubelab's ports, and the flags that
    make it safe (separate keys, etcd with client certificates; see kubelab.embedded.pki).

    Component flags go in ``componentsPatches``: kwokctl v0.8 indexes repeated ``--extra-args``
    of a second component wrongly and panics.
    """
    from kubelab.embedded import pki

    folder = cluster_dir(name) / "pki"
    p = pki.control_plane(folder, name)
    etcd = f"https://127.0.0.1:{ports['etcdPort']}"
    peer = f"https://127.0.0.1:{ports['etcdPeerPort']}"
    flags: dict[str, list[tuple[str, object]]] = {
        "etcd": [
            ("listen-client-urls", etcd),
            ("advertise-client-urls", etcd),
            ("cert-file", p["etcd_crt"]),
            ("key-file", p["etcd_key"]),
            ("trusted-ca-file", p["etcd_ca"]),
            ("client-cert-auth", "true"),
            ("listen-peer-urls", peer),
            ("initial-advertise-peer-urls", peer),
            ("initial-cluster", f"node0={peer}"),
            ("peer-cert-file", p["etcd_crt"]),
            ("peer-key-file", p["etcd_key"]),
            ("peer-trusted-ca-file", p["etcd_ca"]),
            ("peer-client-cert-auth", "true"),
        ],
        "kube-apiserver": [
            ("tls-cert-file", p["apiserver_crt"]),
            ("tls-private-key-file", p["apiserver_key"]),
            ("service-account-key-file", p["sa_pub"]),
            ("service-account-signing-key-file", p["sa_key"]),
            ("etcd-servers", etcd),
            ("etcd-cafile", p["etcd_ca"]),
            ("etcd-certfile", p["etcd_client_crt"]),
            ("etcd-keyfile", p["etcd_client_key"]),
        ],
        "kube-controller-manager": [
            ("service-account-private-key-file", p["sa_key"]),
            # the CSR API issues certificates signed by the cluster CA (lab users)
            ("cluster-signing-cert-file", p["ca"]),
            ("cluster-signing-key-file", p["ca_key"]),
            ("use-service-account-credentials", "true"),
            ("authorization-always-allow-paths", HEALTH_PATHS),
            # one instance, no rival: with leader election a lease renewal that times out on a
            # loaded machine (5 s) makes it exit for good, and nothing restarts it
            ("leader-elect", "false"),
        ],
        "kube-scheduler": [
            ("authorization-always-allow-paths", HEALTH_PATHS),
            ("leader-elect", "false"),
        ],
        # kwok's own server (fake nodes' logs/exec/port-forward, /metrics, /debug/pprof) has no
        # authentication at all; simulated nodes need none of it: no server (an empty address
        # alone would make kwok listen on 0.0.0.0:<node-port>)
        "kwok-controller": [("server-address", ""), ("node-port", "0")],
    }
    if real_node:
        from kubelab.embedded import node

        for component, extra in node.component_flags(name, folder).items():
            flags.setdefault(component, []).extend(extra)
    doc = {
        "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
        "kind": "KwokctlConfiguration",
        # every component listens on loopback only (kwokctl's default is 0.0.0.0)
        "options": {"bindAddress": "127.0.0.1", **ports},
        "componentsPatches": [
            {"name": comp, "extraArgs": [{"key": k, "value": str(v)} for k, v in extra]}
            for comp, extra in flags.items()
        ],
    }
    return json.dumps(doc, indent=1) + "\n"


def _config_path(name: str) -> Path:
    return workdir() / f"kubelab-kwokctl-{name}.yaml"


def _require_binaries() -> Path:
    bins = build.bin_dir()
    absent = [n for n in build.BINARY_NAMES if not (bins / n).is_file()]
    if absent:
        raise EmbeddedClusterError(
            f"the embedded cluster's binaries are not built ({', '.join(absent)} missing in "
            f"{bins})",
            build.HINT,
        )
    return bins


def _kwokctl(name: str, args: list[str], timeout: float) -> str:
    cmd = [str(build.bin_dir() / "kwokctl"), "--name", name, *args]
    try:
        proc = subprocess.run(
            cmd,
            env=_env(name),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise EmbeddedClusterError(
            f"`kwokctl {' '.join(args[:3])}` did not finish within {timeout:.0f}s",
            f"see the component logs in {workdir() / 'clusters'}/<name>/logs, then run "
            "`kubelab cluster down` and try again",
        ) from None
    if proc.returncode != 0:
        out = [_tidy(line) for line in (proc.stderr.strip() or proc.stdout.strip()).splitlines()]
        out = [line for line in out if line][-8:]
        raise EmbeddedClusterError(
            f"`kwokctl {' '.join(args[:3])}` failed (exit {proc.returncode}):\n  "
            + "\n  ".join(out),
            "see the logs above; `kubelab cluster down` removes a half-created cluster",
        )
    return proc.stdout


def _tidy(line: str) -> str:
    """kwokctl logs JSON lines; keep the message and error of the interesting ones."""
    try:
        rec = json.loads(line)
    except ValueError:
        return line.strip()
    if not isinstance(rec, dict):
        return line.strip()
    if rec.get("level") not in ("ERROR", "WARN"):
        return ""
    return ": ".join(str(rec[k]) for k in ("msg", "err") if rec.get(k))


# ---------------------------------------------------------------- API access


class _Api:
    """Minimal HTTPS client for the cluster's API server, from a kubeconfig context."""

    def __init__(self, cfg: dict[str, Any], context: str) -> None:
        entry = kubeconfig.context_entry(cfg, context)
        if entry is None or not entry.get("server"):
            raise EmbeddedClusterError(f"context {context} not found in kubeconfig")
        self.server = str(entry["server"]).rstrip("/")
        cluster = _named(cfg["clusters"], entry["cluster"]).get("cluster", {})
        user = _named(cfg["users"], entry["user"]).get("user", {})
        self._tmp = tempfile.TemporaryDirectory(prefix="kubelab-api-")
        ctx = ssl.create_default_context(cafile=self._file(cluster, "certificate-authority"))
        cert = self._file(user, "client-certificate")
        key = self._file(user, "client-key")
        if cert and key:
            ctx.load_cert_chain(cert, key)
        self._ctx = ctx
        self._token = user.get("token")

    def _file(self, section: dict[str, Any], key: str) -> str | None:
        if section.get(key):
            return str(section[key])
        data = section.get(f"{key}-data")
        if not data:
            return None
        path = Path(self._tmp.name) / key
        path.write_bytes(b64decode(data))
        return str(path)

    def get(self, path: str, timeout: float = 5) -> tuple[int, bytes]:
        req = urllib.request.Request(self.server + path)
        if self._token:
            req.add_header("Authorization", f"Bearer {self._token}")
        try:
            with urllib.request.urlopen(req, context=self._ctx, timeout=timeout) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def close(self) -> None:
        self._tmp.cleanup()


def _named(items: list[dict[str, Any]], name: str | None) -> dict[str, Any]:
    for item in items or []:
        if item.get("name") == name:
            return item
    return {}


def _node_conditions(api: _Api) -> list[tuple[str, bool]]:
    code, body = api.get("/api/v1/nodes")
    if code != 200:
        return []
    nodes = []
    for item in json.loads(body).get("items", []):
        conds = item.get("status", {}).get("conditions", [])
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)
        nodes.append((item["metadata"]["name"], ready))
    return sorted(nodes)


def _status_from(cfg_path: Path, context: str) -> StatusResult:
    if not cfg_path.exists():
        return StatusResult(False, [], "no kubeconfig for this cluster")
    try:
        api = _Api(kubeconfig.load(cfg_path), context)
    except (OSError, ssl.SSLError) as exc:
        return StatusResult(False, [], f"cannot use the cluster's credentials: {exc}")
    try:
        try:
            code, body = api.get("/readyz")
        except (OSError, ssl.SSLError) as exc:
            reason = getattr(exc, "reason", exc)
            return StatusResult(False, [], f"API server {api.server} does not answer: {reason}")
        if code != 200:
            return StatusResult(
                False, [], f"API server {api.server} not ready (HTTP {code}): {body[:200]!r}"
            )
        nodes = _node_conditions(api)
    finally:
        api.close()
    if not nodes:
        return StatusResult(True, [], f"API server {api.server} ready; no nodes")
    not_ready = [n for n, ok in nodes if not ok]
    if not_ready:
        msg = f"API server ready; nodes not Ready: {', '.join(not_ready)}"
    else:
        msg = f"API server {api.server} ready; {len(nodes)} node(s) Ready"
    return StatusResult(True, nodes, msg)


# ---------------------------------------------------------------- processes and ports


def _pids(name: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for pid_file in (cluster_dir(name) / "pids").glob("*.pid"):
        try:
            out[pid_file.stem] = int(pid_file.read_text().strip())
        except (OSError, ValueError):
            continue
    return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie is not running
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        pass
    return inodes


def _listen_sockets() -> list[tuple[int, str]]:
    """(port, socket inode) of every TCP socket in LISTEN state, from /proc; Linux only."""
    return [
        (int(cols[1].rsplit(":", 1)[1], 16), cols[9])
        for _, cols in hoststate.socket_rows(("tcp", "tcp6"))
        if len(cols) >= 10 and cols[3] == "0A"
    ]


def _listening_ports(inodes: set[str] | None = None) -> set[int]:
    """TCP ports in LISTEN state (optionally only sockets with the given inodes); Linux only."""
    return {port for port, inode in _listen_sockets() if inodes is None or inode in inodes}


def _config_ports(name: str) -> set[int]:
    """Ports named in kwokctl's saved configuration (options.*Port)."""
    ports: set[int] = set()
    try:
        docs = list(yaml.safe_load_all((cluster_dir(name) / "kwok.yaml").read_text()))
    except (OSError, yaml.YAMLError):
        return ports
    for doc in docs:
        if isinstance(doc, dict) and doc.get("kind") == "KwokctlConfiguration":
            for key, value in (doc.get("options") or {}).items():
                if key.endswith("Port") and isinstance(value, int) and value > 0:
                    ports.add(value)
    return ports


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _listener_pids(port: int) -> set[int] | None:
    """Pids with a socket listening on this TCP port; None where /proc cannot tell (not Linux)."""
    if not Path("/proc/net/tcp").exists():
        return None
    inodes = {inode for listening, inode in _listen_sockets() if listening == port}
    owners: set[int] = set()
    if not inodes:
        return owners
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and _socket_inodes(int(proc.name)) & inodes:
            owners.add(int(proc.name))
    return owners


def _is_component_of(pid: int, name: str) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return False
    return f"{cluster_dir(name)}/" in cmdline


def port_held_by_cluster(port: int, name: str = DEFAULT_NAME) -> bool:
    """Is the port listening, and (where /proc tells) by a process of this cluster?

    Another cluster may legitimately reuse a port right after this one released it.
    """
    if not _port_open(port):
        return False
    owners = _listener_pids(port)
    if owners is None:
        return True
    return any(_is_component_of(pid, name) for pid in owners)


def cluster_footprint(name: str = DEFAULT_NAME) -> tuple[dict[str, int], set[int]]:
    """(component -> pid of live processes, listening ports) of this cluster right now."""
    pids = {comp: pid for comp, pid in _pids(name).items() if _alive(pid)}
    inodes: set[str] = set()
    for pid in pids.values():
        inodes |= _socket_inodes(pid)
    ports = _listening_ports(inodes) if inodes else set()
    ports |= {p for p in _config_ports(name) if p not in ports and port_held_by_cluster(p, name)}
    return pids, ports


# ---------------------------------------------------------------- public API


def _merge_into_user_kubeconfig(name: str) -> Path:
    ctx_name = context_name(name)
    src = kubeconfig.load(private_kubeconfig(name))
    ctx = _named(src["contexts"], ctx_name)
    if not ctx:
        raise EmbeddedClusterError(
            f"kwokctl wrote no context {ctx_name} to {private_kubeconfig(name)}",
            "run `kubelab cluster down` and `kubelab cluster up` again",
        )
    body = ctx.get("context", {})
    cluster = _named(src["clusters"], body.get("cluster"))
    user = _named(src["users"], body.get("user"))
    kubeconfig.upsert(cluster, user, ctx, make_current=True)
    return kubeconfig.kubeconfig_path()


def _default_service_account_exists(name: str) -> bool:
    """Pods are refused until the controller manager has made default/default: wait for it,
    as kind does, so that the first `kubectl apply` of a Pod does not fail on a fresh cluster."""
    api = _Api(kubeconfig.load(private_kubeconfig(name)), context_name(name))
    try:
        code, _ = api.get("/api/v1/namespaces/default/serviceaccounts/default")
    except (OSError, ssl.SSLError):
        return False
    finally:
        api.close()
    return code == 200


def _wait_nodes(name: str, count: int, deadline: float) -> StatusResult:
    last = StatusResult(False, [], "not checked yet")
    while time.monotonic() < deadline:
        last = _status_from(private_kubeconfig(name), context_name(name))
        if last.api_ok and len(last.nodes) >= count and all(ok for _, ok in last.nodes[:count]):
            if count == 0 or _default_service_account_exists(name):
                return last
            last = StatusResult(True, last.nodes, "waiting for the default ServiceAccount")
        time.sleep(0.3)
    raise EmbeddedClusterError(
        f"cluster {name} not ready in time: {last.message}",
        f"see the logs in {cluster_dir(name) / 'logs'}; `kubelab cluster down` then `up` again",
    )


# ---------------------------------------------------------------- the volume provisioner

PROVISIONER_PROC = "kubelab-provisioner"  # its pid file: <cluster dir>/pids/<this>.pid
PROVISIONER_READY_S = 30


def volumes_dir(name: str = DEFAULT_NAME) -> Path:
    """Where the provisioner makes volume folders: inside the cluster's own state folder."""
    return cluster_dir(name) / "volumes"


def _provisioner_pid(name: str) -> int | None:
    pid = _pids(name).get(PROVISIONER_PROC)
    return pid if pid is not None and _alive(pid) and _is_component_of(pid, name) else None


def _kubectl_admin(name: str, args: list[str], stdin: str | None = None) -> str:
    cmd = [str(build.bin_dir() / "kubectl"), "--kubeconfig", str(private_kubeconfig(name)), *args]
    try:
        proc = subprocess.run(
            cmd, input=stdin, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise EmbeddedClusterError(f"`kubectl {' '.join(args[:2])}` timed out") from None
    if proc.returncode != 0:
        raise EmbeddedClusterError(
            f"`kubectl {' '.join(args[:2])}` failed: {proc.stderr.strip()[-500:]}"
        )
    return proc.stdout


def start_provisioner(name: str = DEFAULT_NAME, progress: Progress = print) -> int:
    """Start the cluster's volume provisioner (:mod:`kubelab.embedded.provisioner`) unless it
    runs; return once the default StorageClass exists. Its own identity, with its own RBAC."""
    import sys

    from kubelab.embedded import pki, provisioner

    pid = _provisioner_pid(name)
    cdir = cluster_dir(name)
    if pid is None:
        folder = cdir / "pki"
        crt, key = pki.issue(
            folder, "local-path-provisioner", (folder / "ca.crt", folder / "ca.key"),
            provisioner.USER,
        )  # fmt: skip
        kcfg = cdir / "local-path-provisioner.kubeconfig"
        text = yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "kubelab", "cluster": {
                "server": _server(name), "certificate-authority": str(folder / "ca.crt")}}],
            "users": [{"name": "provisioner", "user": {
                "client-certificate": str(crt), "client-key": str(key)}}],
            "contexts": [{"name": "kubelab", "context": {"cluster": "kubelab",
                                                         "user": "provisioner"}}],
            "current-context": "kubelab",
        })  # fmt: skip
        fd = os.open(kcfg, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        _kubectl_admin(name, ["apply", "--server-side", "--force-conflicts", "-f", "-"],
                       provisioner.RBAC_MANIFEST)  # fmt: skip
        (cdir / "logs").mkdir(parents=True, exist_ok=True)
        (cdir / "pids").mkdir(parents=True, exist_ok=True)
        log = open(cdir / "logs" / f"{PROVISIONER_PROC}.log", "ab")  # noqa: SIM115 - the child's
        src = Path(provisioner.__file__).resolve().parents[2]
        child = subprocess.Popen(
            [sys.executable, "-m", "kubelab.embedded.provisioner", "--kubeconfig", str(kcfg),
             "--root", str(volumes_dir(name)), "--cluster-dir", str(cdir)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, cwd=cdir,
            env={**os.environ, "PYTHONPATH": str(src)},
        )  # fmt: skip
        log.close()
        (cdir / "pids" / f"{PROVISIONER_PROC}.pid").write_text(f"{child.pid}\n")
        pid = child.pid
        progress(f"volume provisioner {provisioner.PROVISIONER} started (pid {pid})")
    deadline = time.monotonic() + PROVISIONER_READY_S
    while time.monotonic() < deadline:
        out = subprocess.run(
            [str(build.bin_dir() / "kubectl"), "--kubeconfig", str(private_kubeconfig(name)),
             "get", "storageclass", provisioner.DEFAULT_CLASS, "-o", "name"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        if out.returncode == 0:
            return pid
        if not _alive(pid):
            break
        time.sleep(0.3)
    tail = ""
    with contextlib.suppress(OSError):
        lines = (cdir / "logs" / f"{PROVISIONER_PROC}.log").read_text().splitlines()
        tail = "\n  ".join(lines[-8:])
    raise EmbeddedClusterError(
        f"the volume provisioner did not make the StorageClass {provisioner.DEFAULT_CLASS} "
        f"within {PROVISIONER_READY_S}s:\n  {tail}",
        "`kubelab cluster down` removes everything that was started",
    )


def stop_provisioner(name: str = DEFAULT_NAME) -> None:
    """Stop the provisioner (by its pid, only if it is this cluster's) and wait for it."""
    pid = _provisioner_pid(name)
    if pid is not None:
        _terminate(pid, grace_s=10)


def _terminate(pid: int, grace_s: float) -> None:
    """SIGTERM, up to grace_s for the process to end, then SIGKILL."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def has_real_node(name: str = DEFAULT_NAME) -> bool:
    """Was this cluster made with a real node (its node folder exists)?"""
    from kubelab.embedded import node

    return node.Paths(name).root.exists()


def real_node_name(name: str = DEFAULT_NAME) -> str | None:
    """The name of this cluster's real node (None when all its nodes are simulated)."""
    from kubelab.embedded import node

    return node.NODE_NAME if has_real_node(name) else None


def up(
    nodes: int = 1,
    name: str = DEFAULT_NAME,
    progress: Progress = print,
    real_node: bool = False,
    apps_root: Path | None = None,
) -> UpResult:
    """Start the embedded cluster with `nodes` Ready kwok nodes and make its context current.

    With ``real_node`` (Linux + root), also a real node (kubelet + containerd, see
    :mod:`kubelab.embedded.node`) labelled ``kubelab.dev/node=real``; the simulated nodes are
    then tainted ``kwok.x-k8s.io/node=fake:NoSchedule`` so that Pods land on the real node.
    If starting the real node fails (or is interrupted), the whole cluster is removed again.
    """
    _check_name(name)
    if nodes < 0 or (nodes < 1 and not real_node):
        raise EmbeddedClusterError(f"--nodes must be at least 1 (got {nodes})")
    start = time.monotonic()
    bins = _require_binaries()
    _check_kubeconfig_writable()
    ctx = context_name(name)
    cdir = cluster_dir(name)
    if real_node:
        from kubelab.embedded import node

        node.preflight(name)
        if (cdir / "kwok.yaml").exists() and not has_real_node(name):
            raise EmbeddedClusterError(
                f"cluster {name} is running without a real node",
                f"`kubelab cluster down --name {name}`, then `kubelab cluster up --real-node`",
            )
    elif has_real_node(name):
        real_node = True  # `up` again on a real-node cluster keeps its node

    if (cdir / "kwok.yaml").exists():
        st = _status_from(private_kubeconfig(name), ctx)
        if st.api_ok and real_node:
            from kubelab.embedded import node

            if node.active_cluster() == name and node.is_running(name):
                if len(st.nodes) - 1 < nodes:  # --nodes counts the simulated ones
                    st = _scale(name, nodes, True, progress)
                start_provisioner(name, progress)
                path = _merge_into_user_kubeconfig(name)
                progress(f"cluster {name} is already running ({st.message}); context {ctx}")
                return UpResult(
                    name, ctx, path, _server(name), time.monotonic() - start,
                    [n for n, _ in st.nodes], already_running=True, real_node=node.NODE_NAME,
                )  # fmt: skip
            # a half-started real node (interrupted `up`): start it again from scratch
            progress(f"cluster {name}: the real node is not running; recreating the cluster")
            down(name, progress)
        elif st.api_ok:
            if len(st.nodes) < nodes:
                st = _scale(name, nodes, False, progress)
            start_provisioner(name, progress)
            path = _merge_into_user_kubeconfig(name)
            progress(f"cluster {name} is already running ({st.message}); context {ctx}")
            return UpResult(
                name,
                ctx,
                path,
                _server(name),
                time.monotonic() - start,
                [n for n, _ in st.nodes],
                already_running=True,
            )
        progress(f"cluster {name} exists but does not answer; starting it again")
        # kwokctl skips a component whose pid file names a live process: drop pid files of
        # processes that died (crash, reboot) or whose pid now belongs to something else
        for pid_file in (cdir / "pids").glob("*.pid"):
            pid = _pids(name).get(pid_file.stem)
            if pid is None or not (_alive(pid) and _is_component_of(pid, name)):
                pid_file.unlink(missing_ok=True)
        try:
            _kwokctl(name, ["start", "cluster"], CREATE_TIMEOUT_S)
            _wait_nodes(name, 0, time.monotonic() + READY_TIMEOUT_S)
        except EmbeddedClusterError:
            progress(f"restart failed; recreating cluster {name}")
            _kwokctl(name, ["delete", "cluster", "--kubeconfig", str(private_kubeconfig(name))], 60)
    created = not (cdir / "kwok.yaml").exists()
    try:
        return _finish_up(name, nodes, bins, real_node, apps_root, created, start, progress)
    except BaseException as exc:  # a failure or Ctrl-C: what this call started goes again
        if created:
            # Ctrl-C, or a stop signal the CLI turned into an exception: not an Exception
            why = "failed" if isinstance(exc, Exception) else "interrupted"
            progress(f"`up` {why}; removing the half-started cluster {name} again")
            with contextlib.suppress(Exception):
                down(name, progress)
        raise


def _scale(name: str, nodes: int, real_node: bool, progress: Progress) -> StatusResult:
    """Grow the simulated nodes to `nodes` (never shrinks them: Pods may run there).

    With ``real_node`` the simulated nodes get no routable InternalIP (192.0.2.x is this VM's
    gateway) and, once the real node runs, its taint (see kubelab.embedded.node), so that
    container labs keep landing on the real node."""
    scale = ["scale", "node", "--replicas", str(nodes)]
    if real_node:
        scale += ["--param", ".nodeIPs=[]"]
    _kwokctl(name, scale, 60)
    from kubelab.embedded import node

    running = real_node and node.active_cluster() == name and node.is_running(name)
    st = _wait_nodes(name, nodes + running, time.monotonic() + READY_TIMEOUT_S)
    if running:
        progress(f"tainting the simulated nodes {node.FAKE_TAINT}")
        node.taint_simulated(private_kubeconfig(name))
    return st


def _check_kubeconfig_writable() -> Path:
    """The context is written at the end of `up`: make sure it can be, before starting."""
    path = kubeconfig.kubeconfig_path()
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    writable = os.access(folder, os.W_OK) and folder.is_dir()
    if (path.exists() and not os.access(path, os.W_OK)) or not writable:
        raise EmbeddedClusterError(
            f"cannot write the kubeconfig {path} (read-only); nothing was started",
            "make it writable, or point KUBECONFIG at a writable file",
        )
    return path


def _finish_up(
    name: str,
    nodes: int,
    bins: Path,
    real_node: bool,
    apps_root: Path | None,
    created: bool,
    start: float,
    progress: Progress,
) -> UpResult:
    ctx = context_name(name)
    cdir = cluster_dir(name)
    if created:
        progress(f"starting cluster {name} (Kubernetes {build.k8s_version()}) ...")
        _create(name, bins, real_node)
    progress(f"adding {nodes} simulated node(s) ...")
    st = _scale(name, nodes, real_node, progress)
    real_name = None
    if real_node:
        from kubelab.embedded import node

        result = node.start(
            name, private_kubeconfig(name), _server(name), cdir / "pki",
            apps_root or _apps_root(), progress,
        )  # fmt: skip
        real_name = result.name
        st = _wait_nodes(name, nodes + 1, time.monotonic() + READY_TIMEOUT_S)
    start_provisioner(name, progress)
    path = _merge_into_user_kubeconfig(name)
    seconds = time.monotonic() - start
    progress(f"cluster {name} ready in {seconds:.1f}s: {st.message}; context {ctx} in {path}")
    return UpResult(
        name, ctx, path, _server(name), seconds, [n for n, _ in st.nodes], real_node=real_name
    )


def _create(name: str, bins: Path, real_node: bool) -> None:
    """`kwokctl create cluster` with kubelab's configuration. Ports are chosen and used under a
    machine-wide lock, so two clusters created at once never pick the same ones."""
    import fcntl

    workdir().mkdir(parents=True, exist_ok=True)
    with open(workdir() / ".create.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        ports = dict(zip(PORT_OPTIONS, _free_ports(len(PORT_OPTIONS)), strict=True))
        config = _config_path(name)
        tmp = config.with_name(f".{config.name}.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(kwokctl_config(name, ports, real_node))
        os.replace(tmp, config)
        args = [
            "--config", str(config),
            "create", "cluster",
            "--runtime", "binary",
            "--kube-apiserver-binary", str(_wrapper(bins, "kube-apiserver")),
            "--kube-controller-manager-binary", str(_wrapper(bins, "kube-controller-manager")),
            "--kube-scheduler-binary", str(_wrapper(bins, "kube-scheduler")),
            "--kwok-controller-binary", str(bins / "kwok"),
            "--etcd-binary", str(bins / "etcd"),
            "--kube-authorization=true",
            "--kube-admission=true",
            "--kubeconfig", str(private_kubeconfig(name)),
            "--wait", f"{READY_TIMEOUT_S}s",
        ]  # fmt: skip
        _kwokctl(name, args, CREATE_TIMEOUT_S)


# kwokctl v0.8 always passes some flags kubelab must not keep, and list flags add up rather than
# being replaced by a later value. A wrapper per component drops exactly those and execs the real
# binary (same pid, all other arguments unchanged):
# - kube-apiserver: --etcd-servers=http://... (etcd here takes only TLS clients)
# - kube-controller-manager, kube-scheduler: --authorization-always-allow-paths=...,/metrics
#   (kubelab passes the health paths only: /metrics needs credentials)
DROPPED_FLAGS = {
    "kube-apiserver": ("--etcd-servers=http://*",),
    "kube-controller-manager": ("--authorization-always-allow-paths=*/metrics*",),
    "kube-scheduler": ("--authorization-always-allow-paths=*/metrics*",),
}
WRAPPER = """#!/bin/sh
# kubelab: drop flags that kwokctl adds and kubelab replaces (see kubelab/embedded/cluster.py)
for arg do
  shift
  case "$arg" in
    {patterns}) ;;
    *) set -- "$@" "$arg" ;;
  esac
done
exec {binary} "$@"
"""


def _wrapper(bins: Path, component: str) -> Path:
    path = workdir() / "bin" / component
    patterns = "|".join(DROPPED_FLAGS[component])
    text = WRAPPER.format(patterns=patterns, binary=bins / component)
    if not path.exists() or path.read_text() != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(text)
        os.chmod(tmp, 0o755)
        os.replace(tmp, path)
    return path


def _apps_root() -> Path:
    return build.repo_root() / "apps"


def _server(name: str) -> str:
    entry = kubeconfig.context_entry(kubeconfig.load(private_kubeconfig(name)), context_name(name))
    return str((entry or {}).get("server") or "")


def down(name: str = DEFAULT_NAME, progress: Progress = print) -> None:
    """Stop and delete the cluster, check nothing is left running, remove its context."""
    _check_name(name)
    ctx = context_name(name)
    cdir = cluster_dir(name)
    # the context goes last: if it cannot be removed, say so before stopping anything
    kubeconfig.check_removable(ctx)
    stop_provisioner(name)  # first: nothing reclaims volumes while the node goes
    if has_real_node(name):
        from kubelab.embedded import node

        progress(f"stopping the real node of cluster {name} ...")
        problems = node.stop(name, progress)
        if problems:
            raise EmbeddedClusterError(
                f"the real node of cluster {name} did not stop cleanly: " + "; ".join(problems),
                "see the problems above, then run `kubelab cluster down` again",
            )
    if cdir.exists():
        _stop_addon_processes(cdir, progress)
        pids, ports = cluster_footprint(name)
        ports |= _config_ports(name)
        if (build.bin_dir() / "kwokctl").exists():
            progress(f"stopping cluster {name} ...")
            _kwokctl(
                name, ["delete", "cluster", "--kubeconfig", str(private_kubeconfig(name))], 120
            )
        leftovers = _wait_gone(name, pids, ports, time.monotonic() + STOP_TIMEOUT_S)
        if leftovers[0]:
            for pid in leftovers[0].values():  # processes of this cluster only, by pid
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
            leftovers = _wait_gone(name, pids, ports, time.monotonic() + 10)
        procs, open_ports = leftovers
        if procs or open_ports:
            raise EmbeddedClusterError(
                f"cluster {name} did not stop cleanly: processes {procs or '-'}, "
                f"ports still listening {sorted(open_ports) or '-'}",
                "stop those processes, then run `kubelab cluster down` again",
            )
        if cdir.exists():  # kwokctl removes it; a failed create may leave it
            shutil.rmtree(cdir, ignore_errors=True)
        _config_path(name).unlink(missing_ok=True)
    else:
        progress(f"no cluster {name} is running")
    kubeconfig.remove(ctx)
    progress(f"cluster {name} removed; context {ctx} removed from {kubeconfig.kubeconfig_path()}")


def _stop_addon_processes(cdir: Path, progress: Progress) -> None:
    """Add-ons that run as host processes (kubelab.addons, e.g. Gatekeeper) keep a pid file
    under <cluster>/addons/<addon>/: stop them before their API server goes away."""
    from kubelab.addons.host import owned_pid

    for pid_file in sorted((cdir / "addons").glob("*/*.pid")):
        pid = owned_pid(pid_file)
        if pid is None:  # gone, or the pid was reused by another program
            continue
        progress(f"stopping add-on process {pid_file.parent.name}/{pid_file.stem} (pid {pid}) ...")
        _terminate(pid, grace_s=15)


def _wait_gone(
    name: str, pids: dict[str, int], ports: set[int], deadline: float
) -> tuple[dict[str, int], set[int]]:
    while True:
        procs = {c: p for c, p in pids.items() if _alive(p)}
        open_ports = {p for p in ports if port_held_by_cluster(p, name)}
        if (not procs and not open_ports) or time.monotonic() >= deadline:
            return procs, open_ports
        time.sleep(0.2)


def status(name: str = DEFAULT_NAME) -> StatusResult:
    """Does the API server answer /readyz, and is every node Ready?"""
    _check_name(name)
    if not (cluster_dir(name) / "kwok.yaml").exists():
        return StatusResult(False, [], f"no embedded cluster {name}; run `kubelab cluster up`")
    st = _status_from(private_kubeconfig(name), context_name(name))
    if st.api_ok and not st.nodes:
        st.message += "; run `kubelab cluster up` to add nodes"
    return st
