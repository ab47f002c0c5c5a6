"""What a real node changes on the host, saved before it starts and restored after it stops.

Linux only. Used by :mod:`kubelab.embedded.node` (save/restore) and by the teardown test
(:func:`snapshot` before `up` and after `down` must be equal).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

# sysctls the kubelet, kube-proxy and the CNI bridge plugin set (restored at teardown)
SYSCTLS = (
    "vm.overcommit_memory",
    "vm.panic_on_oom",
    "kernel.panic",
    "kernel.panic_on_oops",
    "kernel.keys.root_maxkeys",
    "kernel.keys.root_maxbytes",
    "net.ipv4.ip_forward",
    "net.ipv4.conf.all.forwarding",
    "net.ipv4.conf.default.forwarding",
    "net.ipv6.conf.all.forwarding",
    "net.ipv4.conf.all.route_localnet",
    "net.bridge.bridge-nf-call-iptables",
    "net.bridge.bridge-nf-call-ip6tables",
    "net.netfilter.nf_conntrack_max",
    "net.netfilter.nf_conntrack_tcp_timeout_established",
    "net.netfilter.nf_conntrack_tcp_timeout_close_wait",
    "net.netfilter.nf_conntrack_tcp_be_liberal",
)
# host paths the node may create although told to use its own folder
HOST_PATHS = (
    "/var/log/pods",
    "/var/log/containers",
    "/var/lib/cni",
    "/run/containerd",
    "/run/netns",
    "/var/lib/kubelet",
    "/etc/cni",
    "/opt/cni",
    "/var/run/kubelab",
)
CGROUP_ROOT = Path("/sys/fs/cgroup")
KUBE_CGROUPS = ("kubelab", "k8s.io", "kubepods", "system.slice", "kube")


def _sysctl_path(key: str) -> Path:
    return Path("/proc/sys") / key.replace(".", "/")


def read_sysctl(key: str) -> str | None:
    try:
        return _sysctl_path(key).read_text().strip()
    except OSError:
        return None


def write_sysctl(key: str, value: str) -> None:
    with contextlib.suppress(OSError):
        _sysctl_path(key).write_text(value + "\n")


def save(dest: Path) -> dict[str, object]:
    """Record what teardown must put back; written before the node changes anything."""
    state = {
        "sysctls": {k: v for k in SYSCTLS if (v := read_sysctl(k)) is not None},
        "paths": {p: os.path.lexists(p) for p in HOST_PATHS},
        "nft_tables": nft_tables(),
        "ipsets": ipsets(),
        "cgroups": {c: sorted(cgroup_children(c)) for c in cgroup_controllers()},
    }
    tmp = dest.with_name(f".{dest.name}.tmp")
    tmp.write_text(json.dumps(state, indent=1))
    os.replace(tmp, dest)
    return state


def ipsets() -> list[str]:
    """The names of the kernel's ipsets (kube-router's firewall makes some); [] without ipset."""
    try:
        proc = subprocess.run(["ipset", "list", "-n"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return sorted(proc.stdout.split()) if proc.returncode == 0 else []


def load(path: Path) -> dict[str, object]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def cgroup_controllers() -> list[str]:
    """The cgroup v1 hierarchies (cpu, memory, ...) or [''] for a unified v2 host."""
    if (CGROUP_ROOT / "cgroup.controllers").exists():
        return [""]
    out = []
    try:
        for entry in sorted(CGROUP_ROOT.iterdir()):
            if entry.is_dir() and not entry.is_symlink() and (entry / "cgroup.procs").exists():
                out.append(entry.name)
    except OSError:
        pass
    return out


def cgroup_children(controller: str) -> list[str]:
    base = CGROUP_ROOT / controller if controller else CGROUP_ROOT
    try:
        return [e.name for e in base.iterdir() if e.is_dir()]
    except OSError:
        return []


def nft_tables() -> list[str]:
    try:
        proc = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return sorted(line.removeprefix("table ").strip() for line in proc.stdout.splitlines() if line)


def nft_chains() -> list[str]:
    """'family table chain' for every chain (to see kubelet/kube-proxy leftovers)."""
    try:
        proc = subprocess.run(
            ["nft", "-j", "list", "chains"], capture_output=True, text=True, timeout=10
        )
        data = json.loads(proc.stdout or "{}")
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return []
    out = []
    for item in data.get("nftables", []):
        chain = item.get("chain")
        if chain:
            out.append(f"{chain['family']} {chain['table']} {chain['name']}")
    return sorted(out)


def _links() -> list[str]:
    return sorted(p.name for p in Path("/sys/class/net").iterdir())


def _mounts() -> list[str]:
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        out.append(fields[4])
    return sorted(out)


def socket_rows(tables: tuple[str, ...]) -> Iterator[tuple[str, list[str]]]:
    """(table, columns) of every socket in the given /proc/net tables (tcp, tcp6, udp, udp6);
    a table the kernel does not have is skipped. Columns: 1 local address, 3 state, 9 inode."""
    for table in tables:
        try:
            lines = Path(f"/proc/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            yield table, line.split()


def _listening() -> list[str]:
    out = []
    for table, cols in socket_rows(("tcp", "tcp6", "udp", "udp6")):
        tcp_listen = "tcp" in table and cols[3] == "0A"
        udp_bound = "udp" in table and cols[2].endswith(":0000")
        # loopback sockets of other local programs come and go; the node's own die with
        # its processes (compared above)
        loopback = cols[1].startswith(("0100007F:", "00000000000000000000000001000000:"))
        if (tcp_listen or udp_bound) and not loopback:
            out.append(f"{table} {cols[1]}")
    return sorted(set(out))


def _processes() -> list[str]:
    """Command names of processes whose executable is one of the node's binaries."""
    names = re.compile(
        r"^(containerd|containerd-shim|containerd-shim-runc-v2|kubelet|kube-proxy|coredns"
        r"|metrics-server|runc|pause)$"
    )
    out = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            comm = (proc / "comm").read_text().strip()
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if names.match(comm) and state != "Z":  # a zombie has let go of everything
            out.append(comm)
    return sorted(out)


def snapshot() -> dict[str, object]:
    """The host as far as a node can change it: compare before `up` and after `down`."""
    sysctls = {}
    for key in SYSCTLS:
        sysctls[key] = read_sysctl(key)
    return {
        "processes": _processes(),
        "mounts": _mounts(),
        "links": _links(),
        "addresses": subprocess.run(
            ["ip", "-o", "addr", "show"], capture_output=True, text=True
        ).stdout.splitlines(),
        "routes": subprocess.run(["ip", "route", "show"], capture_output=True, text=True)
        .stdout.strip()
        .splitlines(),
        "nft_tables": nft_tables(),
        "nft_chains": nft_chains(),
        "ipsets": ipsets(),
        # only what Kubernetes and containerd name (build tools make short-lived ones)
        "cgroups": {
            c: sorted(n for n in cgroup_children(c) if n.startswith(KUBE_CGROUPS))
            for c in cgroup_controllers()
        },
        "sysctls": sysctls,
        "listening": _listening(),
        "paths": {p: os.path.lexists(p) for p in HOST_PATHS},
        "netns": sorted(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else [],
    }


def diff(
    before: dict[str, object], after: dict[str, object], ignore: str | None = None
) -> dict[str, tuple[object, object]]:
    """What differs; list entries matching the regex `ignore` (another program's) are left out."""
    pattern = re.compile(ignore) if ignore else None

    def keep(value: object) -> object:
        if pattern is not None and isinstance(value, list):
            return [v for v in value if not (isinstance(v, str) and pattern.search(v))]
        return value

    out = {}
    for key in before:
        b, a = keep(before.get(key)), keep(after.get(key))
        if b != a:
            out[key] = (b, a)
    return out
