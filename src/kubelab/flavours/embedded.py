"""kubelab's embedded cluster: a real control plane on loopback, kwok-simulated nodes and, on
Linux as root, a real node (kubelet + containerd) labelled kubelab.dev/node=real."""

from __future__ import annotations

from kubelab.flavours.base import Flavour, Node, annotations, labels
from kubelab.flavours.network import HostNetworks, IPAddress
from kubelab.kube.ready import node_ready

FAKE_NODE = ("kwok.x-k8s.io/node", "fake")  # the annotation kwokctl puts on its simulated nodes
REAL_NODE = ("kubelab.dev/node", "real")  # the label of the real kubelet node


def is_fake(node: Node) -> bool:
    key, value = FAKE_NODE
    return annotations(node).get(key) == value or labels(node).get("type") == "kwok"


class Embedded(Flavour):
    def owns_node(self, node: Node) -> bool:
        key, value = REAL_NODE
        return is_fake(node) or labels(node).get(key) == value

    def for_nodes(self, nodes: list[Node]) -> Flavour:
        # containers run only where a real kubelet is Ready: a node without kwok's annotation
        # (kwok simulates exactly the annotated ones and fakes every Pod on them)
        key, value = FAKE_NODE
        real = [n for n in nodes if node_ready(n) and annotations(n).get(key) != value]
        if not real:
            return self
        return self.replace(
            containers=True,
            network_policy=True,  # the real node runs kube-router's firewall
            notes="a real control plane; containers run on its real node, the kwok nodes are "
            "simulated",
        )

    def local_ip(self, ip: IPAddress, networks: HostNetworks) -> bool:
        return False  # it listens on loopback only, by design: anything else is not ours


FLAVOUR = Embedded(
    name="embedded",
    title="kubelab embedded cluster (kwok nodes)",
    context_patterns=("kwok-*",),
    containers=False,
    network_policy=False,  # simulated nodes have no network to police
    notes="a real control plane whose nodes are simulated: no containers run",
    images_note="its real node, when there is one, imports the course's images itself",
)
