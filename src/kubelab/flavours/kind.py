"""kind: Kubernetes in Docker containers."""

from __future__ import annotations

from kubelab.flavours.base import Flavour, Node, provider_id


class Kind(Flavour):
    def owns_node(self, node: Node) -> bool:
        return provider_id(node).startswith("kind://")

    def local_name(self, name: str, cluster: str) -> bool:
        # `kind get kubeconfig --internal` names the container itself, resolvable on Docker's
        # network only (the default kubeconfig says https://127.0.0.1:PORT)
        return name in (f"{cluster}-control-plane", f"{cluster}-external-load-balancer")

    def load_commands(self, context: str, refs: list[str]) -> list[list[str]]:
        if not refs:
            return []
        return [["kind", "load", "docker-image", "--name", self.cluster_name(context), *refs]]


FLAVOUR = Kind(
    name="kind",
    title="kind",
    context_patterns=("kind-*",),
    notes="LoadBalancer needs cloud-provider-kind",
    images_note="`kind load docker-image` copies them into the node containers",
)
