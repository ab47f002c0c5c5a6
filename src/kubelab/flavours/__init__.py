"""Local cluster flavours: how to recognise each one and what it can do for the labs."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from typing import Any

from kubelab.kube.client import Kube, UnknownKind
from kubelab.kube.context import flavour_of_context


@dataclass(frozen=True)
class Flavour:
    name: str
    title: str
    containers: bool  # really runs containers: logs, exec, port-forward, probes, HTTP into Pods
    loadbalancer: bool  # LoadBalancer Services answer on localhost without extra steps
    csr_signing: bool  # the CSR API issues client certificates (lab users)
    notes: str = ""


FLAVOURS: dict[str, Flavour] = {
    f.name: f
    for f in (
        Flavour("docker-desktop", "Docker Desktop", True, True, True),
        Flavour(
            "kind",
            "kind",
            True,
            False,
            True,
            "LoadBalancer needs cloud-provider-kind",
        ),
        Flavour(
            "k3d",
            "k3d",
            True,
            True,
            True,
            "LoadBalancer ports must be mapped when the cluster is created",
        ),
        Flavour(
            "minikube",
            "minikube",
            True,
            False,
            True,
            "LoadBalancer needs `minikube tunnel`",
        ),
        Flavour(
            "rancher-desktop",
            "Rancher Desktop",
            True,
            True,
            True,
            "uses Docker's image store with the dockerd (moby) engine",
        ),
        Flavour("orbstack", "OrbStack", True, True, True),
        Flavour(
            "embedded",
            "kubelab embedded cluster (kwok nodes)",
            False,
            False,
            True,
            "a real control plane whose nodes are simulated: no containers run",
        ),
        Flavour("unknown", "unrecognised (explicitly allowed) cluster", True, False, True),
    )
}

# How to tell that an add-on is installed: a CRD it brings, or an API it serves.
ADDON_MARKERS: dict[str, tuple[str, str, str]] = {
    "prometheus": (
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        "prometheuses.monitoring.coreos.com",
    ),
    "keda": ("apiextensions.k8s.io/v1", "CustomResourceDefinition", "scaledobjects.keda.sh"),
    "gateway-api": (
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        "gateways.gateway.networking.k8s.io",
    ),
    "istio": (
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        "virtualservices.networking.istio.io",
    ),
    "argocd": ("apiextensions.k8s.io/v1", "CustomResourceDefinition", "applications.argoproj.io"),
    "argo-rollouts": (
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        "rollouts.argoproj.io",
    ),
    "gatekeeper": (
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        "constrainttemplates.templates.gatekeeper.sh",
    ),
    "metrics-server": ("apiregistration.k8s.io/v1", "APIService", "v1beta1.metrics.k8s.io"),
}


def detect(context: str, nodes: list[dict[str, Any]]) -> Flavour:
    """The flavour from the nodes (most reliable) and else the context name."""
    for node in nodes:
        meta = node.get("metadata", {})
        labels = meta.get("labels") or {}
        annotations = meta.get("annotations") or {}
        provider = (node.get("spec") or {}).get("providerID") or ""
        name = meta.get("name", "")
        if annotations.get("kwok.x-k8s.io/node") == "fake" or labels.get("type") == "kwok":
            return FLAVOURS["embedded"]
        if provider.startswith("kind://"):
            return FLAVOURS["kind"]
        if "minikube.k8s.io/name" in labels:
            return FLAVOURS["minikube"]
        if name == "docker-desktop" or name.startswith("desktop-"):
            return FLAVOURS["docker-desktop"]
        if name == "orbstack":
            return FLAVOURS["orbstack"]
        if name.startswith("lima-rancher-desktop"):
            return FLAVOURS["rancher-desktop"]
        if name.startswith("k3d-"):
            return FLAVOURS["k3d"]
    return FLAVOURS[flavour_of_context(context) or "unknown"]


@dataclass
class Capabilities:
    """Answers 'is this requirement met here?' for one cluster, caching live look-ups."""

    kube: Kube
    flavour: Flavour
    node_count: int
    path: str  # the PATH the lab's commands run with (cached tools included)
    _cache: dict[str, tuple[bool, str]] = field(default_factory=dict)

    def check(self, requirement: str) -> tuple[bool, str]:
        if requirement not in self._cache:
            self._cache[requirement] = self._check(requirement)
        return self._cache[requirement]

    def unmet(self, requirements: list[str]) -> list[str]:
        """The reasons of the requirements that are not met (empty: all met)."""
        reasons = []
        for req in requirements:
            ok, reason = self.check(req)
            if not ok:
                reasons.append(reason)
        return reasons

    def _check(self, req: str) -> tuple[bool, str]:
        f = self.flavour
        if req == "containers":
            return f.containers, f"needs a container runtime; {f.title} runs no containers"
        if req == "loadbalancer":
            return f.loadbalancer, (
                f"needs LoadBalancer Services on localhost; {f.title} does not provide them"
                + (f" ({f.notes})" if f.notes else "")
            )
        if req == "csr-signing":
            return f.csr_signing, f"needs the CSR API to sign client certificates on {f.title}"
        if req == "helm":
            found = shutil.which("helm", path=self.path) is not None
            return found, "needs helm on PATH (see the prerequisites)"
        if req.startswith("nodes>="):
            want = int(req.removeprefix("nodes>="))
            return self.node_count >= want, f"needs {want} nodes; the cluster has {self.node_count}"
        if req == "default-storageclass":
            classes = self._list("storage.k8s.io/v1", "StorageClass")
            default = [
                c
                for c in classes
                if (c["metadata"].get("annotations") or {}).get(
                    "storageclass.kubernetes.io/is-default-class"
                )
                == "true"
            ]
            return bool(default), "needs a default StorageClass; the cluster has none"
        if req == "metrics-api":
            return self._addon("metrics-server"), "needs the metrics API (install metrics-server)"
        if req.startswith("addon:"):
            name = req.removeprefix("addon:")
            if name == "ingress":
                ok = bool(self._list("networking.k8s.io/v1", "IngressClass"))
            else:
                ok = self._addon(name)
            return ok, f"needs the add-on {name!r}; install it with its lab first"
        return False, f"unknown requirement {req!r}"

    def _list(self, api_version: str, kind: str) -> list[dict]:
        try:
            return self.kube.list(api_version, kind, None)
        except UnknownKind:
            return []

    def _addon(self, name: str) -> bool:
        api_version, kind, obj = ADDON_MARKERS[name]
        try:
            found = self.kube.get(api_version, kind, obj, None)
        except UnknownKind:
            return False
        if found is None:
            return False
        if kind == "APIService":
            conditions = (found.get("status") or {}).get("conditions") or []
            return any(c["type"] == "Available" and c["status"] == "True" for c in conditions)
        return True
