"""metrics-server: the resource metrics API (metrics.k8s.io) behind `kubectl top` and the HPA.

Pinned to the kubernetes-sigs chart 3.13.1, which installs metrics-server 0.8.1 (supported on
Kubernetes 1.31+, so 1.36 included). metrics-server 0.9.0 (1.34+) is tagged, but no chart
release ships it yet: bump both together when one does.
"""

from __future__ import annotations

from kubelab.addons.base import AddOn, APIServiceAvailable, Chart, DeploymentAvailable

# Local clusters' kubelets serve self-signed certificates that metrics-server cannot verify.
_INSECURE_KUBELET_TLS = {"args": ["--kubelet-insecure-tls"]}

ADDON = AddOn(
    name="metrics-server",
    summary="resource metrics API for `kubectl top` and the HorizontalPodAutoscaler",
    chart=Chart(
        name="metrics-server",
        version="3.13.1",
        repo="https://kubernetes-sigs.github.io/metrics-server/",
    ),
    app_version="0.8.1",
    namespace="kube-system",
    release="metrics-server",
    ready=(
        DeploymentAvailable("kube-system", "metrics-server"),
        APIServiceAvailable("v1beta1.metrics.k8s.io"),
    ),
    served=(APIServiceAvailable("v1beta1.metrics.k8s.io"),),
    flavour_values={
        "kind": _INSECURE_KUBELET_TLS,
        "docker-desktop": _INSECURE_KUBELET_TLS,
        "minikube": _INSECURE_KUBELET_TLS,
        "orbstack": _INSECURE_KUBELET_TLS,
    },
    # k3s ships metrics-server in kube-system; the embedded cluster runs it beside its real node
    provided_by=("k3d", "rancher-desktop", "embedded"),
    needs=("containers",),  # it scrapes kubelets: simulated nodes have none
    timeout=300.0,
)
