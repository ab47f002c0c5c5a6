"""OrbStack (macOS): its built-in single-node Kubernetes."""

from __future__ import annotations

from kubelab.flavours.base import Flavour, Node, node_name


class OrbStack(Flavour):
    def owns_node(self, node: Node) -> bool:
        return node_name(node) == "orbstack"


FLAVOUR = OrbStack(
    name="orbstack",
    title="OrbStack",
    context_patterns=("orbstack",),
    loadbalancer=True,
    # kubeconfig: https://127.0.0.1:26443; OrbStack's own names live under .orb.local
    local_names=("*.orb.local", "host.orb.internal", "host.docker.internal"),
    images_note="uses Docker's own image store",
)
