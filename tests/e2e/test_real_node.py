"""The embedded cluster's real node (kubelet + containerd): containers really run.

These need the session's cluster to have the real node (Linux, root, `make tools`); elsewhere
they are skipped with the reason. Every wait polls with a deadline.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from waiting import poll

from kubelab.embedded import hoststate, node

pytestmark = pytest.mark.e2e


@pytest.fixture
def real(embedded_cluster: Any) -> Any:
    if not embedded_cluster.real_node:
        pytest.skip("the session's embedded cluster has no real node (needs Linux and root)")
    return embedded_cluster


@pytest.fixture
def namespace(real: Any) -> Iterator[str]:
    name = f"rn-{uuid.uuid4().hex[:6]}"
    real.kubectl("create", "namespace", name)
    try:
        yield name
    finally:
        real.kubectl("delete", "namespace", name, "--wait=false", check=False)


def _pod(real: Any, ns: str, name: str) -> dict[str, Any]:
    proc = real.kubectl("get", "pod", name, "-n", ns, "-o", "json", check=False)
    return json.loads(proc.stdout) if proc.returncode == 0 else {}


def _apply(real: Any, manifest: str) -> None:
    real.kubectl("apply", "-f", "-", input=manifest)


POD = """apiVersion: v1
kind: Pod
metadata: {{name: {name}, namespace: {ns}}}
spec:
  restartPolicy: {restart}
  securityContext:
    runAsNonRoot: true
    runAsUser: 10001
    seccompProfile: {{type: RuntimeDefault}}
  containers:
  - name: main
    image: {image}
    args: {args}
    resources:
      requests: {{cpu: 10m, memory: 16Mi}}
      limits: {limits}
    securityContext:
      allowPrivilegeEscalation: false
      readOnlyRootFilesystem: true
      capabilities: {{drop: [ALL]}}
"""


def test_the_real_node_is_ready_labelled_and_simulated_nodes_are_tainted(real: Any) -> None:
    nodes = json.loads(real.kubectl("get", "nodes", "-o", "json").stdout)["items"]
    by_name = {n["metadata"]["name"]: n for n in nodes}
    assert real.real_node in by_name
    the_node = by_name[real.real_node]
    assert the_node["metadata"]["labels"].get(node.NODE_LABEL[0]) == node.NODE_LABEL[1]
    assert "kwok.x-k8s.io/node" not in the_node["metadata"].get("annotations", {})
    info = the_node["status"]["nodeInfo"]
    assert info["containerRuntimeVersion"].startswith("containerd://2.")
    assert info["kubeletVersion"].startswith("v1.36.")
    for name, other in by_name.items():
        if name != real.real_node:
            taints = other.get("spec", {}).get("taints", [])
            assert any(t["key"] == "kwok.x-k8s.io/node" for t in taints), other
    # the kubelet's API needs a client certificate: anonymous gets 401
    import ssl
    import urllib.error
    import urllib.request

    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(f"https://{node.NODE_IP}:{node.KUBELET_PORT}/pods", context=ctx)
    assert exc.value.code == 401


def test_memory_over_the_limit_is_oom_killed_then_crash_loops(real: Any, namespace: str) -> None:
    _apply(
        real,
        POD.format(
            name="oom",
            ns=namespace,
            restart="Always",
            image="localhost/kubelab/stress:v1",
            args='["memory", "--bytes", "150M", "--hold"]',
            limits="{memory: 100Mi}",
        ),
    )

    def terminated_oom() -> dict[str, Any] | None:
        statuses = _pod(real, namespace, "oom").get("status", {}).get("containerStatuses", [])
        for st in statuses:
            last = st.get("lastState", {}).get("terminated") or st.get("state", {}).get(
                "terminated"
            )
            if last and last.get("reason") == "OOMKilled":
                return st
        return None

    st = poll("the container to be OOMKilled", terminated_oom, timeout=90)
    term = st.get("lastState", {}).get("terminated") or st["state"]["terminated"]
    assert term["exitCode"] == 137

    def crash_looping() -> bool:
        for st in _pod(real, namespace, "oom").get("status", {}).get("containerStatuses", []):
            waiting = st.get("state", {}).get("waiting") or {}
            if waiting.get("reason") == "CrashLoopBackOff" and st.get("restartCount", 0) >= 1:
                return True
        return False

    poll("CrashLoopBackOff", crash_looping, timeout=120)
    logs = real.kubectl("logs", "oom", "-n", namespace, "--previous", check=False).stdout
    assert "allocated" in logs


def _cpu_stat(pod_uid: str, cluster: str) -> dict[str, int]:
    """cpu.stat of the Pod's cgroup, read on the host (cgroup v1 or v2)."""
    root = node.Paths(cluster).cgroup_root.lstrip("/")
    uid = pod_uid.replace("-", "_")
    bases = ("/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/cpu", "/sys/fs/cgroup")
    for base in map(Path, bases):
        for path in (base / root).glob(f"**/pod{pod_uid}/cpu.stat"):
            return _parse_stat(path)
        for path in (base / root).glob(f"**/*pod{uid}*/cpu.stat"):
            return _parse_stat(path)
    return {}


def _parse_stat(path: Path) -> dict[str, int]:
    out = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition(" ")
        out[key] = int(value)
    return out


def test_cpu_over_the_limit_is_throttled(real: Any, namespace: str) -> None:
    _apply(
        real,
        POD.format(
            name="cpu",
            ns=namespace,
            restart="Never",
            image="localhost/kubelab/stress:v1",
            args='["cpu", "--workers", "2", "--seconds", "60"]',
            limits='{cpu: "1", memory: 64Mi}',
        ),
    )
    pod = poll(
        "the stress Pod to run",
        lambda: (
            (p := _pod(real, namespace, "cpu")).get("status", {}).get("phase") == "Running" and p
        ),
        timeout=60,
    )
    uid = pod["metadata"]["uid"]
    first = poll("the Pod's cgroup cpu.stat", lambda: _cpu_stat(uid, real.name), timeout=20)
    throttled = "nr_throttled"
    later = poll(
        "throttled periods to grow",
        lambda: (
            (s := _cpu_stat(uid, real.name)).get(throttled, 0) > first.get(throttled, 0) + 5 and s
        ),
        timeout=30,
    )
    assert later[throttled] > first.get(throttled, 0)
    assert later["nr_periods"] > 0


def test_a_pod_resolves_a_service_name(real: Any, namespace: str) -> None:
    real.kubectl("create", "service", "clusterip", "web", "--tcp=80:8080", "-n", namespace)
    ip = real.kubectl(
        "get", "service", "web", "-n", namespace, "-o", "jsonpath={.spec.clusterIP}"
    ).stdout.strip()
    _apply(
        real,
        POD.format(
            name="dns",
            ns=namespace,
            restart="Never",
            image="busybox:1.37.0",
            args=f'["nslookup", "web.{namespace}.svc.cluster.local"]',
            limits="{memory: 32Mi}",
        ),
    )
    poll(
        "the lookup Pod to finish",
        lambda: (
            _pod(real, namespace, "dns").get("status", {}).get("phase") in ("Succeeded", "Failed")
        ),
        timeout=60,
    )
    out = real.kubectl("logs", "dns", "-n", namespace).stdout
    assert ip in out, out
    assert _pod(real, namespace, "dns")["status"]["phase"] == "Succeeded", out


def test_kubectl_top_pod_returns_a_value(real: Any, namespace: str) -> None:
    _apply(
        real,
        POD.format(
            name="busy",
            ns=namespace,
            restart="Never",
            image="localhost/kubelab/stress:v1",
            args='["cpu", "--workers", "1", "--seconds", "120"]',
            limits="{cpu: 200m, memory: 64Mi}",
        ),
    )

    def top() -> str:
        proc = real.kubectl("top", "pod", "busy", "-n", namespace, "--no-headers", check=False)
        return proc.stdout.strip() if proc.returncode == 0 else ""

    line = poll("`kubectl top pod` to answer", top, timeout=120, interval=2)
    name, cpu, memory = line.split()[:3]
    assert name == "busy"
    assert cpu.endswith("m") and int(cpu[:-1]) > 0, line
    assert memory.endswith("Mi"), line


def test_a_missing_image_fails_fast_and_is_never_fetched(real: Any, namespace: str) -> None:
    """No registry is reachable (none may be): the pull fails at once, naming the image."""
    _apply(
        real,
        POD.format(
            name="missing",
            ns=namespace,
            restart="Never",
            image="docker.io/library/nginx:1.29.0",
            args="[]",
            limits="{memory: 32Mi}",
        ),
    )

    def pull_failed() -> str:
        for st in _pod(real, namespace, "missing").get("status", {}).get("containerStatuses", []):
            waiting = st.get("state", {}).get("waiting") or {}
            if waiting.get("reason") in ("ErrImagePull", "ImagePullBackOff"):
                return waiting.get("message", "")
        return ""

    message = poll("the pull to fail", pull_failed, timeout=30)
    assert "nginx:1.29.0" in message
    assert "127.0.0.1:9" in message  # the only "registry" there is


def test_up_with_more_nodes_adds_simulated_nodes_that_are_tainted_too(real: Any) -> None:
    from kubelab.embedded import cluster

    def simulated() -> list[dict[str, Any]]:
        items = json.loads(real.kubectl("get", "nodes", "-o", "json").stdout)["items"]
        return [n for n in items if n["metadata"]["name"] != real.real_node]

    before = len(simulated())
    result = cluster.up(nodes=before + 1, name=real.name, progress=lambda _m: None)
    assert result.already_running and result.real_node == real.real_node
    after = simulated()
    assert len(after) == before + 1
    for n in after:  # container labs keep landing on the real node
        assert any(t["key"] == "kwok.x-k8s.io/node" for t in n["spec"].get("taints", [])), n


def test_the_node_listens_on_loopback_and_its_bridge_only(real: Any) -> None:
    paths = node.Paths(real.name)
    inodes: set[str] = set()
    for proc in node.PROCESSES:
        pid = node._alive_pid(paths, proc)
        assert pid, f"{proc} is not running"
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    allowed = {"0100007F", "0100F40A"}  # 127.0.0.1 and 10.244.0.1 (little-endian hex)
    seen = []
    for table in ("/proc/net/tcp", "/proc/net/udp"):
        for line in Path(table).read_text().splitlines()[1:]:
            cols = line.split()
            listening = cols[3] == "0A" if table.endswith("tcp") else cols[2].endswith(":0000")
            if cols[9] in inodes and listening:
                address = cols[1].split(":")[0]
                seen.append(cols[1])
                assert address in allowed, f"a node process listens on {cols[1]} ({table})"
    for table in ("/proc/net/tcp6", "/proc/net/udp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            cols = line.split()
            listening = cols[3] == "0A" if table.endswith("tcp6") else cols[2].endswith(":0000")
            assert not (cols[9] in inodes and listening), f"listens on IPv6 {cols[1]}"
    assert seen  # the kubelet, CoreDNS, ... do listen


def test_host_snapshot_covers_what_the_node_changes(real: Any) -> None:
    """While the node runs, the snapshot sees its bridge, cgroups and processes (so that the
    comparison the session makes after `down` can fail)."""
    snap = hoststate.snapshot()
    assert node.BRIDGE in snap["links"]
    assert "kubelet" in snap["processes"] and "containerd" in snap["processes"]
    cgroups = snap["cgroups"]
    assert any(
        node.Paths(real.name).cgroup_root.lstrip("/") in children for children in cgroups.values()
    )
