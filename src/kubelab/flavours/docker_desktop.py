"""Docker Desktop with Kubernetes enabled (kubeadm single node, or kind-based multi-node)."""

from __future__ import annotations

from kubelab.flavours.base import Flavour, Node, node_name


class DockerDesktop(Flavour):
    def owns_node(self, node: Node) -> bool:
        # kubeadm mode names its node docker-desktop; the kind-based mode desktop-control-plane,
        # desktop-worker…
        name = node_name(node)
        return name == "docker-desktop" or name.startswith("desktop-")


FLAVOUR = DockerDesktop(
    name="docker-desktop",
    title="Docker Desktop",
    context_patterns=("docker-desktop", "docker-for-desktop"),
    loadbalancer=True,
    # kubeconfig: https://kubernetes.docker.internal:6443 (kubeadm) or https://127.0.0.1:PORT
    local_names=("kubernetes.docker.internal", "host.docker.internal"),
    images_note="uses Docker's own image store",
)
