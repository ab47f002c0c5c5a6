"""What a host process listens on, for the e2e tests' loopback-only checks."""

from __future__ import annotations

from kubelab.embedded import cluster, hoststate

LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp*


def listening_addresses(pid: int) -> list[str]:
    """The local addresses (as /proc/net/tcp writes them, e.g. 0100007F:1F90) of the TCP
    sockets process `pid` listens on."""
    inodes = cluster._socket_inodes(pid)
    return [
        cols[1] for _, cols in hoststate.socket_rows(("tcp", "tcp6"))
        if cols[3] == LISTEN and cols[9] in inodes
    ]  # fmt: skip
