"""Istio's base chart: its CRDs and cluster-wide roles, installed before istiod (`istio`).

Pinned to 1.30.4, the newest patch of Istio 1.30 (supports Kubernetes 1.36; Istio 1.29, the
reference's line, reached end of life in August 2026). Real clusters only: see kubelab.addons.istio.
"""

from __future__ import annotations

from kubelab.addons.base import AddOn, Chart, CRDEstablished

VERSION = "1.30.4"
REPO = "https://istio-release.storage.googleapis.com/charts"
NAMESPACE = "istio-system"
NO_ENVOY = (
    "Envoy, the proxy in Istio's sidecars and gateways, is C++ (kubelab builds only Go programs "
    "from the Go module proxy) and the embedded cluster pulls no images"
)

ADDON = AddOn(
    name="istio-base",
    summary="Istio's CRDs and cluster roles (install before `istio`)",
    chart=Chart(name="base", version=VERSION, repo=REPO),
    app_version=VERSION,
    namespace=NAMESPACE,
    release="istio-base",
    ready=(CRDEstablished("virtualservices.networking.istio.io"),),
    needs=("containers",),
    unavailable={"embedded": NO_ENVOY},
    timeout=120.0,
)
