"""minikube: a VM, or a Docker container (the "docker" driver), per profile."""

from __future__ import annotations

import ipaddress
import sys

from kubelab.flavours.base import Flavour, Node, labels
from kubelab.flavours.network import HostNetworks, IPAddress

# Where minikube's drivers put the VM when kubelab cannot read the routing table (macOS,
# Windows). On Linux the attached-network rule covers every driver (docker: 192.168.49.0/24 on a
# br-… bridge; kvm2: a virbr… bridge) and these ranges are NOT trusted: a LAN may use them too.
VM_RANGES = tuple(
    ipaddress.IPv4Network(net)
    for net in (
        "192.168.49.0/24",  # docker/podman driver's first network (macOS publishes 127.0.0.1 too)
        "192.168.59.0/24",  # virtualbox host-only network (--host-only-cidr default)
        "192.168.99.0/24",  # virtualbox, minikube before 1.24
        "192.168.64.0/24",  # hyperkit / vfkit / qemu on macOS's vmnet "shared" network
        "192.168.105.0/24",  # qemu / vfkit with socket_vmnet
    )
)
# Hyper-V's "Default Switch" takes a random /20 inside 172.16.0.0/12 at each Windows boot.
HYPERV_RANGE = ipaddress.IPv4Network("172.16.0.0/12")


class Minikube(Flavour):
    def owns_node(self, node: Node) -> bool:
        return "minikube.k8s.io/name" in labels(node)

    def local_ip(self, ip: IPAddress, networks: HostNetworks) -> bool:
        if networks.contains(ip):
            return True
        if sys.platform.startswith("linux") or not isinstance(ip, ipaddress.IPv4Address):
            return False
        ranges = VM_RANGES + ((HYPERV_RANGE,) if sys.platform == "win32" else ())
        return any(ip in net for net in ranges)

    def load_commands(self, context: str, refs: list[str]) -> list[list[str]]:
        # the context name is the profile name
        return [["minikube", "--profile", context, "image", "load", ref] for ref in refs]


FLAVOUR = Minikube(
    name="minikube",
    title="minikube",
    context_patterns=("minikube",),
    notes="LoadBalancer needs `minikube tunnel`",
    local_names=("control-plane.minikube.internal", "host.minikube.internal"),
    images_note="`minikube image load` copies them into the VM",
)
