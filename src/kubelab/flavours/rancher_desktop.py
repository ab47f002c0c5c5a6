"""Rancher Desktop: k3s in a Lima VM, with the dockerd (moby) engine beside it."""

from __future__ import annotations

from kubelab.flavours.base import Flavour, Node, node_name


class RancherDesktop(Flavour):
    def owns_node(self, node: Node) -> bool:
        return node_name(node).startswith("lima-rancher-desktop")


FLAVOUR = RancherDesktop(
    name="rancher-desktop",
    title="Rancher Desktop",
    context_patterns=("rancher-desktop",),
    loadbalancer=True,
    network_policy=True,  # k3s's built-in controller (off only when flannel is turned off)
    notes="uses Docker's image store with the dockerd (moby) engine",
    # kubeconfig: https://127.0.0.1:6443
    local_names=("host.rancher-desktop.internal", "host.lima.internal", "host.docker.internal"),
    images_note="uses Docker's own image store (dockerd/moby engine)",
)
