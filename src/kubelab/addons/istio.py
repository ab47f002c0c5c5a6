"""Istio's control plane (istiod): sidecar injection, mTLS, and its Gateway API controller.

Pinned to the istiod chart 1.30.4 (Kubernetes 1.36 supported), after `istio-base`. Real
clusters only: its sidecars and gateways are Envoy, which the embedded cluster cannot run (see
kubelab.addons.istio_base.NO_ENVOY). The Gateway API CRDs come from the `traefik` add-on (Istio
reads the same standard channel); install `istio` after it when a lab uses both.
"""

from __future__ import annotations

from kubelab.addons.base import AddOn, Chart, DeploymentAvailable
from kubelab.addons.istio_base import NAMESPACE, NO_ENVOY, REPO, VERSION

ADDON = AddOn(
    name="istio",
    summary="Istio service mesh control plane (istiod): sidecar injection, mTLS, traffic rules",
    chart=Chart(name="istiod", version=VERSION, repo=REPO),
    app_version=VERSION,
    namespace=NAMESPACE,
    release="istiod",
    ready=(DeploymentAvailable(NAMESPACE, "istiod"),),
    values={
        "pilot": {"resources": {"requests": {"cpu": "100m", "memory": "256Mi"}}},
        "global": {"proxy": {"resources": {"requests": {"cpu": "10m", "memory": "40Mi"}}}},
    },
    needs=("containers", "addon:istio-base"),
    unavailable={"embedded": NO_ENVOY},
    timeout=300.0,
)
