"""What a lab or step may need from the cluster, and whether this cluster has it.

Unmet requirements skip the step with the reason. The vocabulary (for the lab format's schema):

- containers, loadbalancer, csr-signing: what the flavour can do (kubelab.flavours)
- network-policy: the flavour's network plugin enforces NetworkPolicy; where that depends on the
  plugin installed, a known enforcing plugin's DaemonSet runs in kube-system
- metrics-api, default-storageclass: asked of the live cluster
- helm: the command, on the session's PATH
- nodes>=N: at least N nodes
- addon:NAME: an add-on of kubelab.addons, installed AND ready (`kubelab addons install NAME`)
- addon-release:NAME: the same, installed by kubelab as a Helm release (not provided by the
  cluster itself), for steps that look at the release with helm
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kubelab import addons

if TYPE_CHECKING:
    from kubelab.flavours import Flavour
    from kubelab.kube.client import Kube

ADDONS: tuple[str, ...] = addons.names()  # the add-ons a lab may require, as addon:NAME
REQUIREMENT_PATTERN = (
    r"^(containers|loadbalancer|metrics-api|default-storageclass|csr-signing|helm|network-policy"
    r"|nodes>=[1-9][0-9]?|addon(-release)?:(" + "|".join(re.escape(a) for a in ADDONS) + r"))$"
)
REQUIREMENT_HELP: dict[str, str] = {
    "containers": "a container runtime that really runs containers (logs, exec, probes, HTTP)",
    "loadbalancer": "LoadBalancer Services reachable on localhost",
    "metrics-api": "the metrics API (metrics-server) for kubectl top and the HPA",
    "default-storageclass": "a default StorageClass that provisions volumes",
    "csr-signing": "the CertificateSigningRequest API issues client certificates",
    "helm": "the helm command",
    "network-policy": "a network plugin that enforces NetworkPolicy",
    "nodes>=N": "at least N nodes",
    "addon:NAME": "an add-on installed and ready (`kubelab addons install NAME`): "
    + ", ".join(ADDONS),
    "addon-release:NAME": "an add-on installed by `kubelab addons install NAME` as a Helm "
    "release (not provided by the cluster itself), and ready",
}

METRICS_APISERVICE = "v1beta1.metrics.k8s.io"
# DaemonSets in kube-system of network plugins that enforce NetworkPolicy (kindnet since kind
# v0.24, where it embeds kube-network-policies)
POLICY_ENFORCERS = ("kindnet", "calico-node", "cilium", "kube-router", "antrea-agent", "canal")


def is_requirement(text: str) -> bool:
    return re.match(REQUIREMENT_PATTERN, text) is not None


@dataclass
class Capabilities:
    """Answers 'is this requirement met here?' for one cluster, caching live look-ups."""

    kube: Kube
    flavour: Flavour
    node_count: int
    path: str  # the PATH the lab's commands run with (cached tools included)
    _cache: dict[str, tuple[bool, str]] = field(default_factory=dict)

    def check(self, requirement: str) -> tuple[bool, str]:
        """(met, reason it is not)."""
        if requirement not in self._cache:
            self._cache[requirement] = self._check(requirement)
        return self._cache[requirement]

    def unmet(self, requirements: list[str]) -> list[str]:
        """The reasons of the requirements that are not met (empty: all met)."""
        return [reason for ok, reason in map(self.check, requirements) if not ok]

    def forget(self) -> None:
        """Drop cached answers (after installing an add-on, for instance)."""
        self._cache.clear()

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
        if req == "network-policy":
            return self._network_policy()
        if req == "helm":
            found = shutil.which("helm", path=self.path) is not None
            return found, "needs helm on PATH (see the prerequisites)"
        if req.startswith("nodes>="):
            want = int(req.removeprefix("nodes>="))
            more = (
                f" (`kubelab cluster up --nodes {want}` adds simulated nodes)"
                if self.flavour.name == "embedded"
                else ""
            )
            return (
                self.node_count >= want,
                f"needs {want} nodes; the cluster has {self.node_count}{more}",
            )
        if req == "default-storageclass":
            return (
                self._default_storageclass(),
                "needs a default StorageClass; the cluster has none",
            )
        if req == "metrics-api":
            from kubelab.addons.base import APIServiceAvailable

            ok, _ = APIServiceAvailable(METRICS_APISERVICE).evaluate(self.kube)
            return ok, "needs the metrics API: `kubelab addons install metrics-server`"
        if req.startswith("addon:"):
            return self._addon(req.removeprefix("addon:"))
        if req.startswith("addon-release:"):
            return self._addon(req.removeprefix("addon-release:"), release=True)
        return False, f"unknown requirement {req!r}"

    def _network_policy(self) -> tuple[bool, str]:
        f = self.flavour
        if f.network_policy is not None:
            return (
                f.network_policy,
                f"needs a network plugin that enforces NetworkPolicy; {f.title} has none",
            )
        from kubelab.kube.client import UnknownKind

        try:
            sets = self.kube.list("apps/v1", "DaemonSet", "kube-system")
        except UnknownKind:
            sets = []
        names = {d["metadata"]["name"] for d in sets}
        if names & set(POLICY_ENFORCERS):
            return True, ""
        return False, (
            "needs a network plugin that enforces NetworkPolicy; none of "
            + ", ".join(POLICY_ENFORCERS)
            + " runs in kube-system (see the lab's lesson for your flavour)"
        )

    def _default_storageclass(self) -> bool:
        from kubelab.kube.client import UnknownKind

        try:
            classes = self.kube.list("storage.k8s.io/v1", "StorageClass", None)
        except UnknownKind:
            return False
        key = "storageclass.kubernetes.io/is-default-class"
        return any((c["metadata"].get("annotations") or {}).get(key) == "true" for c in classes)

    def _addon(self, name: str, release: bool = False) -> tuple[bool, str]:
        from kubelab.addons.manage import status

        addon = addons.ADDONS.get(name)
        if addon is None:
            return False, f"needs the add-on {name!r}, which kubelab does not know"
        st = status(addon, self.kube, self.flavour)
        if release and st.source in ("cluster", "other"):
            whose = (
                f"the cluster's own ({self.flavour.title})"
                if st.source == "cluster"
                else "installed by something other than kubelab"
            )
            return False, (
                f"needs the add-on {name} as kubelab's Helm release "
                f"{addon.namespace}/{addon.release}; here it is {whose}"
            )
        if release and st.source == "kubelab" and st.revision is None:
            return False, (
                f"needs the add-on {name} as kubelab's Helm release "
                f"{addon.namespace}/{addon.release}; here it runs as host processes"
            )
        if st.installed and st.ready:
            return True, ""
        if not st.installed:
            return False, f"needs the add-on {name}: `kubelab addons install {name}`"
        return False, f"needs the add-on {name} ready; it is {st.describe()}"
