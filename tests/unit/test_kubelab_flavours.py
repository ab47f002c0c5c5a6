"""Flavours: detection from nodes, capabilities, server-address rules, local networks.

The node shapes below are what each local cluster tool registers (providerID, labels, names) as
documented by those projects; we cannot start those clusters here, so these are recorded shapes,
not live nodes. The embedded flavour is also detected from live kwok nodes in the e2e tests.
"""

from __future__ import annotations

import ipaddress
import socket
import struct

import pytest

from kubelab.flavours import FLAVOURS, by_context, detect, minikube
from kubelab.flavours.base import Flavour
from kubelab.flavours.network import HostNetworks

READY = {"conditions": [{"type": "Ready", "status": "True"}]}
NOT_READY = {"conditions": [{"type": "Ready", "status": "False"}]}


def node(name: str, labels=None, annotations=None, provider: str = "", status=None) -> dict:
    return {
        "metadata": {"name": name, "labels": labels or {}, "annotations": annotations or {}},
        "spec": {"providerID": provider} if provider else {},
        "status": status if status is not None else READY,
    }


FAKE = {"kwok.x-k8s.io/node": "fake"}
REAL = {"kubelab.dev/node": "real"}


@pytest.mark.parametrize(
    ("context", "nodes", "flavour"),
    [
        ("docker-desktop", [node("docker-desktop")], "docker-desktop"),
        (
            "docker-desktop",
            [
                node(
                    "desktop-control-plane",
                    provider="kind://docker/desktop/desktop-control-plane",
                )
            ],
            "docker-desktop",
        ),
        (
            "kind-kind",
            [node("kind-control-plane", provider="kind://docker/kind/kind-control-plane")],
            "kind",
        ),
        ("k3d-lab", [node("k3d-lab-server-0", provider="k3s://k3d-lab-server-0")], "k3d"),
        ("minikube", [node("minikube", labels={"minikube.k8s.io/name": "minikube"})], "minikube"),
        (
            "rancher-desktop",
            [node("lima-rancher-desktop", provider="k3s://lima-rancher-desktop")],
            "rancher-desktop",
        ),
        ("orbstack", [node("orbstack")], "orbstack"),
        ("kwok-kubelab", [node("kwok-node-0", annotations=FAKE)], "embedded"),
        ("kwok-kubelab", [node("kwok-node-0", annotations=FAKE), node("real-0", REAL)], "embedded"),
        ("renamed", [node("kind-control-plane", provider="kind://docker/kind/x")], "kind"),
        ("kind-x", [], "kind"),
        ("allowed-remote", [node("ip-10-0-0-1")], "unknown"),
    ],
)
def test_detect(context, nodes, flavour):
    assert detect(context, nodes).name == flavour


def test_embedded_runs_containers_only_when_a_real_node_is_ready():
    fake = node("kwok-node-0", annotations=FAKE)
    assert detect("kwok-x", []).containers is False
    assert detect("kwok-x", [fake]).containers is False
    assert detect("kwok-x", [fake, node("real-0", REAL, status=NOT_READY)]).containers is False
    with_real = detect("kwok-x", [fake, node("real-0", REAL)])
    assert with_real.containers is True
    assert "real node" in with_real.notes
    assert FLAVOURS["embedded"].containers is False  # the registry's flavour is not changed
    # a fake node that is Ready does not count, whatever its labels
    assert detect("kwok-x", [node("kwok-1", REAL, FAKE)]).containers is False


def test_capabilities_per_flavour():
    caps = {f.name: (f.containers, f.loadbalancer, f.csr_signing) for f in FLAVOURS.values()}
    assert caps["embedded"] == (False, False, True)
    assert caps["kind"] == (True, False, True)
    assert caps["minikube"][1] is False
    assert all(caps[n][1] for n in ("docker-desktop", "k3d", "rancher-desktop", "orbstack"))


def test_network_policy_enforcement_per_flavour():
    # k3s (k3d, Rancher Desktop) enforces with its built-in controller; the embedded cluster
    # never does; the others depend on the plugin installed (looked up in kube-system)
    enforce = {f.name: f.network_policy for f in FLAVOURS.values()}
    assert enforce["k3d"] is True and enforce["rancher-desktop"] is True
    assert enforce["embedded"] is False
    assert detect("kwok-x", [node("kwok-1", annotations=FAKE)]).network_policy is False
    # with its real node, kube-router's firewall enforces them there
    assert detect("kwok-x", [node("real-node", REAL)]).network_policy is True
    for name in ("kind", "minikube", "docker-desktop", "orbstack", "unknown"):
        assert enforce[name] is None, name


def test_every_flavour_module_is_registered_with_distinct_context_patterns():
    assert set(FLAVOURS) == {
        "docker-desktop",
        "kind",
        "k3d",
        "minikube",
        "rancher-desktop",
        "orbstack",
        "embedded",
        "unknown",
    }
    patterns = [p for f in FLAVOURS.values() for p in f.context_patterns]
    assert len(patterns) == len(set(patterns))
    assert FLAVOURS["unknown"].context_patterns == ()
    assert all(isinstance(f, Flavour) and f.images_note for f in FLAVOURS.values())


@pytest.mark.parametrize(
    ("context", "name"),
    [("kind-lab", "lab"), ("k3d-my-lab", "my-lab"), ("kwok-kubelab", "kubelab")],
)
def test_cluster_name_behind_the_context(context, name):
    assert by_context(context).cluster_name(context) == name


# --- server rules -------------------------------------------------------------------------------

NONE = HostNetworks()
BRIDGED = HostNetworks(
    own=frozenset({ipaddress.IPv4Address("192.168.1.20")}),
    virtual=(ipaddress.IPv4Network("172.18.0.0/16"), ipaddress.IPv4Network("192.168.49.0/24")),
)


@pytest.mark.parametrize(
    ("context", "host", "networks", "local"),
    [
        # loopback and "any" count for every training flavour
        ("kind-lab", "127.0.0.1", NONE, True),
        ("kind-lab", "127.3.4.5", NONE, True),
        ("kind-lab", "::1", NONE, True),
        ("kind-lab", "localhost", NONE, True),
        ("kind-lab", "LOCALHOST.", NONE, True),
        ("k3d-lab", "0.0.0.0", NONE, True),
        ("kwok-kubelab", "127.0.0.1", NONE, True),
        # each tool's own names
        ("docker-desktop", "kubernetes.docker.internal", NONE, True),
        ("orbstack", "k8s.orb.local", NONE, True),
        ("k3d-lab", "host.k3d.internal", NONE, True),
        ("k3d-lab", "k3d-lab-serverlb", NONE, True),
        ("k3d-lab", "k3d-other-serverlb", NONE, False),
        ("kind-lab", "lab-control-plane", NONE, True),
        ("kind-lab", "prod-control-plane", NONE, False),
        ("minikube", "control-plane.minikube.internal", NONE, True),
        # never a DNS name that merely looks local, nor someone else's
        ("kind-lab", "k8s.example.com", NONE, False),
        ("kind-lab", "kubernetes.docker.internal.example.com", NONE, False),
        ("docker-desktop", "localhost.example.com", NONE, False),
        ("orbstack", "orb.local.example.com", NONE, False),
        # private addresses: local only on an attached virtual network or our own address
        ("kind-lab", "10.20.30.40", NONE, False),
        ("kind-lab", "172.18.0.2", NONE, False),
        ("kind-lab", "172.18.0.2", BRIDGED, True),
        ("minikube", "192.168.49.2", BRIDGED, True),
        ("minikube", "192.168.1.20", BRIDGED, True),  # this machine's own address
        ("minikube", "192.168.1.21", BRIDGED, False),  # its LAN neighbour
        ("kind-lab", "8.8.8.8", BRIDGED, False),
        # the embedded cluster listens on loopback only: nothing else is ours
        ("kwok-kubelab", "172.18.0.2", BRIDGED, False),
        ("kwok-kubelab", "localhost", NONE, True),
    ],
)
def test_server_is_local(context, host, networks, local):
    assert by_context(context).server_is_local(host, context, networks) is local


def test_unknown_flavour_is_never_local():
    assert FLAVOURS["unknown"].server_is_local("127.0.0.1", "x", NONE) is False


def test_minikube_vm_ranges_count_only_where_routes_cannot_be_read(monkeypatch):
    flavour = FLAVOURS["minikube"]
    monkeypatch.setattr(minikube.sys, "platform", "linux")
    assert not flavour.server_is_local("192.168.59.100", "minikube", NONE)
    monkeypatch.setattr(minikube.sys, "platform", "darwin")
    assert flavour.server_is_local("192.168.59.100", "minikube", NONE)  # virtualbox
    assert flavour.server_is_local("192.168.64.3", "minikube", NONE)  # hyperkit/vfkit
    assert not flavour.server_is_local("192.168.1.10", "minikube", NONE)  # a home LAN
    assert not flavour.server_is_local("172.20.1.2", "minikube", NONE)  # Hyper-V: Windows only
    assert not FLAVOURS["kind"].server_is_local("192.168.59.100", "kind-x", NONE)
    monkeypatch.setattr(minikube.sys, "platform", "win32")
    assert flavour.server_is_local("172.20.1.2", "minikube", NONE)


# --- reading this machine's networks ------------------------------------------------------------


def _hex(address: str) -> str:
    # /proc/net/route's format: the 32-bit address in host byte order, as hex
    return f"{struct.unpack('=I', socket.inet_aton(address))[0]:08X}"


def _route_file(tmp_path, rows: list[tuple[str, str, str, str]]):
    header = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT"
    lines = [header]
    for iface, dest, gateway, mask in rows:
        lines.append(
            f"{iface}\t{_hex(dest)}\t{_hex(gateway)}\t0003\t0\t0\t0\t{_hex(mask)}\t0\t0\t0"
        )
    path = tmp_path / "route"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_host_networks_keep_virtual_bridges_and_drop_lan_and_vpn(tmp_path):
    route = _route_file(
        tmp_path,
        [
            ("eth0", "0.0.0.0", "192.168.1.1", "0.0.0.0"),  # default route: the LAN
            ("eth0", "192.168.1.0", "0.0.0.0", "255.255.255.0"),
            ("docker0", "172.17.0.0", "0.0.0.0", "255.255.0.0"),
            ("br-1a2b3c", "192.168.49.0", "0.0.0.0", "255.255.255.0"),  # minikube's network
            ("virbr1", "192.168.39.0", "0.0.0.0", "255.255.255.0"),  # kvm2
            ("tun0", "10.0.0.0", "0.0.0.0", "255.0.0.0"),  # a VPN to the office
            ("eth1", "10.9.0.0", "0.0.0.0", "255.255.0.0"),  # a second physical link
            ("docker0", "10.99.0.0", "172.17.0.5", "255.255.0.0"),  # via a gateway
        ],
    )
    sys_net = tmp_path / "sys"
    for bridge in ("docker0", "br-1a2b3c"):
        (sys_net / bridge / "bridge").mkdir(parents=True)
    fib = tmp_path / "fib_trie"
    fib.write_text(
        "Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 127.0.0.1\n        /32 host LOCAL\n"
        "     |-- 192.168.1.20\n        /32 host LOCAL\n"
        "     |-- 192.168.1.255\n        /32 link BROADCAST\n"
    )
    nets = HostNetworks.read(route, fib, sys_net)
    assert set(map(str, nets.virtual)) == {"172.17.0.0/16", "192.168.49.0/24", "192.168.39.0/24"}
    assert nets.own == {ipaddress.IPv4Address("192.168.1.20")}
    ip = ipaddress.ip_address
    assert nets.contains(ip("172.17.0.3"))
    assert nets.contains(ip("192.168.1.20"))
    assert not nets.contains(ip("192.168.1.21"))  # the LAN behind the default route
    assert not nets.contains(ip("10.1.2.3"))  # the VPN
    assert not nets.contains(ip("10.9.0.1"))  # not a virtual interface
    assert not nets.contains(ip("10.99.0.1"))  # reached through a gateway
    assert not nets.contains(ip("::1"))


def test_host_networks_are_empty_when_the_tables_cannot_be_read(tmp_path):
    missing = tmp_path / "nope"
    assert HostNetworks.read(missing, missing, missing) == HostNetworks()
