"""Is a server address on this machine, or on a VM/container network this machine hosts?

Decided from the address text and the kernel's own tables only: no DNS look-up, no packet.

Linux: an IPv4 address is local when it is one of this machine's own addresses
(/proc/net/fib_trie, "host LOCAL") or lies on a network that is directly attached
(/proc/net/route, gateway 0.0.0.0) to a *virtual* interface — a Linux bridge (docker0, br-…,
virbr…, the embedded real node's bridge) or a VM host-only interface (vboxnet…, vmnet…) — that does
not carry the default route. That keeps out the office LAN behind eth0/wlan0 and a VPN's tun/wg
routes, which are directly attached too but lead to other people's machines.
Elsewhere (macOS, Windows) there is no such table to read without running a program: only loopback
and each flavour's own names and VM ranges count.
"""

from __future__ import annotations

import ipaddress
import itertools
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# VM host interfaces that are not Linux bridges but only ever lead to local VMs.
VM_INTERFACE_PREFIXES = ("vboxnet", "vmnet", "virbr", "docker", "br-", "cni", "podman", "lxdbr")


def parse_ip(host: str) -> IPAddress | None:
    """The address if `host` is an IP literal (brackets and zone stripped), else None."""
    text = host.strip("[]").split("%", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def is_loopback_or_unspecified(ip: IPAddress) -> bool:
    """127.0.0.0/8, ::1, and 0.0.0.0 / :: (connecting to "any" reaches this host: k3d writes it)."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_loopback or ip.is_unspecified


def _hex_ipv4(value: str) -> ipaddress.IPv4Address:
    # /proc/net/route prints addresses as host-order (little-endian on every Linux we run on) hex
    return ipaddress.IPv4Address(socket.ntohl(int(value, 16)))


@dataclass(frozen=True)
class HostNetworks:
    """What this machine's kernel says about its own addresses and attached virtual networks."""

    own: frozenset[ipaddress.IPv4Address] = frozenset()
    virtual: tuple[ipaddress.IPv4Network, ...] = ()
    interfaces: dict[str, str] = field(default_factory=dict)  # network -> interface, for messages

    def contains(self, ip: IPAddress) -> bool:
        if not isinstance(ip, ipaddress.IPv4Address):
            return False
        return ip in self.own or any(ip in net for net in self.virtual)

    @classmethod
    def read(
        cls,
        route_file: Path = Path("/proc/net/route"),
        fib_trie: Path = Path("/proc/net/fib_trie"),
        sys_net: Path = Path("/sys/class/net"),
    ) -> HostNetworks:
        """Read the Linux tables; an empty answer anywhere else (or when they are unreadable)."""
        virtual = _virtual_networks(route_file, sys_net)
        return cls(
            own=frozenset(_own_addresses(fib_trie)),
            virtual=tuple(net for net, _ in virtual),
            interfaces={str(net): iface for net, iface in virtual},
        )


def _virtual_networks(route_file: Path, sys_net: Path) -> list[tuple[ipaddress.IPv4Network, str]]:
    try:
        lines = route_file.read_text().splitlines()[1:]
    except OSError:
        return []
    rows = [line.split() for line in lines if len(line.split()) >= 8]
    default_ifaces = {r[0] for r in rows if r[1] == "00000000" and r[7] == "00000000"}
    found = []
    for row in rows:
        iface, dest, gateway, mask = row[0], row[1], row[2], row[7]
        if gateway != "00000000" or mask == "00000000" or iface in default_ifaces:
            continue
        if not ((sys_net / iface / "bridge").exists() or iface.startswith(VM_INTERFACE_PREFIXES)):
            continue
        try:
            net = ipaddress.IPv4Network(f"{_hex_ipv4(dest)}/{_hex_ipv4(mask)}", strict=False)
        except ValueError:
            continue
        found.append((net, iface))
    return found


def _own_addresses(fib_trie: Path) -> set[ipaddress.IPv4Address]:
    """Addresses the kernel delivers locally: a "|-- A.B.C.D" line followed by "/32 host LOCAL"."""
    try:
        lines = fib_trie.read_text().splitlines()
    except OSError:
        return set()
    own = set()
    for previous, line in itertools.pairwise(lines):
        if "host LOCAL" in line and "|--" in previous:
            ip = parse_ip(previous.split("|--", 1)[1].strip())
            if isinstance(ip, ipaddress.IPv4Address) and not ip.is_loopback:
                own.add(ip)
    return own


_cached: HostNetworks | None = None


def host_networks() -> HostNetworks:
    """This machine's networks, read once per process (Linux only; empty elsewhere)."""
    global _cached
    if _cached is None:
        _cached = HostNetworks.read() if sys.platform.startswith("linux") else HostNetworks()
    return _cached
