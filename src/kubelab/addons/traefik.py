"""Traefik Proxy: the course's Ingress controller and Gateway API implementation.

Real clusters: the Traefik chart 41.3.0 (the newest release verified; it ships Traefik v3.7.11,
`image.tag` pins v3.7.13, the newest v3.7 patch, the same version kubelab builds for the
embedded cluster), with its Ingress, CRD (Middleware, IngressRoute…) and Gateway API providers on,
an IngressClass and a GatewayClass named `traefik` (neither the cluster's default) and no Gateway
of its own (the labs make theirs). The chart no longer ships the Gateway API CRDs: kubelab
applies the standard channel's v1.6.3 release first, as Traefik's documentation says to.
The Service is a LoadBalancer where the flavour answers one on localhost, else a ClusterIP to
`kubectl port-forward` to.

The embedded cluster runs no containers without its real node and has no registry, so there
Traefik (built from the Go module proxy, tools/k8s/traefik) runs as a host process against the
API server with the same three providers. Its `web` entrypoint listens on 127.0.0.1:8000, the
port Traefik's chart gives that entrypoint inside its Pod, so a Gateway listener on port 8000
means the same on every flavour; its `traefik` entrypoint (ping) on another loopback port. It
forwards to Pod IPs, which this machine reaches over the real node's bridge. The CRDs (Gateway
API's from the pinned sigs.k8s.io/gateway-api module, Traefik's from its own module), the
IngressClass and GatewayClass are made by kubelab; `kubelab addons uninstall traefik` or
`kubelab cluster down` stops the process, and uninstall removes all of them.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kubelab.addons import host
from kubelab.addons.base import AddOn, Chart, CRDEstablished, DeploymentAvailable, _get
from kubelab.errors import KubelabError
from kubelab.kube.ready import condition

if TYPE_CHECKING:
    from kubelab.kube.client import Kube

VERSION = "v3.7.13"
GATEWAY_API = "v1.6.3"  # standard channel
GATEWAY_API_URL = (
    "https://github.com/kubernetes-sigs/gateway-api/releases/download/"
    f"{GATEWAY_API}/standard-install.yaml"
)
NAMESPACE = "traefik"
CLASS = "traefik"  # the IngressClass and the GatewayClass
INGRESS_CONTROLLER = "traefik.io/ingress-controller"
GATEWAY_CONTROLLER = "traefik.io/gateway-controller"
WEB_PORT = 8000  # the web entrypoint: Traefik's container port, and 127.0.0.1:8000 embedded
MIDDLEWARES_CRD = "middlewares.traefik.io"
HTTPROUTES_CRD = "httproutes.gateway.networking.k8s.io"
TRAEFIK_CRDS = "docs/content/reference/dynamic-configuration/kubernetes-crd-definition-v1.yml"

PROGRAM = host.HostProgram("traefik", "traefik")


@dataclass(frozen=True)
class GatewayClassAccepted:
    name: str

    def evaluate(self, kube: Kube) -> tuple[bool, str]:
        obj = _get(kube, "gateway.networking.k8s.io/v1", "GatewayClass", self.name, None)
        if obj is None:
            return False, f"GatewayClass {self.name} does not exist"
        cond = condition(obj, "Accepted") or {}
        ok = cond.get("status") == "True"
        return ok, f"GatewayClass {self.name}: {'Accepted' if ok else 'not Accepted yet'}"


def _classes() -> list[dict]:
    return [
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "IngressClass",
            "metadata": {"name": CLASS},
            "spec": {"controller": INGRESS_CONTROLLER},
        },
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "GatewayClass",
            "metadata": {"name": CLASS},
            "spec": {"controllerName": GATEWAY_CONTROLLER},
        },
    ]


def _port_free(port: int) -> bool:
    """Nothing listens there. SO_REUSEADDR, as Traefik's own listener has: connections of an
    earlier Traefik that wait out TIME_WAIT on that port do not stop a new one from listening."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _crd_sources() -> tuple[str, str]:
    gateway = host.module_dir("traefik", "sigs.k8s.io/gateway-api", GATEWAY_API)
    traefik = host.module_dir("traefik", "github.com/traefik/traefik/v3", VERSION)
    return str(gateway / "config" / "crd" / "standard"), str(traefik / TRAEFIK_CRDS)


@dataclass(frozen=True)
class HostProcess:
    def installed(self, kube: Kube) -> bool:
        return PROGRAM.pid(kube) is not None

    def install(self, kube: Kube, progress: Callable[[str], None]) -> None:
        from kubelab.embedded import build

        binary = build.bin_dir() / "traefik"
        if not binary.is_file():
            raise KubelabError(
                "traefik: the Traefik binary is not built",
                "run `make tools` (builds it from the Go module proxy)",
            )
        if PROGRAM.pid(kube) is not None:
            progress(f"traefik: already running (pid {PROGRAM.pid(kube)}); nothing to change")
            return
        if not _port_free(WEB_PORT):
            raise KubelabError(
                f"traefik: 127.0.0.1:{WEB_PORT} is in use by another program; Traefik's web "
                "entrypoint needs it (Gateways name that port in their listeners)",
                f"stop what listens there (`ss -ltnp 'sport = :{WEB_PORT}'`), then install again",
            )
        gateway_crds, traefik_crds = _crd_sources()
        progress(f"traefik: applying the Gateway API {GATEWAY_API} CRDs and Traefik's CRDs")
        for source in (gateway_crds, traefik_crds):
            host.kubectl(kube, "traefik", "apply", "--server-side", "--force-conflicts", "-f",
                         source)  # fmt: skip
        host.kubectl(kube, "traefik", "wait", "--for=condition=Established", "--timeout=60s",
                     f"crd/{MIDDLEWARES_CRD}", f"crd/{HTTPROUTES_CRD}",
                     "crd/gateways.gateway.networking.k8s.io")  # fmt: skip
        namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
        host.apply(kube, "traefik", [namespace, *_classes()])
        ping = host.free_port()
        cmd = [
            str(binary),
            f"--entryPoints.web.address=127.0.0.1:{WEB_PORT}",
            f"--entryPoints.traefik.address=127.0.0.1:{ping}",
            "--ping=true",
            "--ping.entryPoint=traefik",
            "--providers.kubernetesIngress=true",
            "--providers.kubernetesIngress.ingressEndpoint.ip=127.0.0.1",
            "--providers.kubernetesCRD=true",
            "--providers.kubernetesGateway=true",
            "--providers.kubernetesGateway.statusAddress.ip=127.0.0.1",
            # nothing leaves the machine: no update check, no usage statistics
            "--global.checkNewVersion=false",
            "--global.sendAnonymousUsage=false",
            "--log.level=INFO",
        ]
        PROGRAM.write_port(kube, "ping", ping)
        # the providers' client reads KUBECONFIG (the cluster's own admin kubeconfig)
        pid = PROGRAM.start(kube, cmd, env={"KUBECONFIG": str(host.private_kubeconfig(kube))})
        progress(f"traefik: started (pid {pid}, web entrypoint http://127.0.0.1:{WEB_PORT})")

    def uninstall(self, kube: Kube, progress: Callable[[str], None]) -> None:
        PROGRAM.stop(kube, progress)
        host.kubectl(kube, "traefik", "delete", "ingressclass", CLASS, "--ignore-not-found")
        crds = host.kubectl(kube, "traefik", "get", "crd", "-o", "name").split()
        if (
            "customresourcedefinition.apiextensions.k8s.io/gatewayclasses.gateway.networking.k8s.io"
            in crds
        ):
            host.kubectl(kube, "traefik", "delete", "gatewayclass", CLASS, "--ignore-not-found")
        host.kubectl(kube, "traefik", "delete", "namespace", NAMESPACE, "--ignore-not-found",
                     "--wait=true", "--timeout=60s")  # fmt: skip
        progress("traefik: removing Traefik's and the Gateway API CRDs (their objects with them)")
        gateway_crds, traefik_crds = _crd_sources()
        for source in (traefik_crds, gateway_crds):
            host.kubectl(kube, "traefik", "delete", "--ignore-not-found", "--wait=true",
                         "--timeout=60s", "-f", source)  # fmt: skip
        (PROGRAM.folder(kube) / "ping.port").unlink(missing_ok=True)
        progress("traefik: removed")


_LOADBALANCER = {"service": {"spec": {"type": "LoadBalancer"}}}

ADDON = AddOn(
    name="traefik",
    summary="Traefik Proxy: Ingress controller (with Middlewares) and Gateway API implementation",
    chart=Chart(name="traefik", version="41.3.0", repo="https://traefik.github.io/charts"),
    app_version=VERSION.removeprefix("v"),
    namespace=NAMESPACE,
    release="traefik",
    ready=(
        DeploymentAvailable(NAMESPACE, "traefik"),
        CRDEstablished(MIDDLEWARES_CRD),
        GatewayClassAccepted(CLASS),
    ),
    values={
        "image": {"tag": VERSION},
        "providers": {
            "kubernetesIngress": {"enabled": True},
            "kubernetesCRD": {"enabled": True},
            "kubernetesGateway": {"enabled": True},
        },
        "ingressClass": {"enabled": True, "isDefaultClass": False, "name": CLASS},
        "gatewayClass": {"enabled": True, "name": CLASS},
        "gateway": {"enabled": False},  # the labs make their own Gateways
        "global": {"checkNewVersion": False, "sendAnonymousUsage": False},
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}},
        # no LoadBalancer on localhost: reach it with `kubectl port-forward` (see the lab)
        "service": {"spec": {"type": "ClusterIP"}},
    },
    flavour_values={
        "docker-desktop": _LOADBALANCER,
        "orbstack": _LOADBALANCER,
        "rancher-desktop": _LOADBALANCER,
        "k3d": _LOADBALANCER,
    },
    manifests=(GATEWAY_API_URL,),
    needs=("containers",),  # the chart's Pod must really run to route anything
    timeout=300.0,
    local=HostProcess(),
    local_ready=(
        CRDEstablished(MIDDLEWARES_CRD),
        CRDEstablished(HTTPROUTES_CRD),
        host.HTTPReady(PROGRAM, "ping", "/ping"),
        GatewayClassAccepted(CLASS),
    ),
    notes="k3d and Rancher Desktop ship their own Traefik (k3s): turn it off before installing "
    "this one (`k3d cluster create --k3s-arg '--disable=traefik@server:0'`; Rancher Desktop: "
    "Preferences → Kubernetes → untick Traefik), or the two fight over ports 80/443",
)
