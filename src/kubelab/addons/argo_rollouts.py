"""Argo Rollouts: the Rollout, AnalysisTemplate and AnalysisRun kinds and their controller
(blue/green and canary updates, promotion, analysis, abort and undo).

Real clusters: the argo-helm chart 2.41.1 (Argo Rollouts v1.9.1, built against the Kubernetes
v0.34 client libraries; it drives only stable APIs: Pods, ReplicaSets, Services). One replica,
no dashboard Deployment, and `keepCRDs: false` so that an uninstall leaves nothing behind.

The embedded cluster: the same controller, built from the Go module proxy (tools/k8s/
argo-rollouts, its metrics and healthz servers patched to 127.0.0.1), runs as a host process
against the API server with the cluster's own kubeconfig; its CRDs come from the same module.
When the cluster's real node runs, the controller resolves names with the cluster's CoreDNS,
as it would in a Pod: it runs in a mount namespace of its own whose /etc/resolv.conf points at
the node's DNS (so an AnalysisTemplate's `web` metric can call `http://<service>.<namespace>.
svc.cluster.local/...`); the host's own file is untouched. Stopped by `kubelab addons
uninstall argo-rollouts` and by `kubelab cluster down`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kubelab.addons import host
from kubelab.addons.base import AddOn, Chart, CRDEstablished, DeploymentAvailable
from kubelab.addons.host import HostProgram, HTTPReady
from kubelab.errors import KubelabError

if TYPE_CHECKING:
    from kubelab.kube.client import Kube

VERSION = "v1.9.1"
MODULE = "github.com/argoproj/argo-rollouts"
NAMESPACE = "argo-rollouts"
ROLLOUTS_CRD = "rollouts.argoproj.io"
CRDS = (
    "rollouts.argoproj.io",
    "analysistemplates.argoproj.io",
    "clusteranalysistemplates.argoproj.io",
    "analysisruns.argoproj.io",
    "experiments.argoproj.io",
)
CRD_FILES = (
    "rollout-crd.yaml",
    "analysis-template-crd.yaml",
    "cluster-analysis-template-crd.yaml",
    "analysis-run-crd.yaml",
    "experiment-crd.yaml",
)
CONTROLLER = HostProgram("argo-rollouts", "rollouts-controller")


def _kubectl(kube: Kube, *args: str, stdin: str | None = None) -> str:
    return host.kubectl(kube, "argo-rollouts", *args, stdin=stdin)


def _cluster_dns(kube: Kube) -> str | None:
    """The address of the cluster's DNS server as the host reaches it, when its real node runs
    (simulated nodes run no Pods, so there is nothing to resolve)."""
    from kubelab.embedded import node

    name = host.cluster_name(kube)
    return node.NODE_IP if node.unsupported_reason() is None and node.is_running(name) else None


def _resolv_conf(dns: str) -> str:
    from kubelab.embedded import node

    domain = node.CLUSTER_DOMAIN
    return (
        "# the cluster's DNS, for the Argo Rollouts controller only (its own mount namespace)\n"
        f"nameserver {dns}\n"
        f"search {NAMESPACE}.svc.{domain} svc.{domain} {domain}\n"
        "options ndots:5\n"
    )


@dataclass(frozen=True)
class HostProcess:
    def installed(self, kube: Kube) -> bool:
        return CONTROLLER.pid(kube) is not None

    def install(self, kube: Kube, progress: Callable[[str], None]) -> None:
        from kubelab.embedded import build

        binary = build.bin_dir() / "rollouts-controller"
        if not binary.is_file():
            raise KubelabError(
                "argo-rollouts: the Argo Rollouts controller is not built",
                "run `make tools` (builds it from the Go module proxy)",
            )
        if CONTROLLER.pid(kube) is not None:
            progress("argo-rollouts: the controller is already running; nothing to change")
            return
        crds = host.module_dir("argo-rollouts", MODULE, VERSION) / "manifests" / "crds"
        progress(f"argo-rollouts: applying its CRDs ({VERSION})")
        files = [arg for f in CRD_FILES for arg in ("-f", str(crds / f))]
        _kubectl(kube, "apply", "--server-side", "--force-conflicts", *files)
        _kubectl(kube, "wait", "--for=condition=Established", "--timeout=60s",
                 *(f"crd/{c}" for c in CRDS))  # fmt: skip
        namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
        host.apply(kube, "argo-rollouts", [namespace])
        metrics, healthz = host.free_port(), host.free_port()
        cmd = [
            str(binary),
            f"--kubeconfig={host.private_kubeconfig(kube)}",
            "--leader-elect=false",  # one controller, no Lease to leave behind
            f"--metricsPort={metrics}",  # both on 127.0.0.1 (patched at build time)
            f"--healthzPort={healthz}",
            "--loglevel=info",
        ]
        dns = _cluster_dns(kube)
        if dns is not None:
            folder = CONTROLLER.folder(kube)
            folder.mkdir(parents=True, exist_ok=True)
            resolv = folder / "resolv.conf"
            resolv.write_text(_resolv_conf(dns))
            # a private mount namespace: the bind mount is seen by the controller alone and
            # goes away with it
            cmd = ["unshare", "--mount", "--propagation", "private", "--",
                   "sh", "-c", 'mount --bind "$0" /etc/resolv.conf && exec "$@"',
                   str(resolv), *cmd]  # fmt: skip
        CONTROLLER.write_port(kube, "healthz", healthz)
        CONTROLLER.write_port(kube, "metrics", metrics)
        pid = CONTROLLER.start(kube, cmd, env={"POD_NAMESPACE": NAMESPACE})
        where = f"names resolved by the cluster's DNS at {dns}" if dns else "no real node: no DNS"
        progress(f"argo-rollouts: controller started (pid {pid}; {where})")

    def uninstall(self, kube: Kube, progress: Callable[[str], None]) -> None:
        CONTROLLER.stop(kube, progress)
        present = {n.removeprefix("customresourcedefinition.apiextensions.k8s.io/")
                   for n in _kubectl(kube, "get", "crd", "-o", "name").split()}  # fmt: skip
        owners = [c for c in ("rollouts.argoproj.io", "experiments.argoproj.io") if c in present]
        if owners:
            # first the objects that own ReplicaSets and Pods, while their kinds still exist:
            # the garbage collector cannot follow an owner reference to a kind that is gone
            progress("argo-rollouts: deleting every Rollout and Experiment (their Pods with them)")
            _kubectl(kube, "delete", ",".join(owners), "--all", "--all-namespaces",
                     "--ignore-not-found", "--cascade=foreground", "--wait=true",
                     "--timeout=120s")  # fmt: skip
        progress("argo-rollouts: removing its CRDs (analyses and templates with them)")
        _kubectl(kube, "delete", "--ignore-not-found", "--wait=true", "--timeout=60s",
                 *(f"crd/{c}" for c in CRDS))  # fmt: skip
        _kubectl(kube, "delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=true",
                 "--timeout=60s")  # fmt: skip
        for name in ("healthz.port", "metrics.port", "resolv.conf"):
            (CONTROLLER.folder(kube) / name).unlink(missing_ok=True)
        progress("argo-rollouts: removed")


ADDON = AddOn(
    name="argo-rollouts",
    summary="Argo Rollouts: blue/green and canary updates with promotion, analysis and abort",
    chart=Chart(
        name="argo-rollouts",
        version="2.41.1",
        repo="https://argoproj.github.io/argo-helm",
    ),
    app_version=VERSION.removeprefix("v"),
    namespace=NAMESPACE,
    release="argo-rollouts",
    values={
        "controller": {"replicas": 1},
        "dashboard": {"enabled": False},
        "keepCRDs": False,  # an uninstall removes the kinds too (and every Rollout with them)
    },
    ready=(DeploymentAvailable(NAMESPACE, "argo-rollouts"), CRDEstablished(ROLLOUTS_CRD)),
    served=(CRDEstablished(ROLLOUTS_CRD),),
    needs=("containers",),  # the chart's controller is a Pod
    timeout=300.0,
    local=HostProcess(),
    local_ready=(
        CRDEstablished(ROLLOUTS_CRD),
        HTTPReady(CONTROLLER, "healthz", "/healthz"),
    ),
)
