"""Argo CD: a GitOps controller that keeps the cluster in step with manifests in Git.

Real clusters: the argo-helm chart `argo-cd` 10.3.3 (Argo CD v3.5.1; Argo CD supports its three
newest minors, 3.4–3.6 now, and 3.5 runs on Kubernetes 1.36). Dex (single sign-on) and the
notifications controller are left out: the labs log in as admin and send no notifications.

The embedded cluster has no containers without its real node, so there the two components that
do the GitOps work run as host processes, built from the Go module proxy (tools/k8s/argo-cd,
Argo CD v3.6.1, the newest the proxy serves: one multiplexed binary whose ARGOCD_BINARY_NAME
picks the component):

- a Redis (Debian's redis-server) on 127.0.0.1, the cache both components share;
- the repo-server on 127.0.0.1 (plain gRPC, loopback only), with git, helm and kustomize on its
  PATH: it clones the repositories and renders their manifests;
- the application-controller, which compares and syncs. It serves metrics on 0.0.0.0 with no
  flag to change that, so it runs in a network namespace of its own (kubelab.addons.netns)
  with the API server, Redis and the repo-server relayed to it on the same loopback ports.

kubelab applies Argo CD's CRDs (from the same module), the `argocd` namespace, its settings
(argocd-cm, argocd-secret) and the `default` AppProject, which argocd-server would otherwise
create. There is no argocd-server (API and web UI) on the embedded cluster: Applications are
made with kubectl. `kubelab addons uninstall argo-cd` (or `kubelab cluster down`) stops the
processes; uninstall also deletes the Applications (letting the controller remove what they
deployed), the CRDs and the namespace.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from kubelab.addons import host
from kubelab.addons.base import AddOn, Chart, CRDEstablished, DeploymentAvailable
from kubelab.addons.host import HostProgram, HTTPReady
from kubelab.errors import KubelabError

if TYPE_CHECKING:
    from kubelab.kube.client import Kube

MODULE = "github.com/argoproj/argo-cd/v3"
VERSION = "v3.6.1"  # on the embedded cluster (tools/k8s/argo-cd/go.mod)
CHART_VERSION = "10.3.3"
CHART_APP_VERSION = "3.5.1"
NAMESPACE = "argocd"
APPLICATIONS_CRD = "applications.argoproj.io"
CRDS = ("application-crd.yaml", "applicationset-crd.yaml", "appproject-crd.yaml")

REDIS = HostProgram("argo-cd", "redis")
REPO_SERVER = HostProgram("argo-cd", "repo-server")
RELAY = HostProgram("argo-cd", "relay")  # the host side of the controller's relays
CONTROLLER = HostProgram("argo-cd", "application-controller")
PROGRAMS = (CONTROLLER, RELAY, REPO_SERVER, REDIS)  # the order they stop in

DELETE_TIMEOUT_S = 60


def _kubectl(kube: Kube, *args: str, stdin: str | None = None, check: bool = True) -> str:
    return host.kubectl(kube, "argo-cd", *args, stdin=stdin, check=check)


def _settings() -> list[dict]:
    part_of = {"app.kubernetes.io/part-of": "argocd"}  # how Argo CD finds its settings
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "argocd-cm", "namespace": NAMESPACE, "labels": part_of},
            "data": {"timeout.reconciliation": "180s"},  # Argo CD's default Git polling
        },
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "AppProject",
            "metadata": {"name": "default", "namespace": NAMESPACE},
            "spec": {
                "sourceRepos": ["*"],
                "destinations": [{"server": "*", "namespace": "*"}],
                "clusterResourceWhitelist": [{"group": "*", "kind": "*"}],
            },
        },
    ]


def _secret() -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "argocd-secret",
            "namespace": NAMESPACE,
            "labels": {"app.kubernetes.io/part-of": "argocd"},
        },
        "stringData": {"server.secretkey": secrets.token_urlsafe(32)},
    }


def _api_server_port(kube: Kube) -> int:
    text = host.private_kubeconfig(kube).read_text()
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("server:"):
            port = urlparse(line.split(":", 1)[1].strip()).port
            if port:
                return port
    raise KubelabError(
        f"argo-cd: no API server address in {host.private_kubeconfig(kube)}",
        "is the embedded cluster up? `kubelab cluster status`",
    )


def _binaries() -> tuple[Path, Path, str]:
    from kubelab.embedded import build

    argocd, kustomize = build.bin_dir() / "argocd", build.bin_dir() / "kustomize"
    if not (argocd.is_file() and kustomize.is_file()):
        raise KubelabError(
            "argo-cd: Argo CD (or kustomize) is not built",
            "run `make tools` (builds them from the Go module proxy; Argo CD v3.6 needs "
            "GOTOOLCHAIN=go1.27.3, which the build sets itself)",
        )
    redis = shutil.which("redis-server")
    if redis is None:
        raise KubelabError(
            "argo-cd: redis-server is not installed (Argo CD's cache)",
            "install Debian's redis-server: `python3 scripts/test_deps.py` (or `apt-get "
            "install redis-server`); kubelab starts it itself, on 127.0.0.1",
        )
    if shutil.which("git") is None:
        raise KubelabError("argo-cd: git is not installed", "install git")
    return argocd, kustomize, redis


@dataclass(frozen=True)
class HostProcesses:
    def installed(self, kube: Kube) -> bool:
        return CONTROLLER.pid(kube) is not None

    def install(self, kube: Kube, progress: Callable[[str], None]) -> None:
        from kubelab.addons import netns
        from kubelab.embedded import build

        argocd, _, redis = _binaries()
        if all(p.pid(kube) is not None for p in PROGRAMS):
            progress("argo-cd: already running; nothing to change")
            return
        unshare = netns.unshare_prefix()
        if unshare is None:
            raise KubelabError(
                "argo-cd: cannot make a network namespace here (`unshare --net`), which the "
                "application controller needs on the embedded cluster",
                "Linux only: run as root, or enable unprivileged user namespaces "
                "(kernel.unprivileged_userns_clone=1); or use a cluster that runs containers",
            )
        for program in PROGRAMS:  # a half-started earlier install: start afresh
            program.stop(kube, progress)
        folder = CONTROLLER.folder(kube)
        for sub in ("tmp", "home", "redis", "bin"):
            (folder / sub).mkdir(parents=True, exist_ok=True)

        module = host.module_dir("argo-cd", MODULE, VERSION, build.ARGOCD_GO_TOOLCHAIN)
        # the repo-server runs it on every revision it renders (Argo CD's image ships it)
        wrapper = folder / "bin" / "git-verify-wrapper.sh"
        shutil.copyfile(module / "hack" / "git-verify-wrapper.sh", wrapper)
        wrapper.chmod(0o755)
        progress(f"argo-cd: applying its CRDs ({VERSION})")
        crds = [arg for name in CRDS for arg in ("-f", str(module / "manifests" / "crds" / name))]
        _kubectl(kube, "apply", "--server-side", "--force-conflicts", *crds)
        _wait_established(kube, (APPLICATIONS_CRD, "appprojects.argoproj.io"))
        host.apply(kube, "argo-cd", _settings())
        existing = _kubectl(kube, "get", "secret", "argocd-secret", "-n", NAMESPACE,
                            "--ignore-not-found", "-o", "name")  # fmt: skip
        if not existing.strip():
            host.apply(kube, "argo-cd", [_secret()])

        redis_port, repo_port, repo_metrics = host.free_port(), host.free_port(), host.free_port()
        api_port = _api_server_port(kube)
        REDIS.start(kube, [redis, "--bind", "127.0.0.1", "--port", str(redis_port),
                           "--save", "", "--appendonly", "no", "--protected-mode", "yes",
                           # its process title would overwrite the environment that tells
                           # kubelab the process is the add-on's (kubelab.addons.host)
                           "--set-proc-title", "no",
                           "--dir", str(folder / "redis")])  # fmt: skip
        env = {
            "HOME": str(folder / "home"),  # git's and helm's own settings stay in here
            "TMPDIR": str(folder / "tmp"),  # where the repo-server clones and renders
            # helm, kustomize (built), git-verify-wrapper.sh, git
            "PATH": f"{build.bin_dir()}:{folder / 'bin'}:{_path()}",
            "ARGOCD_GPG_ENABLED": "false",
            "ARGOCD_ASK_PASS_SOCK": str(folder / "askpass.sock"),
        }
        common = ["--logformat", "text", "--redis", f"127.0.0.1:{redis_port}"]
        REPO_SERVER.start(
            kube,
            [str(argocd), "--address", "127.0.0.1", "--port", str(repo_port),
             "--metrics-address", "127.0.0.1", "--metrics-port", str(repo_metrics),
             "--disable-tls", "--client-ca-path=", *common],
            {**env, "ARGOCD_BINARY_NAME": "argocd-repo-server"},
        )  # fmt: skip
        REPO_SERVER.write_port(kube, "repo-server-metrics", repo_metrics)
        socks = {port: str(folder / f"relay-{port}.sock") for port in
                 (api_port, redis_port, repo_port)}  # fmt: skip
        relay = [_python(), "-m", "kubelab.addons.netns"]
        RELAY.start(kube, [*relay, *(f"--unix-to-tcp={s}={p}" for p, s in socks.items())])
        _wait_for_sockets(RELAY, kube, list(socks.values()))
        CONTROLLER.start(
            kube,
            [*unshare, *relay, "--loopback-up",
             *(f"--tcp-to-unix={p}={s}" for p, s in socks.items()), "--",
             str(argocd), f"--kubeconfig={host.private_kubeconfig(kube)}",
             "--namespace", NAMESPACE, "--repo-server", f"127.0.0.1:{repo_port}",
             "--repo-server-plaintext", *common],
            {**env, "ARGOCD_BINARY_NAME": "argocd-application-controller",
             # https://kubernetes.default.svc is "the cluster I run in": outside a Pod, Argo CD
             # takes that cluster's address and credentials from KUBECONFIG instead
             "ARGOCD_FAKE_IN_CLUSTER": "true",
             "KUBECONFIG": str(host.private_kubeconfig(kube)),
             "PYTHONPATH": _kubelab_path()},
        )  # fmt: skip
        progress(
            f"argo-cd: repo-server on 127.0.0.1:{repo_port}, Redis on 127.0.0.1:{redis_port}, "
            f"application-controller in a network namespace of its own (logs: {folder})"
        )

    def uninstall(self, kube: Kube, progress: Callable[[str], None]) -> None:
        crd = _kubectl(kube, "get", "crd", APPLICATIONS_CRD, "--ignore-not-found", "-o", "name")
        if crd.strip() and CONTROLLER.pid(kube) is not None:
            progress("argo-cd: deleting the Applications (the controller removes what they made)")
            _kubectl(kube, "delete", "applications.argoproj.io", "--all", "-A", "--wait=true",
                     f"--timeout={DELETE_TIMEOUT_S}s", check=False)  # fmt: skip
        for program in PROGRAMS:
            program.stop(kube, progress)
        if crd.strip():  # a finalizer nobody will now remove would block the CRD's deletion
            for name in _kubectl(kube, "get", "applications.argoproj.io", "-A", "-o",
                                 "jsonpath={range .items[*]}{.metadata.namespace}/"
                                 "{.metadata.name}{'\\n'}{end}").split():  # fmt: skip
                ns, _, app = name.partition("/")
                unfinalize = json.dumps({"metadata": {"finalizers": None}})
                _kubectl(kube, "patch", "applications.argoproj.io", app, "-n", ns,
                         "--type=merge", "-p", unfinalize, check=False)  # fmt: skip
        progress("argo-cd: removing its CRDs, settings and namespace")
        _kubectl(kube, "delete", "crd", "--ignore-not-found", "--wait=true",
                 f"--timeout={DELETE_TIMEOUT_S}s",
                 *(f"{n.removesuffix('-crd.yaml')}s.argoproj.io" for n in CRDS))  # fmt: skip
        _kubectl(kube, "delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=true",
                 f"--timeout={DELETE_TIMEOUT_S}s")  # fmt: skip
        folder = CONTROLLER.folder(kube)
        if folder.exists():
            shutil.rmtree(folder, ignore_errors=True)
        progress("argo-cd: removed")


def _path() -> str:
    return os.environ.get("PATH", "/usr/bin:/bin")


def _python() -> str:
    return sys.executable


def _kubelab_path() -> str:
    """Where the kubelab package is, so the relay runs from the same code as this command."""
    return str(Path(__file__).resolve().parents[2])


def _wait_established(kube: Kube, names: tuple[str, ...], timeout: float = 60) -> None:
    """Until the CRDs are Established (`kubectl wait` fails on a CRD with no status yet)."""
    deadline = time.monotonic() + timeout
    while True:
        results = [CRDEstablished(name).evaluate(kube) for name in names]
        if all(ok for ok, _ in results):
            return
        if time.monotonic() >= deadline:
            seen = "; ".join(what for ok, what in results if not ok)
            raise KubelabError(f"argo-cd: {seen} after {timeout:.0f}s", "`kubectl get crd`")
        time.sleep(0.2)


def _wait_for_sockets(program: HostProgram, kube: Kube, paths: list[str]) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if all(Path(p).exists() for p in paths):
            return
        if program.pid(kube) is None:
            break
        time.sleep(0.05)
    raise KubelabError(f"argo-cd: {program.not_running(kube)}", "see its log")


@dataclass(frozen=True)
class Running:
    """A host program of the add-on runs (for those with no endpoint to ask)."""

    program: HostProgram

    def evaluate(self, kube: Kube) -> tuple[bool, str]:
        if self.program.pid(kube) is None:
            return False, self.program.not_running(kube)
        return True, f"{self.program.program} running"


@dataclass(frozen=True)
class DefaultProject:
    def evaluate(self, kube: Kube) -> tuple[bool, str]:
        from kubelab.addons.base import _get

        obj = _get(kube, "argoproj.io/v1alpha1", "AppProject", "default", NAMESPACE)
        return obj is not None, f"AppProject default {'present' if obj else 'missing'}"


ADDON = AddOn(
    name="argo-cd",
    summary="Argo CD: GitOps, the cluster kept in step with manifests in Git",
    chart=Chart(name="argo-cd", version=CHART_VERSION, repo="https://argoproj.github.io/argo-helm"),
    app_version=CHART_APP_VERSION,
    namespace=NAMESPACE,
    release="argo-cd",
    values={
        "dex": {"enabled": False},  # no single sign-on: the labs log in as admin
        "notifications": {"enabled": False},
    },
    ready=(
        CRDEstablished(APPLICATIONS_CRD),
        DeploymentAvailable(NAMESPACE, "argo-cd-argocd-server"),
        DeploymentAvailable(NAMESPACE, "argo-cd-argocd-repo-server"),
        DeploymentAvailable(NAMESPACE, "argo-cd-argocd-redis"),
    ),
    served=(CRDEstablished(APPLICATIONS_CRD),),
    needs=("containers",),  # the chart's Pods must really run
    timeout=300.0,
    local=HostProcesses(),
    local_lacks="no argocd-server (its API and web UI)",
    local_ready=(
        CRDEstablished(APPLICATIONS_CRD),
        DefaultProject(),
        Running(REDIS),
        HTTPReady(REPO_SERVER, "repo-server-metrics", "/healthz?full=true"),
        Running(RELAY),
        Running(CONTROLLER),
    ),
    notes="on the embedded cluster: repo-server and application-controller as host processes "
    "(no argocd-server, no web UI)",
)
