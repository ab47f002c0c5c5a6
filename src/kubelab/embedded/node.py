"""A real node beside the embedded control plane: containerd + runc + CNI, kubelet, kube-proxy,
CoreDNS and metrics-server, all built from source by tools/build_k8s.py, with images made
offline (:mod:`kubelab.embedded.images`). Linux and root only.

Layout: everything lives in ``<kubelab cache>/node/<cluster>/`` (containerd's root and state,
the kubelet's root dir, Pod logs, CNI config and IPAM data, certificates, logs, pid files).
The host is changed only where Kubernetes insists, and :mod:`kubelab.embedded.hoststate`
records beforehand what :func:`stop` must put back.

Network: a bridge ``kubelab0`` holds the node IP ``10.244.0.1/24``, which is also the Pods'
gateway; the CNI bridge plugin attaches each Pod to it (no IP masquerade, routes only to the Pod
and Service ranges, no default route: Pods cannot send anything off the machine). kube-proxy
(nftables) makes Services work from Pods and from the host. CoreDNS and metrics-server run as
host processes bound to the bridge address, behind selector-less Services (``kube-dns`` at
10.96.0.10 and ``metrics-server`` for the ``v1beta1.metrics.k8s.io`` APIService).
kube-router's network-policy controller alone (no router, no service proxy) enforces
NetworkPolicy for the node's Pods with iptables (nft backend) and ipsets on the bridge's
FORWARD path; teardown drops the nft tables and ipsets it added.

One real node per machine (the kubelet's port, the bridge and kube-proxy's nft tables are
host-wide); a second cluster asking for one gets a clear error.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kubelab.embedded import build, hoststate, images
from kubelab.embedded.pki import issue, make_ca
from kubelab.errors import KubelabError

Progress = Callable[[str], object]

NODE_NAME = "real-node"
NODE_LABEL = ("kubelab.dev/node", "real")
FAKE_TAINT = "kwok.x-k8s.io/node=fake:NoSchedule"
BRIDGE = "kubelab0"
NODE_CIDR = ipaddress.ip_network("10.244.0.0/24")
NODE_IP = "10.244.0.1"
SERVICE_CIDR = "10.96.0.0/16"
DNS_IP = "10.96.0.10"
CLUSTER_DOMAIN = "cluster.local"
KUBELET_PORT = 10250
KUBELET_HEALTHZ_PORT = 10248
KUBE_PROXY_HEALTHZ_PORT = 10256
KUBE_PROXY_METRICS_PORT = 10249
COREDNS_HEALTH_PORT = 10254
METRICS_SERVER_PORT = 10260
KUBE_ROUTER_HEALTH_PORT = 20244
READY_TIMEOUT_S = 60
NO_REGISTRY = "http://127.0.0.1:9"  # the discard port; refused at once
# the node's processes, in start order (stopped in reverse)
PROCESSES = ("containerd", "kubelet", "kube-proxy", "coredns", "metrics-server", "kube-router")


class RealNodeError(KubelabError):
    """The real node cannot be started or stopped."""


# ---------------------------------------------------------------- where things are


def node_root() -> Path:
    return build.cache_root() / "node"


@dataclass(frozen=True)
class Paths:
    cluster: str

    @property
    def root(self) -> Path:
        return node_root() / self.cluster

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def pids(self) -> Path:
        return self.root / "pids"

    @property
    def containerd_root(self) -> Path:
        return self.root / "containerd"

    @property
    def containerd_state(self) -> Path:
        # a short path: unix socket paths are limited to 108 bytes
        return Path("/run/kubelab") / self.cluster / "containerd"

    @property
    def containerd_sock(self) -> Path:
        return self.containerd_state / "containerd.sock"

    @property
    def kubelet_dir(self) -> Path:
        return self.root / "kubelet"

    @property
    def pod_logs(self) -> Path:
        return self.root / "pod-logs"

    @property
    def cni_conf(self) -> Path:
        return self.root / "cni" / "net.d"

    @property
    def cni_data(self) -> Path:
        return self.root / "cni" / "data"

    @property
    def host_state(self) -> Path:
        return self.root / "host-state.json"

    @property
    def cgroup_root(self) -> str:
        return f"/kubelab-{self.cluster}"


# ---------------------------------------------------------------- preflight


def unsupported_reason() -> str | None:
    """Why this machine cannot run a real node (None when it can)."""
    if sys.platform != "linux":
        return "a real node runs the kubelet and containerd, which need Linux"
    if os.geteuid() != 0:
        return "a real node needs root (the kubelet and containerd manage cgroups, mounts, netns)"
    return None


UNSUPPORTED_HINT = (
    "run `kubelab cluster up` without --real-node (simulated nodes), or use kind or k3d for "
    "containers on this machine"
)

HOST_TOOLS = {
    "ip": "iproute2",
    "nft": "nftables",
    "iptables": "iptables",
    "gcc": "gcc",
    "openssl": "openssl",
    "buildah": "buildah",
    "debootstrap": "debootstrap",
}


def preflight(cluster: str) -> None:
    """Everything that can be checked before anything starts; raise with what to do."""
    reason = unsupported_reason()
    if reason:
        raise RealNodeError(f"--real-node: {reason}", UNSUPPORTED_HINT)
    absent = [f"{tool} ({pkg})" for tool, pkg in HOST_TOOLS.items() if not shutil.which(tool)]
    if not Path("/bin/busybox").exists():
        absent.append("/bin/busybox (busybox-static)")
    if absent:
        raise RealNodeError(
            f"--real-node needs these host programs: {', '.join(absent)}",
            "run `make test-deps` (installs them from Debian's packages)",
        )
    missing = build.missing(("node",))
    if missing:
        raise RealNodeError(
            f"the real node's binaries are not built ({', '.join(missing)})",
            "run `make tools` (or `python3 tools/build_k8s.py`)",
        )
    other = active_cluster()
    if other and other != cluster:
        raise RealNodeError(
            f"cluster {other} already runs the real node on this machine (one per machine: the "
            "kubelet's port, the bridge and kube-proxy's tables are host-wide)",
            f"`kubelab cluster down --name {other}` first, or start this one without --real-node",
        )
    for route in subprocess.run(
        ["ip", "-o", "route", "show"], capture_output=True, text=True
    ).stdout.splitlines():
        dest = route.split()[0]
        if dest == "default" or f"dev {BRIDGE}" in route:
            continue
        with contextlib.suppress(ValueError):
            if ipaddress.ip_network(dest, strict=False).overlaps(NODE_CIDR):
                raise RealNodeError(
                    f"the host already routes {dest}, which overlaps the node's {NODE_CIDR}",
                    "remove that route or network, or run without --real-node",
                )


def active_cluster() -> str | None:
    """The cluster whose real node is running on this machine, if any."""
    for folder in sorted(node_root().glob("*")) if node_root().exists() else []:
        paths = Paths(folder.name)
        if any(_alive_pid(paths, p) for p in PROCESSES) or paths.host_state.exists():
            return folder.name
    return None


# ---------------------------------------------------------------- small helpers


def _run(cmd: list[str], what: str, timeout: float = 60, check: bool = True) -> str:
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
    except FileNotFoundError:
        raise RealNodeError(f"{what}: {cmd[0]} is not installed", "run `make test-deps`") from None
    except subprocess.TimeoutExpired:
        raise RealNodeError(f"{what}: `{' '.join(cmd[:3])}` timed out after {timeout}s") from None
    if check and proc.returncode != 0:
        raise RealNodeError(f"{what} failed: {(proc.stderr or proc.stdout).strip()[-800:]}")
    return proc.stdout


def _write(path: Path, text: str, mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)
    return path


def _pid_file(paths: Paths, proc: str) -> Path:
    return paths.pids / f"{proc}.pid"


def _alive_pid(paths: Paths, proc: str) -> int | None:
    try:
        pid = int(_pid_file(paths, proc).read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    if stat.rsplit(")", 1)[1].split()[0] == "Z":
        return None
    return pid if str(paths.root).encode() in cmdline else None


def _start(paths: Paths, proc: str, cmd: list[str]) -> int:
    paths.logs.mkdir(parents=True, exist_ok=True)
    paths.pids.mkdir(parents=True, exist_ok=True)
    log = open(paths.logs / f"{proc}.log", "ab")  # noqa: SIM115 - handed to the child
    env = {
        "PATH": f"{build.bin_dir()}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": str(paths.root),
        # every process names the node folder on its command line (how stop() finds its own)
        "KUBELAB_NODE_DIR": str(paths.root),
    }
    child = subprocess.Popen(
        cmd,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
        cwd=paths.root,
    )
    log.close()
    _pid_file(paths, proc).write_text(f"{child.pid}\n")
    _children[proc] = child
    return child.pid


# the processes this Python process started (to report how one ended)
_children: dict[str, subprocess.Popen[bytes]] = {}


def _wait(what: str, check: Callable[[], bool], timeout: float, paths: Paths, log: str) -> None:
    deadline = time.monotonic() + timeout
    child = _children.get(log)
    while time.monotonic() < deadline:
        if check():
            return
        # our own child: poll() tells for sure (a /proc read right after exec can race)
        if child is not None and child.poll() is not None:
            break
        time.sleep(0.1)
    tail = ""
    with contextlib.suppress(OSError):
        lines = (paths.logs / f"{log}.log").read_text(errors="replace").splitlines()
        tail = "\n  ".join(line[:300] for line in lines[-12:])
    state = f"not ready after {timeout:.0f}s"
    if child is not None and child.poll() is not None:
        code = child.returncode
        state = f"exited with status {code}" if code >= 0 else f"was killed by signal {-code}"
    elif not _alive_pid(paths, log):
        state = "is gone"
    raise RealNodeError(
        f"{what}: {log} {state}; last lines of {paths.logs / (log + '.log')}:\n  {tail}",
        "`kubelab cluster down` removes everything that was started",
    )


# ---------------------------------------------------------------- certificates (openssl)


def prepare_pki(cluster: str) -> dict[str, Path]:
    """What must exist before the control plane starts: the node CA (signs the kubelet's serving
    certificate and the API server's client certificate for the kubelet)."""
    paths = Paths(cluster)
    ca = make_ca(paths.pki, "node-ca", f"kubelab-{cluster}-node-ca")
    client = issue(paths.pki, "apiserver-kubelet-client", ca, "kube-apiserver-kubelet-client",
                   "system:masters")  # fmt: skip
    return {"node_ca": ca[0], "apiserver_client_crt": client[0], "apiserver_client_key": client[1]}


def component_flags(cluster: str, cluster_pki: Path) -> dict[str, list[tuple[str, object]]]:
    """Control-plane flags for a cluster with a real node (kwokctl componentsPatches)."""
    p = prepare_pki(cluster)
    return {
        "kube-apiserver": [
            ("kubelet-client-certificate", p["apiserver_client_crt"]),
            ("kubelet-client-key", p["apiserver_client_key"]),
            ("kubelet-certificate-authority", p["node_ca"]),
            ("kubelet-preferred-address-types", "InternalIP"),
            ("service-cluster-ip-range", SERVICE_CIDR),
            # metrics-server (an aggregated API) trusts the API server's front-proxy identity
            ("requestheader-client-ca-file", cluster_pki / "ca.crt"),
            ("requestheader-allowed-names", "kwok-admin"),
            ("requestheader-username-headers", "X-Remote-User"),
            ("requestheader-group-headers", "X-Remote-Group"),
            ("requestheader-extra-headers-prefix", "X-Remote-Extra-"),
            ("enable-aggregator-routing", "true"),
        ],
        "kube-controller-manager": [("service-cluster-ip-range", SERVICE_CIDR)],
        # kwok fakes only the nodes it made (they carry this annotation); the kubelet owns the
        # real one, also while it is briefly away. Fake nodes report 127.0.0.1, not 192.0.2.x.
        "kwok-controller": [
            ("manage-all-nodes", "false"),
            ("manage-nodes-with-annotation-selector", "kwok.x-k8s.io/node=fake"),
            ("node-ip", "127.0.0.1"),
        ],
    }


def _kubeconfig(path: Path, server: str, ca: Path, crt: Path, key: Path, user: str) -> Path:
    text = f"""apiVersion: v1
kind: Config
clusters:
- name: kubelab
  cluster:
    server: {server}
    certificate-authority: {ca}
users:
- name: {user}
  user:
    client-certificate: {crt}
    client-key: {key}
contexts:
- name: kubelab
  context: {{cluster: kubelab, user: {user}}}
current-context: kubelab
"""
    return _write(path, text, 0o600)


# ---------------------------------------------------------------- configuration files


def _containerd_config(paths: Paths) -> str:
    bins = build.bin_dir()
    return f"""version = 3
root = "{paths.containerd_root}"
state = "{paths.containerd_state}"
disabled_plugins = ["io.containerd.internal.v1.tracing", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.blockfile", "io.containerd.snapshotter.v1.erofs"]

[grpc]
  address = "{paths.containerd_sock}"

[ttrpc]
  address = "{paths.containerd_sock}.ttrpc"

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "{images.PAUSE_IMAGE}"
  # every registry is "{NO_REGISTRY}" (nothing listens there): a pull of an image that was not
  # imported fails at once, and no lookup or connection ever leaves the machine
  [plugins."io.containerd.cri.v1.images".registry]
    config_path = "{paths.root / "registry"}"

[plugins."io.containerd.cri.v1.runtime"]
  enable_selinux = false
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        BinaryName = "{bins / "runc"}"
        SystemdCgroup = false
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["{bins / "cni"}"]
    conf_dir = "{paths.cni_conf}"
    max_conf_num = 1

[plugins."io.containerd.grpc.v1.cri"]
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
"""


def _cni_config(paths: Paths) -> str:
    conf = {
        "cniVersion": "1.0.0",
        "name": "kubelab",
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "dataDir": str(paths.cni_data),
                    "ranges": [[{"subnet": str(NODE_CIDR), "gateway": NODE_IP}]],
                    # no default route: Pods reach Pods, Services and the node, nothing else
                    "routes": [{"dst": str(NODE_CIDR)}, {"dst": SERVICE_CIDR}],
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }
    return json.dumps(conf, indent=1)


def _kubelet_config(paths: Paths, ca: Path, serving: tuple[Path, Path]) -> str:
    return f"""apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: {NODE_IP}
port: {KUBELET_PORT}
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: {KUBELET_HEALTHZ_PORT}
tlsCertFile: {serving[0]}
tlsPrivateKeyFile: {serving[1]}
authentication:
  anonymous: {{enabled: false}}
  webhook: {{enabled: true}}
  x509: {{clientCAFile: {ca}}}
authorization:
  mode: Webhook
cgroupDriver: cgroupfs
cgroupRoot: {paths.cgroup_root}
failCgroupV1: false
containerRuntimeEndpoint: unix://{paths.containerd_sock}
podLogsDir: {paths.pod_logs}
clusterDNS: [{DNS_IP}]
clusterDomain: {CLUSTER_DOMAIN}
resolvConf: ""
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {{memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%"}}
evictionPressureTransitionPeriod: 10s
failSwapOn: false
maxPods: 110
serializeImagePulls: false
registerNode: true
registerWithTaints: []
nodeStatusUpdateFrequency: 4s
syncFrequency: 10s
fileCheckFrequency: 10s
protectKernelDefaults: false
makeIPTablesUtilChains: false
localStorageCapacityIsolation: true
"""


def _kube_proxy_config(kubeconfig: Path) -> str:
    return f"""apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: nftables
clientConnection:
  kubeconfig: {kubeconfig}
bindAddress: 127.0.0.1
healthzBindAddress: 127.0.0.1:{KUBE_PROXY_HEALTHZ_PORT}
metricsBindAddress: 127.0.0.1:{KUBE_PROXY_METRICS_PORT}
clusterCIDR: {NODE_CIDR}
hostnameOverride: {NODE_NAME}
nodePortAddresses: [{NODE_IP}/32]
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
  tcpBeLiberal: false
  udpTimeout: 0s
  udpStreamTimeout: 0s
"""


def _corefile(kubeconfig: Path) -> str:
    return f""".:53 {{
    bind {NODE_IP}
    errors
    health 127.0.0.1:{COREDNS_HEALTH_PORT}
    ready 127.0.0.1:{COREDNS_HEALTH_PORT + 1}
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig} kubelab
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 5
    }}
    cache 5
}}
"""


def _host_service(
    name: str, labels: str, ports: list[tuple[str, str, int, int]], spec: str = ""
) -> str:
    """A Service whose one endpoint is a process on the host (the node's IP), as YAML: a
    selector-less Service plus the EndpointSlice that names the host. ports: (name, protocol,
    service port, host port)."""
    service_ports = "\n".join(
        f"  - {{name: {n}, port: {port}, protocol: {proto}, targetPort: {target}}}"
        for n, proto, port, target in ports
    )
    slice_ports = "\n".join(
        f"- {{name: {n}, port: {target}, protocol: {proto}}}" for n, proto, _, target in ports
    )
    return f"""apiVersion: v1
kind: Service
metadata:
  name: {name}
  namespace: kube-system
  labels: {labels}
spec:
{spec}  ports:
{service_ports}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: {name}-host
  namespace: kube-system
  labels:
    kubernetes.io/service-name: {name}
    endpointslice.kubernetes.io/managed-by: kubelab.dev
addressType: IPv4
endpoints:
- addresses: ["{NODE_IP}"]
  conditions: {{ready: true}}
  nodeName: {NODE_NAME}
ports:
{slice_ports}
---
"""


# API objects the node needs (applied with the admin kubeconfig)
def _addon_manifest() -> str:
    dns = _host_service(
        "kube-dns",
        "{k8s-app: kube-dns, kubernetes.io/name: CoreDNS, kubelab.dev/node: real}",
        [("dns", "UDP", 53, 53), ("dns-tcp", "TCP", 53, 53)],
        spec=f"  clusterIP: {DNS_IP}\n",
    )
    metrics = _host_service(
        "metrics-server",
        "{k8s-app: metrics-server}",
        [("https", "TCP", 443, METRICS_SERVER_PORT)],
    )
    return (
        dns
        + metrics
        + """apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata:
  name: v1beta1.metrics.k8s.io
  labels: {k8s-app: metrics-server}
spec:
  group: metrics.k8s.io
  version: v1beta1
  groupPriorityMinimum: 100
  versionPriority: 100
  # metrics-server serves a self-signed certificate, as in its upstream manifest
  insecureSkipTLSVerify: true
  service: {name: metrics-server, namespace: kube-system, port: 443}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "kubelab:coredns"}
rules:
- apiGroups: [""]
  resources: [endpoints, services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "kubelab:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "kubelab:coredns"}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: "kubelab:coredns"}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: "system:aggregated-metrics-reader"
  labels:
    rbac.authorization.k8s.io/aggregate-to-admin: "true"
    rbac.authorization.k8s.io/aggregate-to-edit: "true"
    rbac.authorization.k8s.io/aggregate-to-view: "true"
rules:
- apiGroups: [metrics.k8s.io]
  resources: [pods, nodes]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "kubelab:metrics-server"}
rules:
- apiGroups: [""]
  resources: [nodes/metrics]
  verbs: [get]
- apiGroups: [""]
  resources: [pods, nodes]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "kubelab:metrics-server"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "kubelab:metrics-server"}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: "kubelab:metrics-server"}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "kubelab:metrics-server:auth-delegator"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:auth-delegator"}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: "kubelab:metrics-server"}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: "kubelab:metrics-server:auth-reader", namespace: kube-system}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: extension-apiserver-authentication-reader
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: "kubelab:metrics-server"}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "kubelab:kube-router"}
rules:
  # its informers; the network-policy controller reads Pods, Namespaces and policies
  - apiGroups: [""]
    resources: [pods, namespaces, nodes, services, endpoints]
    verbs: [get, list, watch]
  - apiGroups: [networking.k8s.io]
    resources: [networkpolicies]
    verbs: [get, list, watch]
  - apiGroups: [discovery.k8s.io]
    resources: [endpointslices]
    verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "kubelab:kube-router"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "kubelab:kube-router"}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: "kubelab:kube-router"}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "kubelab:kube-proxy"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:node-proxier"}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: "system:kube-proxy"}]
"""
    )


# ---------------------------------------------------------------- start


@dataclass
class NodeResult:
    name: str
    seconds: float
    images: list[str]
    stand_ins: list[str]


def ensure_images(apps_root: Path, progress: Progress = print) -> list[images.BuiltImage]:
    """Every image the node imports (built once, cached)."""
    runc = build.bin_dir() / "runc"
    out = [images.pause_image(), images.busybox_image(), images.rabbitmq_image(progress)]
    for app in images.app_images(apps_root):
        out.append(images.app_image(app, runc, progress))
    return out


def start(
    cluster: str,
    admin_kubeconfig: Path,
    server: str,
    cluster_pki: Path,
    apps_root: Path,
    progress: Progress = print,
) -> NodeResult:
    """Start the node against a running control plane; on failure the caller runs stop()."""
    begin = time.monotonic()
    paths = Paths(cluster)
    paths.root.mkdir(parents=True, exist_ok=True)
    os.chmod(paths.root, 0o700)
    built = ensure_images(apps_root, progress)
    kubectl = [str(build.bin_dir() / "kubectl"), "--kubeconfig", str(admin_kubeconfig)]

    # 1. certificates signed by the cluster CA (kwokctl made it) and by the node CA
    ca = (cluster_pki / "ca.crt", cluster_pki / "ca.key")
    node_ca = make_ca(paths.pki, "node-ca", f"kubelab-{cluster}-node-ca")
    kcfg = {}
    for who, cn, org in (
        ("kubelet", f"system:node:{NODE_NAME}", "system:nodes"),
        ("kube-proxy", "system:kube-proxy", ""),
        ("coredns", "kubelab:coredns", ""),
        ("metrics-server", "kubelab:metrics-server", ""),
        ("kube-router", "kubelab:kube-router", ""),
    ):
        crt, key = issue(paths.pki, who, ca, cn, org)
        kcfg[who] = _kubeconfig(paths.root / f"{who}.kubeconfig", server, ca[0], crt, key, who)
    serving = issue(
        paths.pki, "kubelet-serving", node_ca, NODE_NAME, client=False, server=True, ips=(NODE_IP,)
    )
    client_ca = _write(
        paths.pki / "kubelet-client-ca.crt", node_ca[0].read_text() + ca[0].read_text()
    )

    # 2. remember the host as it is, then change it
    if not paths.host_state.exists():
        hoststate.save(paths.host_state)
    _setup_cgroups(paths)
    _setup_bridge()
    paths.containerd_state.mkdir(parents=True, exist_ok=True)
    for folder in (paths.kubelet_dir, paths.pod_logs, paths.cni_conf, paths.cni_data):
        folder.mkdir(parents=True, exist_ok=True)
    _write(paths.cni_conf / "10-kubelab.conflist", _cni_config(paths))

    # 3. containerd, then the images
    _write(paths.root / "registry" / "_default" / "hosts.toml", f'server = "{NO_REGISTRY}"\n')
    cfg = _write(paths.root / "containerd.toml", _containerd_config(paths))
    _start(paths, "containerd", [str(build.bin_dir() / "containerd"), "--config", str(cfg)])
    _wait("containerd", paths.containerd_sock.exists, 20, paths, "containerd")
    ctr = [str(build.bin_dir() / "ctr"), "--address", str(paths.containerd_sock), "-n", "k8s.io"]
    _wait("containerd", lambda: _ok([*ctr, "version"]), 20, paths, "containerd")
    t = time.monotonic()
    for image in built:
        _run([*ctr, "images", "import", "--no-unpack", str(image.archive)],
             f"import {image.ref}", timeout=300)  # fmt: skip
    progress(f"imported {len(built)} images in {time.monotonic() - t:.1f}s")
    # Unpacking (gunzip into overlay snapshots, ~3 s for the Python base) would otherwise
    # happen when a Pod first uses an image; do it now, beside the kubelet's start, for the
    # small images and one app image: the apps share the base layer, which is the slow part.
    unpack_errors: list[str] = []
    apps = [
        b for b in built if b.ref.startswith("localhost/kubelab/") and b.ref != images.PAUSE_IMAGE
    ]
    # RabbitMQ (one lab's broker) is unpacked when its first Pod starts
    eager = [b for b in built if b not in apps and b.ref != images.RABBITMQ_IMAGE] + apps[:1]

    def unpack() -> None:
        for image in eager:
            proc = subprocess.run(
                [*ctr, "images", "import", str(image.archive)],
                capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
            )  # fmt: skip
            if proc.returncode != 0:
                unpack_errors.append(f"{image.ref}: {proc.stderr.strip()[-300:]}")

    unpacker = threading.Thread(target=unpack, name="unpack-images", daemon=True)
    unpacker.start()

    # 4. the kubelet
    kcfg_file = _write(paths.root / "kubelet.yaml", _kubelet_config(paths, client_ca, serving))
    _start(paths, "kubelet", [
        str(build.bin_dir() / "kubelet"),
        f"--config={kcfg_file}",
        f"--kubeconfig={kcfg['kubelet']}",
        f"--root-dir={paths.kubelet_dir}",
        f"--hostname-override={NODE_NAME}",
        f"--node-ip={NODE_IP}",
        f"--node-labels={NODE_LABEL[0]}={NODE_LABEL[1]}",
        "--v=1",
    ])  # fmt: skip

    def node_ready() -> bool:
        out = subprocess.run(
            [*kubectl, "get", "node", NODE_NAME, "-o",
             "jsonpath={.status.conditions[?(@.type=='Ready')].status}"],
            capture_output=True, text=True,
        ).stdout  # fmt: skip
        return out.strip() == "True"

    _wait("node Ready", node_ready, READY_TIMEOUT_S, paths, "kubelet")
    progress(f"node {NODE_NAME} Ready after {time.monotonic() - begin:.1f}s")

    # 5. Services, DNS and metrics
    proc = subprocess.run(
        [*kubectl, "apply", "--server-side", "--force-conflicts", "-f", "-"],
        input=_addon_manifest(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    if proc.returncode != 0:
        raise RealNodeError(f"applying the node's Services and RBAC failed: {proc.stderr[-800:]}")
    kp = _write(paths.root / "kube-proxy.yaml", _kube_proxy_config(kcfg["kube-proxy"]))
    _start(paths, "kube-proxy", [str(build.bin_dir() / "kube-proxy"), f"--config={kp}", "--v=1"])
    corefile = _write(paths.root / "Corefile", _corefile(kcfg["coredns"]))
    _start(paths, "coredns", [str(build.bin_dir() / "coredns"), "-conf", str(corefile)])
    ms_dir = paths.root / "metrics-server"
    ms_dir.mkdir(exist_ok=True)
    _start(paths, "metrics-server", [
        str(build.bin_dir() / "metrics-server"),
        f"--kubeconfig={kcfg['metrics-server']}",
        f"--authentication-kubeconfig={kcfg['metrics-server']}",
        f"--authorization-kubeconfig={kcfg['metrics-server']}",
        f"--bind-address={NODE_IP}",
        f"--secure-port={METRICS_SERVER_PORT}",
        f"--cert-dir={ms_dir}",
        f"--kubelet-certificate-authority={node_ca[0]}",
        "--kubelet-preferred-address-types=InternalIP",
        "--kubelet-use-node-status-port",
        "--metric-resolution=15s",
        f"--node-selector={NODE_LABEL[0]}={NODE_LABEL[1]}",  # kwok nodes have no kubelet
    ])  # fmt: skip
    _wait("kube-proxy", lambda: _http_ok(KUBE_PROXY_HEALTHZ_PORT, "/healthz"), 30, paths,
          "kube-proxy")  # fmt: skip
    _wait("CoreDNS", lambda: _http_ok(COREDNS_HEALTH_PORT + 1, "/ready"), 30, paths, "coredns")
    # NetworkPolicy: kube-router's firewall alone (iptables + ipset on the FORWARD path of the
    # bridge); routing and Services stay with the bridge and kube-proxy
    _start(paths, "kube-router", [
        str(build.bin_dir() / "kube-router"),
        f"--kubeconfig={kcfg['kube-router']}",
        f"--hostname-override={NODE_NAME}",
        "--run-firewall=true",
        "--run-router=false",
        "--run-service-proxy=false",
        "--enable-cni=false",
        "--enable-ipv6=false",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--health-addr=127.0.0.1",  # its default is every interface
        f"--health-port={KUBE_ROUTER_HEALTH_PORT}",
        "--v=1",
    ])  # fmt: skip
    _wait("kube-router", lambda: _http_ok(KUBE_ROUTER_HEALTH_PORT, "/healthz"), 30, paths,
          "kube-router")  # fmt: skip
    unpacker.join(timeout=300)
    if unpack_errors or unpacker.is_alive():
        why = "; ".join(unpack_errors or ["timeout"])
        raise RealNodeError(f"unpacking the images failed: {why}")
    taint_simulated(admin_kubeconfig)
    return NodeResult(
        NODE_NAME,
        time.monotonic() - begin,
        [b.ref for b in built],
        [b.ref for b in built if b.stand_in],
    )


def taint_simulated(admin_kubeconfig: Path) -> None:
    """Fake nodes take no Pods unless a Pod tolerates it: labs run on the real node."""
    kubectl = [str(build.bin_dir() / "kubectl"), "--kubeconfig", str(admin_kubeconfig)]
    _run([*kubectl, "taint", "nodes", "-l", "type=kwok", FAKE_TAINT, "--overwrite"],
         "taint the simulated nodes", check=False)  # fmt: skip


def _ok(cmd: list[str]) -> bool:
    return subprocess.run(cmd, capture_output=True).returncode == 0


def _http_ok(port: int, path: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=1) as resp:
            return resp.status == 200
    except OSError:
        return False


def _setup_cgroups(paths: Paths) -> None:
    """The kubelet's cgroupRoot under every controller (v1); cpuset needs cpus/mems copied."""
    for controller in hoststate.cgroup_controllers():
        base = hoststate.CGROUP_ROOT / controller if controller else hoststate.CGROUP_ROOT
        folder = base / paths.cgroup_root.lstrip("/")
        folder.mkdir(exist_ok=True)
        if controller == "cpuset":
            for f in ("cpuset.cpus", "cpuset.mems"):
                (folder / f).write_text((base / f).read_text())


def _setup_bridge() -> None:
    if not Path(f"/sys/class/net/{BRIDGE}").exists():
        _run(["ip", "link", "add", BRIDGE, "type", "bridge"], "create the node bridge")
    addrs = _run(["ip", "-o", "addr", "show", "dev", BRIDGE], "read the bridge address")
    if f"{NODE_IP}/" not in addrs:
        _run(["ip", "addr", "add", f"{NODE_IP}/{NODE_CIDR.prefixlen}", "dev", BRIDGE],
             "address the node bridge")  # fmt: skip
    _run(["ip", "link", "set", BRIDGE, "up"], "bring the node bridge up")


# ---------------------------------------------------------------- stop


def stop(cluster: str, progress: Progress = print) -> list[str]:
    """Stop everything the node started and undo its host changes. Idempotent.

    Returns what could not be undone (empty when the host is as it was).
    """
    paths = Paths(cluster)
    if not paths.root.exists() and not paths.containerd_state.exists():
        return []
    problems: list[str] = []
    # 1. the node's processes, newest first
    for proc in reversed(PROCESSES):
        pid = _alive_pid(paths, proc)
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
    _wait_dead(paths, 10)
    # 2. the containers: every process in the node's cgroups, and the shims
    _kill_cgroup_tasks(paths)
    _kill_shims(paths)
    for proc in PROCESSES:
        pid = _alive_pid(paths, proc)
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    _wait_dead(paths, 5)
    # 3. mounts under the node's folders (rootfs, volumes, netns), deepest first
    problems += _unmount(paths)
    # 4. network: the bridge (veths go with their netns), nft tables and chains
    if Path(f"/sys/class/net/{BRIDGE}").exists():
        _run(["ip", "link", "delete", BRIDGE], "delete the bridge", check=False)
    saved = hoststate.load(paths.host_state)
    _cleanup_nft(saved)
    _cleanup_ipsets(saved)  # after the rules that use them are gone
    # 5. cgroups, sysctls, host paths
    problems += _remove_cgroups(paths, saved)
    for key, value in (saved.get("sysctls") or {}).items():  # type: ignore[union-attr]
        if hoststate.read_sysctl(key) != value:
            hoststate.write_sysctl(key, value)
    for path, existed in (saved.get("paths") or {}).items():  # type: ignore[union-attr]
        if not existed and os.path.lexists(path):
            if path == "/run/netns":
                problems += _remove_run_netns()
                continue
            shutil.rmtree(path, ignore_errors=True)
            with contextlib.suppress(OSError):
                os.unlink(path)
    shutil.rmtree(paths.containerd_state, ignore_errors=True)
    with contextlib.suppress(OSError):
        paths.containerd_state.parent.rmdir()  # /run/kubelab/<cluster>
    if problems:
        return problems
    shutil.rmtree(paths.root, ignore_errors=True)
    if paths.root.exists():
        problems.append(f"{paths.root} could not be removed")
    return problems


def _remove_run_netns() -> list[str]:
    """containerd made /run/netns (a shared bind mount of itself) and cni-* namespaces there.
    Remove ours; leave the folder while another program's namespace is in it."""
    problems = _unmount_under(tuple(str(p) for p in Path("/run/netns").glob("cni-*")))
    for entry in Path("/run/netns").glob("cni-*"):
        with contextlib.suppress(OSError):
            entry.unlink()
    if any(Path("/run/netns").iterdir()):
        return problems
    subprocess.run(["umount", "/run/netns"], capture_output=True)
    with contextlib.suppress(OSError):
        os.rmdir("/run/netns")
    return problems


def _wait_dead(paths: Paths, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_alive_pid(paths, p) for p in PROCESSES):
        time.sleep(0.1)


def _cgroup_dirs(paths: Paths) -> list[Path]:
    out = []
    for controller in hoststate.cgroup_controllers():
        base = hoststate.CGROUP_ROOT / controller if controller else hoststate.CGROUP_ROOT
        folder = base / paths.cgroup_root.lstrip("/")
        if folder.exists():
            out.append(folder)
    return out


def _kill_cgroup_tasks(paths: Paths) -> None:
    for _ in range(20):
        pids: set[int] = set()
        for folder in _cgroup_dirs(paths):
            for procs in folder.rglob("cgroup.procs"):
                with contextlib.suppress(OSError, ValueError):
                    pids |= {int(p) for p in procs.read_text().split()}
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)


def _shims(paths: Paths) -> list[int]:
    """containerd-shim-runc-v2 processes of this node (they name its socket), not zombies."""
    needle = str(paths.containerd_sock).encode()
    out = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if needle not in (proc / "cmdline").read_bytes():
                continue
            if (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                out.append(int(proc.name))
        except (OSError, IndexError):
            continue
    return out


def _kill_shims(paths: Paths) -> None:
    deadline = time.monotonic() + 10
    while (shims := _shims(paths)) and time.monotonic() < deadline:
        for pid in shims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)


def _unmount(paths: Paths) -> list[str]:
    return _unmount_under((str(paths.root), str(paths.containerd_state)))


def _unmount_under(folders: tuple[str, ...]) -> list[str]:
    """Unmount everything at or below these folders, deepest first."""
    roots = tuple(f.rstrip("/") + "/" for f in folders)

    def ours(point: str) -> bool:
        return point.startswith(roots) or point + "/" in roots

    problems = []
    for _ in range(3):
        mounts = []
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            point = line.split()[4].replace("\\040", " ")
            if ours(point):
                mounts.append(point)
        if not mounts:
            return []
        for point in sorted(set(mounts), key=len, reverse=True):
            proc = subprocess.run(["umount", point], capture_output=True, text=True)
            if proc.returncode != 0:
                subprocess.run(["umount", "-l", point], capture_output=True)
    left = [
        line.split()[4]
        for line in Path("/proc/self/mountinfo").read_text().splitlines()
        if ours(line.split()[4])
    ]
    if left:
        problems.append(f"mounts left: {', '.join(left[:5])}")
    return problems


def _cleanup_nft(saved: dict[str, object]) -> None:
    """Drop the tables the node added; in tables that were there before, drop KUBE-* chains."""
    before = set(saved.get("nft_tables") or [])  # type: ignore[arg-type]
    # kube-proxy's own tables, and tables kubelet/iptables-nft created
    for table in hoststate.nft_tables():
        if table not in before:
            family, name = table.split()
            subprocess.run(["nft", "delete", "table", family, name], capture_output=True)
    for chain in hoststate.nft_chains():
        family, table, name = chain.split()
        if name.startswith("KUBE-") and f"{family} {table}" in before:
            subprocess.run(["nft", "flush", "chain", family, table, name], capture_output=True)
    for chain in hoststate.nft_chains():
        family, table, name = chain.split()
        if name.startswith("KUBE-") and f"{family} {table}" in before:
            subprocess.run(["nft", "delete", "chain", family, table, name], capture_output=True)


def _cleanup_ipsets(saved: dict[str, object]) -> None:
    """Destroy the ipsets the node (kube-router's firewall) added."""
    before = set(saved.get("ipsets") or [])  # type: ignore[arg-type]
    for name in hoststate.ipsets():
        if name not in before:
            subprocess.run(["ipset", "destroy", name], capture_output=True)


def _remove_cgroups(paths: Paths, saved: dict[str, object]) -> list[str]:
    problems = []
    before: dict[str, list[str]] = saved.get("cgroups") or {}  # type: ignore[assignment]
    for folder in _cgroup_dirs(paths):
        for sub in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            if sub.is_dir():
                with contextlib.suppress(OSError):
                    sub.rmdir()
        try:
            folder.rmdir()
        except OSError as exc:
            problems.append(f"cgroup {folder}: {exc}")
    # containerd puts some tasks under <controller>/k8s.io when no parent is given
    for controller, children in before.items():
        base = hoststate.CGROUP_ROOT / controller if controller else hoststate.CGROUP_ROOT
        for extra in set(hoststate.cgroup_children(controller)) - set(children):
            if extra in ("k8s.io", paths.cgroup_root.lstrip("/")):
                for sub in sorted((base / extra).rglob("*"), key=lambda p: len(p.parts),
                                  reverse=True):  # fmt: skip
                    if sub.is_dir():
                        with contextlib.suppress(OSError):
                            sub.rmdir()
                with contextlib.suppress(OSError):
                    (base / extra).rmdir()
    return problems


def is_running(cluster: str) -> bool:
    paths = Paths(cluster)
    return all(_alive_pid(paths, p) for p in PROCESSES)


def main(argv: list[str] | None = None) -> int:
    """`python -m kubelab.embedded.node`: build the node's images now (what `make tools` runs),
    so that the first `cluster up --real-node` only imports them. A no-op where no real node
    can run (not Linux, not root)."""
    reason = unsupported_reason()
    if reason:
        print(f"real node images: skipped ({reason})")
        return 0
    start = time.monotonic()
    try:
        built = ensure_images(build.repo_root() / "apps", lambda msg: print(msg, flush=True))
    except KubelabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    size = sum(b.archive.stat().st_size for b in built)
    print(
        f"real node images up to date ({len(built)} images, {size / 1e6:.0f} MB, "
        f"{time.monotonic() - start:.0f}s)"
    )
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main(sys.argv[1:]))
