"""k3d: k3s in Docker containers."""

from __future__ import annotations

from kubelab.flavours.base import Flavour, Node, node_name, provider_id


class K3d(Flavour):
    def owns_node(self, node: Node) -> bool:
        return node_name(node).startswith("k3d-") or provider_id(node).startswith("k3s://k3d-")

    def local_name(self, name: str, cluster: str) -> bool:
        # k3d writes https://0.0.0.0:PORT; inside Docker's network the server load balancer and
        # the host have these names
        return super().local_name(name, cluster) or name in (
            f"k3d-{cluster}-serverlb",
            f"k3d-{cluster}-server-0",
        )

    def load_commands(self, context: str, refs: list[str]) -> list[list[str]]:
        if not refs:
            return []
        return [["k3d", "image", "import", "--cluster", self.cluster_name(context), *refs]]


FLAVOUR = K3d(
    name="k3d",
    title="k3d",
    context_patterns=("k3d-*",),
    loadbalancer=True,
    network_policy=True,  # k3s runs kube-router's policy controller in its own process
    notes="LoadBalancer ports must be mapped when the cluster is created",
    local_names=("host.k3d.internal", "host.docker.internal"),
    images_note="`k3d image import` copies them into the node containers",
)
