"""Kiali: the service mesh console whose graph shows who calls whom through Istio's sidecars.

Pinned to the kiali-server chart 2.31.0 (the newest release verified). It reads the sidecars'
metrics from Prometheus (the monitoring lab's kube-prometheus-stack, in namespace
`monitoring`); without it the graph stays empty. Real clusters only, after `istio`.
"""

from __future__ import annotations

from kubelab.addons.base import AddOn, Chart, DeploymentAvailable
from kubelab.addons.istio_base import NAMESPACE, NO_ENVOY

VERSION = "2.31.0"

ADDON = AddOn(
    name="kiali",
    summary="Kiali, Istio's console: the traffic graph of the mesh (reads Prometheus)",
    chart=Chart(name="kiali-server", version=VERSION, repo="https://kiali.org/helm-charts"),
    app_version=VERSION,
    namespace=NAMESPACE,
    release="kiali-server",
    ready=(DeploymentAvailable(NAMESPACE, "kiali"),),
    values={
        "auth": {"strategy": "token"},
        "external_services": {
            "prometheus": {
                "url": "http://prometheus-kube-prometheus-prometheus.monitoring:9090",
            }
        },
        "deployment": {"resources": {"requests": {"cpu": "10m", "memory": "64Mi"}}},
    },
    needs=("containers", "addon:istio"),
    unavailable={"embedded": NO_ENVOY},
    timeout=300.0,
)
