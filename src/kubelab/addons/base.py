"""What an add-on is: a pinned Helm chart, its values per flavour, where it lives, how to tell it
is installed and ready, and what it needs from the cluster."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from kubelab.kube.ready import condition

if TYPE_CHECKING:
    from collections.abc import Callable

    from kubelab.kube.client import Kube


@dataclass(frozen=True)
class Chart:
    name: str  # the chart's name in `repo`, or a local chart folder when repo is None
    version: str  # pinned: never "latest"
    repo: str | None = None  # the chart repository's URL (used with `helm --repo`, no `repo add`)

    def describe(self) -> str:
        where = f" from {self.repo}" if self.repo else " (local chart)"
        return f"{self.name} {self.version}{where}"


class Local(Protocol):
    """How an add-on runs on the embedded cluster without containers: host processes next to
    its API server (kubelab starts and stops them; no helm release)."""

    def installed(self, kube: Kube) -> bool: ...

    def install(self, kube: Kube, progress: Callable[[str], None]) -> None: ...

    def uninstall(self, kube: Kube, progress: Callable[[str], None]) -> None: ...


class Check(Protocol):
    """One fact that must hold for an add-on to be ready."""

    def evaluate(self, kube: Kube) -> tuple[bool, str]:
        """(holds, what was seen) — `what was seen` is for people."""
        ...


def _get(kube: Kube, api_version: str, kind: str, name: str, ns: str | None) -> dict | None:
    from kubelab.kube.client import UnknownKind

    try:
        return kube.get(api_version, kind, name, ns)
    except UnknownKind:
        return None


@dataclass(frozen=True)
class DeploymentAvailable:
    namespace: str
    name: str

    def evaluate(self, kube: Kube) -> tuple[bool, str]:
        what = f"deployment {self.namespace}/{self.name}"
        obj = _get(kube, "apps/v1", "Deployment", self.name, self.namespace)
        if obj is None:
            return False, f"{what} does not exist"
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        want = spec.get("replicas", 1)
        available = status.get("availableReplicas") or 0
        updated = status.get("updatedReplicas") or 0
        # observedGeneration: the status describes the current spec, not the previous one
        current = (status.get("observedGeneration") or 0) >= (
            (obj.get("metadata") or {}).get("generation") or 0
        )
        ok = current and available >= want and updated >= want
        return ok, f"{what}: {available}/{want} available"


@dataclass(frozen=True)
class APIServiceAvailable:
    name: str  # e.g. v1beta1.metrics.k8s.io

    def evaluate(self, kube: Kube) -> tuple[bool, str]:
        obj = _get(kube, "apiregistration.k8s.io/v1", "APIService", self.name, None)
        if obj is None:
            return False, f"APIService {self.name} does not exist"
        cond = condition(obj, "Available") or {}
        ok = cond.get("status") == "True"
        detail = "" if ok else f" ({cond.get('reason') or 'no Available condition yet'})"
        return ok, f"APIService {self.name}: {'Available' if ok else 'not Available'}{detail}"


@dataclass(frozen=True)
class CRDEstablished:
    name: str  # e.g. rollouts.argoproj.io

    def evaluate(self, kube: Kube) -> tuple[bool, str]:
        obj = _get(kube, "apiextensions.k8s.io/v1", "CustomResourceDefinition", self.name, None)
        if obj is None:
            return False, f"CRD {self.name} does not exist"
        ok = (condition(obj, "Established") or {}).get("status") == "True"
        return ok, f"CRD {self.name}: {'Established' if ok else 'not Established'}"


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Helm's own rule for values files: maps merge key by key, anything else is replaced."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


@dataclass(frozen=True)
class AddOn:
    name: str  # what labs require as addon:NAME
    summary: str
    chart: Chart
    app_version: str  # what the chart version installs (for people; the chart pins it)
    namespace: str
    release: str
    ready: tuple[Check, ...]  # all hold: our release is ready
    # any of them holding means *someone* serves it (the cluster, minikube's addon…): then
    # kubelab neither installs a second copy nor uninstalls theirs; defaults to `ready`
    served: tuple[Check, ...] = ()
    values: dict[str, Any] = field(default_factory=dict)  # for every flavour
    flavour_values: dict[str, dict[str, Any]] = field(default_factory=dict)  # merged over values
    provided_by: tuple[str, ...] = ()  # flavours whose clusters ship it already
    needs: tuple[str, ...] = ()  # requirements (kubelab.requirements) the cluster must meet
    timeout: float = 300.0  # how long an install may take to become ready
    # on the embedded cluster: run as host processes instead of a helm release (ready checks
    # then include the local ones)
    local: Local | None = None
    local_ready: tuple[Check, ...] = ()
    local_lacks: str = ""  # what the host processes do not provide, for skip reasons
    # manifests (URLs) the chart expects to find, applied server-side before it (CRDs a chart no
    # longer ships, e.g. Gateway API's) and deleted after `uninstall`
    manifests: tuple[str, ...] = ()
    # flavour -> why the add-on cannot run there (install refuses, requirements say so)
    unavailable: dict[str, str] = field(default_factory=dict)
    notes: str = ""

    def values_for(self, flavour: str) -> dict[str, Any]:
        return merge(self.values, self.flavour_values.get(flavour, {}))

    @property
    def served_checks(self) -> tuple[Check, ...]:
        return self.served or self.ready
