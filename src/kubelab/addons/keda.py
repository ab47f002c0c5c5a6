"""KEDA: event-driven autoscaling (ScaledObjects drive HorizontalPodAutoscalers, and scale to zero).

Real clusters: the project's chart 2.21.0 (KEDA v2.21.0, tested by KEDA on Kubernetes
1.34-1.36): its operator, its metrics API server (the `external.metrics.k8s.io` APIService the
HPA controller reads) and its admission webhooks, as Pods in the namespace `keda`.

The embedded cluster: KEDA's two programs that autoscaling needs, built from the Go module proxy
(tools/k8s/keda), run as host processes against its API server — and only when its real node is
up, because both ends of KEDA's work are on that node's network:

- the operator polls the scalers' sources (a RabbitMQ queue: a Pod on the node) and scales
  workloads between zero and one itself. It runs in a mount namespace of its own whose
  /etc/resolv.conf names the cluster's DNS (10.96.0.10, like a Pod of the namespace `keda`
  sees it), so `rabbitmq.default.svc.cluster.local` resolves as it does in a Pod; the host
  reaches Pod IPs over the node's bridge and Service IPs through kube-proxy's rules for
  locally sent packets. Its gRPC metrics service and health port listen on 127.0.0.1;
- the metrics API server answers the API server's aggregation layer on the node IP
  (10.244.0.1, as metrics-server does), behind the selector-less Service
  `keda/keda-metrics-apiserver`, and asks the operator over gRPC on 127.0.0.1 with mutual TLS.
  Its certificates come from a small CA of its own (the APIService carries it as caBundle).

The admission webhooks (which only reject malformed ScaledObjects early) are not run there.
`kubelab addons uninstall keda` and `kubelab cluster down` stop both processes; uninstall also
removes the ScaledObjects (KEDA restores their targets), the CRDs, the APIService, the RBAC and
the namespace.
"""

from __future__ import annotations

import base64
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kubelab.addons import host
from kubelab.addons.base import (
    AddOn,
    APIServiceAvailable,
    Chart,
    CRDEstablished,
    DeploymentAvailable,
)
from kubelab.addons.host import HostProgram, HTTPReady
from kubelab.errors import KubelabError

if TYPE_CHECKING:
    from kubelab.kube.client import Kube

VERSION = "v2.21.0"
MODULE = "github.com/kedacore/keda/v2"
NAMESPACE = "keda"
APISERVICE = "v1beta1.external.metrics.k8s.io"
SCALEDOBJECTS_CRD = "scaledobjects.keda.sh"
METRICS_SERVICE = "keda-metrics-apiserver"
RBAC_NAME = "kubelab:keda-external-metrics-reader"
KEDA_GROUPS = ("keda.sh", "eventing.keda.sh")

OPERATOR = HostProgram("keda", "keda-operator")
ADAPTER = HostProgram("keda", "keda-metrics-apiserver")

# the operator's view of DNS: a Pod's in the namespace keda
RESOLV_CONF = """# written by kubelab: the KEDA operator's DNS, as a keda Pod's
nameserver {dns}
search keda.svc.{domain} svc.{domain} {domain}
options ndots:5
"""


def _need_real_node(kube: Kube) -> None:
    from kubelab.embedded import node

    cluster = host.cluster_name(kube)
    if not node.is_running(cluster):
        raise KubelabError(
            "keda: on the embedded cluster KEDA runs beside its real node (its operator reads "
            "queues in Pods, its metrics API is served on the node's network), and cluster "
            f"{cluster} has no real node running",
            f"start it with one: `kubelab cluster down --name {cluster}` then `kubelab cluster "
            f"up --name {cluster} --real-node` (Linux, as root)",
        )


def _objects(port: int, ca: bytes) -> list[dict]:
    from kubelab.embedded.node import NODE_IP, NODE_NAME

    labels = {"app.kubernetes.io/part-of": "keda", "app.kubernetes.io/managed-by": "kubelab"}
    return [
        {"apiVersion": "v1", "kind": "Namespace",
         "metadata": {"name": NAMESPACE, "labels": labels}},
        # the metrics API server is a process on the host: a Service without selector whose
        # one endpoint is the node IP (the API server routes to endpoints, not to the Service IP)
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": METRICS_SERVICE, "namespace": NAMESPACE, "labels": labels},
         "spec": {"ports": [{"name": "https", "port": 443, "targetPort": port,
                             "protocol": "TCP"}]}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
         "metadata": {"name": f"{METRICS_SERVICE}-host", "namespace": NAMESPACE,
                      "labels": {**labels, "kubernetes.io/service-name": METRICS_SERVICE,
                                 "endpointslice.kubernetes.io/managed-by": "kubelab.dev"}},
         "addressType": "IPv4",
         "endpoints": [{"addresses": [NODE_IP], "conditions": {"ready": True},
                        "nodeName": NODE_NAME}],
         "ports": [{"name": "https", "port": port, "protocol": "TCP"}]},
        {"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
         "metadata": {"name": APISERVICE, "labels": labels},
         "spec": {"group": "external.metrics.k8s.io", "version": "v1beta1",
                  "groupPriorityMinimum": 100, "versionPriority": 100,
                  "caBundle": base64.b64encode(ca).decode(),
                  "service": {"name": METRICS_SERVICE, "namespace": NAMESPACE, "port": 443}}},
        # what the chart grants: the HPA controller may read external metrics
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": RBAC_NAME, "labels": labels},
         "rules": [{"apiGroups": ["external.metrics.k8s.io"], "resources": ["*"],
                    "verbs": ["get", "list", "watch"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": RBAC_NAME, "labels": labels},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                     "name": RBAC_NAME},
         "subjects": [{"kind": "ServiceAccount", "name": "horizontal-pod-autoscaler",
                       "namespace": "kube-system"}]},
    ]  # fmt: skip


def _wait_established(kube: Kube, names: tuple[str, ...], timeout: float = 60.0) -> None:
    """Until the CRDs are served (`kubectl wait` fails outright on a CRD without status yet)."""
    deadline = time.monotonic() + timeout
    checks = [CRDEstablished(name) for name in names]
    while True:
        seen = [check.evaluate(kube) for check in checks]
        if all(ok for ok, _ in seen):
            return
        if time.monotonic() >= deadline:
            raise KubelabError(
                f"keda: its CRDs are not Established after {timeout:.0f} s: "
                + "; ".join(what for ok, what in seen if not ok),
                "is the embedded cluster up? `kubelab cluster status`",
            )
        time.sleep(0.5)


@dataclass(frozen=True)
class HostProcesses:
    def installed(self, kube: Kube) -> bool:
        return OPERATOR.pid(kube) is not None or ADAPTER.pid(kube) is not None

    def install(self, kube: Kube, progress: Callable[[str], None]) -> None:
        from kubelab.embedded import build, pki
        from kubelab.embedded.node import CLUSTER_DOMAIN, DNS_IP, NODE_IP

        if OPERATOR.pid(kube) is not None and ADAPTER.pid(kube) is not None:
            progress("keda: already running (operator and metrics API server) — nothing to do")
            return
        _need_real_node(kube)
        binaries = {name: build.bin_dir() / name for name in ("keda", "keda-adapter")}
        missing = [name for name, path in binaries.items() if not path.is_file()]
        if missing:
            raise KubelabError(
                f"keda: {', '.join(missing)} not built",
                "run `make tools` (builds them from the Go module proxy)",
            )
        for tool in ("unshare", "mount"):
            if shutil.which(tool) is None:
                raise KubelabError(
                    f"keda: `{tool}` is not installed (the operator runs with the cluster's DNS "
                    "in a mount namespace of its own)",
                    "install util-linux (Debian: apt-get install util-linux mount)",
                )
        OPERATOR.stop(kube, progress)  # half a previous install: start both afresh
        ADAPTER.stop(kube, progress)
        folder = OPERATOR.folder(kube)
        certs = folder / "certs"
        # one certificate for both programs: the gRPC server (operator) and its client (the
        # metrics API server) check each other against ca.crt; the API server checks the
        # metrics API server's name keda-metrics-apiserver.keda.svc against the caBundle
        ca = pki.make_ca(certs, "ca", "kubelab-keda-ca")
        pki.issue(certs, "tls", ca, "keda", client=True, server=True,
                  ips=("127.0.0.1", NODE_IP),
                  dns=(f"{METRICS_SERVICE}.{NAMESPACE}.svc", "keda-operator.keda.svc"))  # fmt: skip
        src = host.module_dir("keda", MODULE, VERSION)
        progress(f"keda: applying its CRDs ({VERSION})")
        host.kubectl(kube, "keda", "apply", "--server-side", "--force-conflicts",
                     "-f", str(src / "config" / "crd" / "bases"))  # fmt: skip
        _wait_established(kube, (SCALEDOBJECTS_CRD, "triggerauthentications.keda.sh"))
        port, grpc, health, adapter_metrics = (host.free_port() for _ in range(4))
        host.apply(kube, "keda", _objects(port, ca[0].read_bytes()))
        kubeconfig = str(host.private_kubeconfig(kube))
        env = {
            "KUBECONFIG": kubeconfig,
            "WATCH_NAMESPACE": "",  # every namespace
            "POD_NAMESPACE": NAMESPACE,
            "KEDA_CLUSTER_OBJECT_NAMESPACE": NAMESPACE,
            "OPERATOR_NAME": "keda-operator",
        }
        resolv = folder / "resolv.conf"
        resolv.write_text(RESOLV_CONF.format(dns=DNS_IP, domain=CLUSTER_DOMAIN))
        OPERATOR.write_port(kube, "health", health)
        OPERATOR.start(kube, [
            # a private mount namespace (nothing propagates back to the host) in which the
            # operator's /etc/resolv.conf is the one above; exec keeps the pid
            "unshare", "--mount", "--propagation", "private", "--",
            "sh", "-c", 'mount --bind "$0" /etc/resolv.conf && exec "$@"', str(resolv),
            str(binaries["keda"]),
            f"--kubeconfig={kubeconfig}",
            "--leader-elect=false",
            "--metrics-bind-address=0",  # its Prometheus endpoint: off
            f"--health-probe-bind-address=127.0.0.1:{health}",
            f"--metrics-service-bind-address=127.0.0.1:{grpc}",
            f"--cert-dir={certs}",
            "--enable-cert-rotation=false",
            "--zap-encoder=console",
        ], env=env)  # fmt: skip
        ADAPTER.write_port(kube, "secure", port)
        ADAPTER.start(kube, [
            str(binaries["keda-adapter"]),
            f"--lister-kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            f"--bind-address={NODE_IP}",
            f"--secure-port={port}",
            f"--cert-dir={certs}",
            f"--tls-cert-file={certs / 'tls.crt'}",
            f"--tls-private-key-file={certs / 'tls.key'}",
            f"--metrics-service-address=127.0.0.1:{grpc}",
            f"--port={adapter_metrics}",  # its /metrics: on 127.0.0.1 (patched, see build.py)
            "--zap-encoder=console",
        ], env=env)  # fmt: skip
        progress(
            f"keda: operator (gRPC 127.0.0.1:{grpc}) and metrics API server "
            f"({NODE_IP}:{port}) started; logs in {folder}"
        )

    def uninstall(self, kube: Kube, progress: Callable[[str], None]) -> None:
        what = "keda"
        crds = [n for n in host.kubectl(kube, what, "get", "crd", "-o", "name").split()
                if n.removeprefix("customresourcedefinition.apiextensions.k8s.io/")
                .split(".", 1)[-1] in KEDA_GROUPS]  # fmt: skip
        if crds and OPERATOR.pid(kube) is not None:
            # while the operator runs it takes its finalizers off and deletes the HPAs it made
            progress("keda: deleting ScaledObjects and ScaledJobs (the operator finalizes them)")
            host.kubectl(kube, what, "delete", "scaledobjects.keda.sh,scaledjobs.keda.sh",
                         "--all-namespaces", "--all", "--wait=true", "--timeout=60s",
                         check=False)  # fmt: skip
        OPERATOR.stop(kube, progress)
        ADAPTER.stop(kube, progress)
        for kind in ("scaledobjects.keda.sh", "scaledjobs.keda.sh") if crds else ():
            # what the operator did not finalize (it was not running): let the CRDs go
            out = host.kubectl(kube, what, "get", kind, "-A", "-o", "json", check=False)
            for item in (json.loads(out or "{}").get("items") or []) if out else []:
                meta = item["metadata"]
                host.kubectl(kube, what, "patch", kind, meta["name"], "-n", meta["namespace"],
                             "--type=merge", "-p", '{"metadata":{"finalizers":null}}',
                             check=False)  # fmt: skip
        host.kubectl(kube, what, "delete", "apiservice", APISERVICE, "--ignore-not-found")
        host.kubectl(kube, what, "delete", "clusterrolebinding,clusterrole", RBAC_NAME,
                     "--ignore-not-found")  # fmt: skip
        if crds:
            progress("keda: removing its CRDs")
            host.kubectl(kube, what, "delete", "--ignore-not-found", "--wait=true",
                         "--timeout=60s", *crds)  # fmt: skip
        host.kubectl(kube, what, "delete", "namespace", NAMESPACE, "--ignore-not-found",
                     "--wait=true", "--timeout=60s")  # fmt: skip
        for name in ("health.port", "secure.port", "resolv.conf"):
            (OPERATOR.folder(kube) / name).unlink(missing_ok=True)
        progress("keda: removed")


@dataclass(frozen=True)
class BothRunning:
    """Both host processes are alive (the operator's readiness alone would not say so)."""

    def evaluate(self, kube: Kube) -> tuple[bool, str]:
        for program in (OPERATOR, ADAPTER):
            if program.pid(kube) is None:
                return False, program.not_running(kube)
        return True, "operator and metrics API server running"


ADDON = AddOn(
    name="keda",
    summary="KEDA: scale workloads on events (queue lengths…), down to zero",
    chart=Chart(name="keda", version="2.21.0", repo="https://kedacore.github.io/charts"),
    app_version=VERSION.removeprefix("v"),
    namespace=NAMESPACE,
    release="keda",
    ready=(
        DeploymentAvailable(NAMESPACE, "keda-operator"),
        DeploymentAvailable(NAMESPACE, "keda-operator-metrics-apiserver"),
        DeploymentAvailable(NAMESPACE, "keda-admission-webhooks"),
        CRDEstablished(SCALEDOBJECTS_CRD),
        APIServiceAvailable(APISERVICE),
    ),
    served=(CRDEstablished(SCALEDOBJECTS_CRD),),
    needs=("containers",),  # the chart's Pods must run
    timeout=300.0,
    local=HostProcesses(),
    local_ready=(
        CRDEstablished(SCALEDOBJECTS_CRD),
        BothRunning(),
        HTTPReady(OPERATOR, "health", "/readyz"),
        APIServiceAvailable(APISERVICE),
    ),
    notes="on the embedded cluster: needs the real node (`kubelab cluster up --real-node`)",
)
