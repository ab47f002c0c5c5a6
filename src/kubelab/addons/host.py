"""Add-ons as host processes: how an add-on runs on the embedded cluster, which has no container
runtime unless its real node is up, and no registry ever.

The add-on's binary (built from the Go module proxy by kubelab.embedded.build) runs on the host
against the cluster's API server with the cluster's private kubeconfig. Everything it owns lives
in `<cluster dir>/addons/<addon>/`: `<program>.pid`, `<program>.log`, its certificates and ports.
`kubelab cluster down` stops every such process before the API server goes (see
kubelab.embedded.cluster._stop_addon_processes), and only processes started for that folder:
each carries KUBELAB_ADDON_DIR=<folder> in its environment, which a reused pid does not.

Whatever a host process listens on must be 127.0.0.1: nothing of a training cluster is reachable
from the network.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kubelab.errors import KubelabError

if TYPE_CHECKING:
    from kubelab.kube.client import Kube

OWNER_ENV = "KUBELAB_ADDON_DIR"
STOP_TIMEOUT_S = 15.0
KUBECTL_TIMEOUT_S = 120
_NOT_UP = "is the embedded cluster up? `kubelab cluster status`"


def cluster_name(kube: Kube) -> str:
    from kubelab.embedded.cluster import CONTEXT_PREFIX

    return kube.context.removeprefix(CONTEXT_PREFIX)


def private_kubeconfig(kube: Kube) -> Path:
    """The cluster's own admin kubeconfig, for host processes (never the learner's file)."""
    from kubelab.embedded.cluster import private_kubeconfig as path

    return path(cluster_name(kube))


def owned_pid(pid_file: Path) -> int | None:
    """The pid in `pid_file` if that process is alive and was started for the file's folder."""
    from kubelab.embedded.cluster import _alive

    try:
        pid = int(pid_file.read_text())
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return None
    if f"{OWNER_ENV}={pid_file.parent}".encode() not in environ:  # pid reused by another program
        return None
    return pid if _alive(pid) else None


@dataclass(frozen=True)
class HostProgram:
    """One long-running process of an add-on on the host."""

    addon: str  # the folder's name under <cluster>/addons/
    program: str  # the stem of its pid and log files

    def folder(self, kube: Kube) -> Path:
        from kubelab.embedded.cluster import cluster_dir

        return cluster_dir(cluster_name(kube)) / "addons" / self.addon

    def log(self, kube: Kube) -> Path:
        return self.folder(kube) / f"{self.program}.log"

    def pid(self, kube: Kube) -> int | None:
        return owned_pid(self.folder(kube) / f"{self.program}.pid")

    def start(self, kube: Kube, cmd: list[str], env: dict[str, str] | None = None) -> int:
        """Start `cmd` in the add-on's folder, in a session of its own (a Ctrl-C of the kubelab
        command that started it does not reach it), its output appended to its log."""
        folder = self.folder(kube)
        folder.mkdir(parents=True, exist_ok=True)
        full_env = {**os.environ, **(env or {}), OWNER_ENV: str(folder)}
        with open(self.log(kube), "ab") as log:
            try:
                proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=full_env,
                                        cwd=folder, start_new_session=True)  # fmt: skip
            except OSError as e:
                raise KubelabError(
                    f"{self.addon}: cannot start {cmd[0]}: {e}",
                    "run `make tools` (it builds the add-on binaries from the Go module proxy)",
                ) from None
        (folder / f"{self.program}.pid").write_text(str(proc.pid))
        return proc.pid

    def stop(self, kube: Kube, progress: Callable[[str], None] = lambda _: None) -> None:
        """SIGTERM, then SIGKILL after STOP_TIMEOUT_S; nothing if it is not running."""
        from kubelab.embedded.cluster import _terminate

        pid = self.pid(kube)
        if pid is not None:
            progress(f"{self.addon}: stopping {self.program} (pid {pid})")
            _terminate(pid, grace_s=STOP_TIMEOUT_S)
        (self.folder(kube) / f"{self.program}.pid").unlink(missing_ok=True)

    def not_running(self, kube: Kube) -> str:
        """For a readiness check: what to say, with the end of the log, when it is not up."""
        try:
            tail = self.log(kube).read_text(errors="replace").strip().splitlines()[-3:]
        except OSError:
            tail = []
        last = ("; its log ends: " + " | ".join(tail)[-400:]) if tail else ""
        return f"{self.program} is not running (log: {self.log(kube)}){last}"

    def write_port(self, kube: Kube, name: str, port: int) -> None:
        self.folder(kube).mkdir(parents=True, exist_ok=True)
        (self.folder(kube) / f"{name}.port").write_text(str(port))

    def read_port(self, kube: Kube, name: str) -> int | None:
        try:
            return int((self.folder(kube) / f"{name}.port").read_text())
        except (OSError, ValueError):
            return None


def kubectl(kube: Kube, what: str, *args: str, stdin: str | None = None, check: bool = True) -> str:
    """Run the built kubectl against `kube`; `what` names the add-on in errors."""
    from kubelab.embedded import build

    cmd = [str(build.bin_dir() / "kubectl"), "--kubeconfig", str(kube.kubeconfig),
           "--context", kube.context, *args]  # fmt: skip
    try:
        proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True,
                              timeout=KUBECTL_TIMEOUT_S, check=False)  # fmt: skip
    except subprocess.TimeoutExpired:
        raise KubelabError(
            f"{what}: `kubectl {' '.join(args)}` did not finish within {KUBECTL_TIMEOUT_S} s",
            _NOT_UP,
        ) from None
    if check and proc.returncode != 0:
        raise KubelabError(
            f"{what}: `kubectl {' '.join(args)}` failed: {proc.stderr.strip()[-800:]}", _NOT_UP
        )
    return proc.stdout


def apply(kube: Kube, what: str, objects: list[dict], *, server_side: bool = False) -> str:
    """`kubectl apply` of these objects as one List."""
    flags = ["--server-side", "--force-conflicts"] if server_side else []
    doc = json.dumps({"apiVersion": "v1", "kind": "List", "items": objects})
    return kubectl(kube, what, "apply", *flags, "-f", "-", stdin=doc)


def module_dir(tools_subdir: str, module: str, version: str, toolchain: str | None = None) -> Path:
    """The source of a pinned Go module (its CRDs, manifests…), from the Go module cache:
    downloaded once, through the pinning module in tools/k8s/<tools_subdir> (with the Go
    toolchain its go.mod needs, as kubelab.embedded.build pins it)."""
    from kubelab.embedded import build

    env = {**os.environ, "GOTOOLCHAIN": toolchain} if toolchain else None
    try:
        proc = subprocess.run(["go", "mod", "download", "-json", f"{module}@{version}"],
                              cwd=build.tools_dir() / tools_subdir, capture_output=True,
                              text=True, timeout=300, check=False, env=env)  # fmt: skip
        return Path(json.loads(proc.stdout)["Dir"])
    except (OSError, subprocess.TimeoutExpired, ValueError, KeyError):
        raise KubelabError(
            f"no {module} {version} module in the Go module cache",
            "run `make tools` (needs Go and the Go module proxy)",
        ) from None


def free_port() -> int:
    """A port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class HTTPReady:
    """The host program answers 200 on http://127.0.0.1:<its `port` file>/<path>."""

    program: HostProgram
    port: str  # the name of the port file written with HostProgram.write_port
    path: str

    def evaluate(self, kube: Kube) -> tuple[bool, str]:
        if self.program.pid(kube) is None:
            return False, self.program.not_running(kube)
        port = self.program.read_port(kube, self.port)
        try:
            url = f"http://127.0.0.1:{port}{self.path}"
            with urllib.request.urlopen(url, timeout=2) as r:
                ok = r.status == 200
        except (OSError, ValueError):
            ok = False
        return ok, f"{self.program.program} {'ready' if ok else 'not ready yet'}"
