"""What every cluster flavour tells kubelab: how to recognise it, where its API server may live,
what it can do for the labs and how the course's images reach its nodes."""

from __future__ import annotations

import dataclasses
import fnmatch
from dataclasses import dataclass
from typing import Any

from kubelab.flavours.network import (
    HostNetworks,
    IPAddress,
    is_loopback_or_unspecified,
    parse_ip,
)

Node = dict[str, Any]


def labels(node: Node) -> dict[str, str]:
    return (node.get("metadata") or {}).get("labels") or {}


def annotations(node: Node) -> dict[str, str]:
    return (node.get("metadata") or {}).get("annotations") or {}


def node_name(node: Node) -> str:
    return (node.get("metadata") or {}).get("name") or ""


def provider_id(node: Node) -> str:
    return (node.get("spec") or {}).get("providerID") or ""


@dataclass(frozen=True)
class Flavour:
    name: str
    title: str
    context_patterns: tuple[str, ...] = ()  # fnmatch patterns of the context names its tool writes
    containers: bool = True  # really runs containers: logs, exec, probes, HTTP into Pods
    loadbalancer: bool = False  # LoadBalancer Services answer on localhost without extra steps
    csr_signing: bool = True  # the CSR API issues client certificates (lab users)
    # its network plugin enforces NetworkPolicy; None: depends on the plugin installed, which
    # kubelab.requirements looks for in kube-system
    network_policy: bool | None = None
    notes: str = ""
    local_names: tuple[str, ...] = ()  # host names (fnmatch, lower case) its tool writes as server
    images_note: str = ""  # how locally built images reach the nodes, for people

    # --- recognising it -----------------------------------------------------------------------

    def matches_context(self, context: str) -> bool:
        return any(fnmatch.fnmatchcase(context, p) for p in self.context_patterns)

    def cluster_name(self, context: str) -> str:
        """The tool's own cluster name behind a context name (kind-lab -> lab)."""
        for pattern in self.context_patterns:
            if pattern.endswith("*") and context.startswith(pattern[:-1]):
                return context[len(pattern) - 1 :]
        return context

    def owns_node(self, node: Node) -> bool:
        """Whether this node was registered by this flavour's tool (the surest sign)."""
        return False

    def for_nodes(self, nodes: list[Node]) -> Flavour:
        """This flavour with what the live nodes change about it (most flavours: nothing)."""
        return self

    def replace(self, **changes: Any) -> Flavour:
        return dataclasses.replace(self, **changes)

    # --- where its API server may be ----------------------------------------------------------

    def server_is_local(self, host: str, context: str, networks: HostNetworks) -> bool:
        """Is `host` (the server URL's host) on this machine or a VM/container network it runs?
        From the text and the kernel's tables only: never a DNS look-up."""
        ip = parse_ip(host)
        if ip is not None:
            return is_loopback_or_unspecified(ip) or self.local_ip(ip, networks)
        name = host.lower().rstrip(".")
        return name == "localhost" or self.local_name(name, self.cluster_name(context))

    def local_ip(self, ip: IPAddress, networks: HostNetworks) -> bool:
        return networks.contains(ip)

    def local_name(self, name: str, cluster: str) -> bool:
        return any(fnmatch.fnmatchcase(name, p) for p in self.local_names)

    # --- images -------------------------------------------------------------------------------

    def load_commands(self, context: str, refs: list[str]) -> list[list[str]]:
        """What puts locally built images on the nodes; [] when nothing is needed."""
        return []
