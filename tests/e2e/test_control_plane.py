"""The embedded cluster behaves like a real cluster: real API server, controllers, scheduler,
RBAC, admission and CRDs, with pods running on kwok-simulated nodes."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from waiting import poll

from kubelab.embedded import build, cluster
from kubelab.kube import kubeconfig

pytestmark = pytest.mark.e2e


# Where a real node is present (kubelab cluster up --real-node), the simulated nodes are tainted
# so that Pods land on the real node; tests about the simulated nodes place their Pods there.
ON_KWOK: dict[str, Any] = {
    "nodeSelector": {"type": "kwok"},
    "tolerations": [{"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"}],
}


def _ns(embedded_cluster: Any, prefix: str, labels: dict[str, str] | None = None) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:5]}"
    embedded_cluster.kubectl("create", "namespace", name)
    for k, v in (labels or {}).items():
        embedded_cluster.kubectl("label", "namespace", name, f"{k}={v}")
    return name


def _json(embedded_cluster: Any, *args: str) -> Any:
    return json.loads(embedded_cluster.kubectl(*args, "-o", "json").stdout)


# ------------------------------------------------------------------ workloads


def test_deployment_pods_ready_on_kwok_nodes_and_rollout_undo(embedded_cluster: Any) -> None:
    ns = _ns(embedded_cluster, "deploy")
    k = embedded_cluster.kubectl
    dep = json.loads(
        k("-n", ns, "create", "deployment", "web", "--image=nginx:1.27.3", "--replicas=3",
          "--dry-run=client", "-o", "json").stdout
    )  # fmt: skip
    dep["spec"]["template"]["spec"].update(ON_KWOK)  # this test is about the simulated nodes
    k("apply", "-f", "-", input=json.dumps(dep))
    k("-n", ns, "rollout", "status", "deployment/web", "--timeout=90s")

    pods = _json(embedded_cluster, "-n", ns, "get", "pods", "-l", "app=web")["items"]
    assert len(pods) == 3
    nodes = {n["metadata"]["name"]: n for n in _json(embedded_cluster, "get", "nodes")["items"]}
    for pod in pods:
        assert pod["status"]["phase"] == "Running"
        ready = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
        assert ready.get("Ready") == "True"
        node = nodes[pod["spec"]["nodeName"]]  # placed by the real scheduler
        assert node["metadata"]["annotations"].get("kwok.x-k8s.io/node") == "fake"

    k("-n", ns, "set", "image", "deployment/web", "nginx=nginx:1.28.0")
    k("-n", ns, "rollout", "status", "deployment/web", "--timeout=90s")
    rs = _json(embedded_cluster, "-n", ns, "get", "replicasets", "-l", "app=web")["items"]
    assert len(rs) == 2
    images = {r["spec"]["template"]["spec"]["containers"][0]["image"] for r in rs}
    assert images == {"nginx:1.27.3", "nginx:1.28.0"}

    k("-n", ns, "rollout", "undo", "deployment/web")
    k("-n", ns, "rollout", "status", "deployment/web", "--timeout=90s")
    dep = _json(embedded_cluster, "-n", ns, "get", "deployment", "web")
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.27.3"
    rs = _json(embedded_cluster, "-n", ns, "get", "replicasets", "-l", "app=web")["items"]
    active = [r for r in rs if r["spec"].get("replicas")]
    assert len(active) == 1  # the first ReplicaSet is back, not a new third one
    assert len(rs) == 2
    assert active[0]["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.27.3"
    k("delete", "namespace", ns, "--wait=false")


# ------------------------------------------------------------------ RBAC with a CSR-issued user


def _user_kubeconfig(embedded_cluster: Any, user: str, cert_pem: bytes, key_pem: bytes) -> Path:
    admin = yaml.safe_load(
        embedded_cluster.kubectl("config", "view", "--raw", "--minify", "--flatten").stdout
    )
    cluster_entry = admin["clusters"][0]
    cfg = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster_entry],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": base64.b64encode(cert_pem).decode(),
                    "client-key-data": base64.b64encode(key_pem).decode(),
                },
            }
        ],
        "contexts": [{"name": user, "context": {"cluster": cluster_entry["name"], "user": user}}],
        "current-context": user,
    }
    path = embedded_cluster.kubeconfig.parent / f"{user}.kubeconfig"
    path.write_text(yaml.safe_dump(cfg))
    path.chmod(0o600)
    return path


def test_csr_issued_user_is_allowed_only_where_bound(embedded_cluster: Any) -> None:
    k = embedded_cluster.kubectl
    user = f"alice-{uuid.uuid4().hex[:4]}"
    allowed, other = _ns(embedded_cluster, "team-a"), _ns(embedded_cluster, "team-b")

    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.COMMON_NAME, user),
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "lab-users"),
                ]
            )
        )
        .sign(key, hashes.SHA256())
    )
    csr_obj = {
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"name": user},
        "spec": {
            "request": base64.b64encode(csr.public_bytes(serialization.Encoding.PEM)).decode(),
            "signerName": "kubernetes.io/kube-apiserver-client",
            "expirationSeconds": 3600,
            "usages": ["client auth"],
        },
    }
    k("apply", "-f", "-", input=json.dumps(csr_obj))
    k("certificate", "approve", user)
    cert_b64 = poll(
        "the CSR to be signed",
        lambda: k("get", "csr", user, "-o", "jsonpath={.status.certificate}").stdout.strip(),
    )
    cert_pem = base64.b64decode(cert_b64)
    cert = x509.load_pem_x509_certificate(cert_pem)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == user
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )

    k("-n", allowed, "create", "role", "pod-reader", "--verb=get,list,watch", "--resource=pods")
    k("-n", allowed, "create", "rolebinding", "pod-reader", "--role=pod-reader", f"--user={user}")
    cfg = _user_kubeconfig(embedded_cluster, user, cert_pem, key_pem)

    def as_user(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(embedded_cluster.bin_dir / "kubectl"), *args],
            env={**embedded_cluster.env, "KUBECONFIG": str(cfg)},
            capture_output=True,
            text=True,
            timeout=30,
        )

    ok = poll("the RoleBinding to take effect", lambda: as_user("-n", allowed, "get", "pods"))
    assert ok.returncode == 0, ok.stderr
    denied = as_user("-n", other, "get", "pods")
    assert denied.returncode != 0
    assert "Forbidden" in denied.stderr
    assert f'User "{user}" cannot list resource "pods"' in denied.stderr
    assert f'in the namespace "{other}"' in denied.stderr
    # bound to read only: writing in its own namespace is refused too
    write = as_user("-n", allowed, "create", "configmap", "x", "--from-literal=a=b")
    assert write.returncode != 0
    assert f'User "{user}" cannot create resource "configmaps"' in write.stderr
    k("delete", "csr", user)
    k("delete", "namespace", allowed, other, "--wait=false")


# ------------------------------------------------------------------ admission


def test_pod_security_baseline_rejects_privileged_pod(embedded_cluster: Any) -> None:
    k = embedded_cluster.kubectl
    ns = _ns(embedded_cluster, "psa", {"pod-security.kubernetes.io/enforce": "baseline"})

    def pod(name: str, privileged: bool) -> str:
        return json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name, "namespace": ns},
                "spec": {
                    "containers": [
                        {
                            "name": "c",
                            "image": "busybox:1.37",
                            "securityContext": {"privileged": privileged},
                        }
                    ],
                    **ON_KWOK,
                },
            }
        )

    rejected = k("apply", "-f", "-", input=pod("root", True), check=False)
    assert rejected.returncode != 0
    assert 'violates PodSecurity "baseline:latest"' in rejected.stderr
    assert "privileged" in rejected.stderr
    assert k("-n", ns, "get", "pod", "root", check=False).returncode != 0

    k("apply", "-f", "-", input=pod("plain", False))  # the same pod unprivileged is admitted
    k("-n", ns, "wait", "--for=condition=Ready", "pod/plain", "--timeout=60s")
    k("delete", "namespace", ns, "--wait=false")


# ------------------------------------------------------------------ CRDs


def test_crd_established_and_custom_object_round_trip(embedded_cluster: Any) -> None:
    k = embedded_cluster.kubectl
    group = f"g{uuid.uuid4().hex[:6]}.kubelab.dev"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "properties": {
                                        "size": {"type": "integer", "minimum": 1},
                                        "colour": {"type": "string"},
                                    },
                                }
                            },
                        }
                    },
                }
            ],
        },
    }
    k("apply", "-f", "-", input=json.dumps(crd))
    k("wait", "--for=condition=Established", f"crd/widgets.{group}", "--timeout=60s")
    ns = _ns(embedded_cluster, "crd")
    obj = {
        "apiVersion": f"{group}/v1",
        "kind": "Widget",
        "metadata": {"name": "w1", "namespace": ns},
        "spec": {"size": 3, "colour": "teal"},
    }
    poll(
        "the Widget to be created",
        lambda: k("apply", "-f", "-", input=json.dumps(obj), check=False).returncode == 0,
        timeout=30,
    )
    got = _json(embedded_cluster, "-n", ns, "get", f"widgets.{group}", "w1")
    assert got["spec"] == {"size": 3, "colour": "teal"}
    # the schema is enforced by the real API server
    bad = {**obj, "metadata": {"name": "w2", "namespace": ns}, "spec": {"size": 0}}
    res = k("apply", "-f", "-", input=json.dumps(bad), check=False)
    assert res.returncode != 0 and "spec.size" in res.stderr
    k("delete", "crd", f"widgets.{group}")
    k("delete", "namespace", ns, "--wait=false")


def test_api_reports_the_built_version(embedded_cluster: Any) -> None:
    v = json.loads(embedded_cluster.kubectl("version", "-o", "json").stdout)
    assert v["serverVersion"]["gitVersion"] == build.k8s_version()
    assert v["clientVersion"]["gitVersion"] == build.k8s_version()
    st = cluster.status(embedded_cluster.name)
    nodes = json.loads(embedded_cluster.kubectl("get", "nodes", "-o", "json").stdout)["items"]
    assert st.api_ok and st.ready and len(st.nodes) == len(nodes) == 4, st  # the fixture's 4


# ------------------------------------------------------------------ up/down lifecycle


def test_up_twice_then_down_restores_kubeconfig_and_leaves_nothing(
    embedded_cluster: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second, short-lived cluster: up is idempotent, down cleans processes, ports and
    the kubeconfig (restoring the context that was current before)."""
    cfg_path = tmp_path / "config"
    original = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "prod", "cluster": {"server": "https://prod.example:6443"}}],
        "users": [{"name": "prod-admin", "user": {"token": "t"}}],
        "contexts": [{"name": "prod", "context": {"cluster": "prod", "user": "prod-admin"}}],
        "current-context": "prod",
    }
    cfg_path.write_text(yaml.safe_dump(original))
    monkeypatch.setenv("KUBECONFIG", str(cfg_path))
    name = f"life-{uuid.uuid4().hex[:5]}"
    msgs: list[str] = []
    try:
        first = cluster.up(nodes=1, name=name, progress=msgs.append)
        assert not first.already_running
        cfg = kubeconfig.load(cfg_path)
        assert kubeconfig.current_context(cfg) == f"kwok-{name}"
        assert kubeconfig.context_entry(cfg, "prod") is not None
        assert stat.S_IMODE(cfg_path.stat().st_mode) == 0o600
        assert (tmp_path / "config.kubelab-backup").exists()
        pids, ports = cluster.cluster_footprint(name)
        assert {"etcd", "kube-apiserver", "kwok-controller"} <= set(pids)
        assert ports

        second = cluster.up(nodes=1, name=name, progress=msgs.append)
        assert second.already_running
        assert any("already running" in m for m in msgs)
        assert cluster.status(name).ready
        # `up --nodes N` on a running cluster adds simulated nodes up to N, never removes any
        grown = cluster.up(nodes=3, name=name, progress=msgs.append)
        assert grown.already_running and len(grown.nodes) == 3
        assert len(cluster.up(nodes=2, name=name, progress=msgs.append).nodes) == 3
        assert cluster.status(name).ready
    finally:
        cluster.down(name=name, progress=msgs.append)
    for pid in pids.values():
        assert not cluster._alive(pid)
    for port in ports:  # (another cluster may reuse a freed port: only ours count)
        assert not cluster.port_held_by_cluster(port, name), f"port {port} still listening"
    assert not cluster.cluster_dir(name).exists()
    after = kubeconfig.load(cfg_path)
    assert kubeconfig.current_context(after) == "prod"
    assert after["contexts"] == original["contexts"]
    assert after["clusters"] == original["clusters"]
    assert after["users"] == original["users"]
    st = cluster.status(name)
    assert not st.api_ok and "kubelab cluster up" in st.message


# ------------------------------------------------------------------ kubeconfig safety (no cluster)


def test_kubeconfig_upsert_remove_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "kube" / "config"
    path.parent.mkdir()
    path.write_text("apiVersion: v1\nkind: Config\ncurrent-context: mine\n"
                    "contexts: [{name: mine, context: {cluster: c, user: u}}]\n"
                    "clusters: [{name: c, cluster: {server: 'https://x'}}]\n"
                    "users: [{name: u, user: {token: abc}}]\n"
                    "x-custom: keep-me\n")  # fmt: skip
    path.chmod(0o644)
    kubeconfig.upsert(
        {"name": "kwok-t", "cluster": {"server": "https://127.0.0.1:1"}},
        {"name": "kwok-t", "user": {"token": "z"}},
        {"name": "kwok-t", "context": {"cluster": "kwok-t", "user": "kwok-t"}},
        path=path,
    )
    cfg = kubeconfig.load(path)
    assert kubeconfig.current_context(cfg) == "kwok-t"
    assert kubeconfig.context_entry(cfg, "kwok-t")["server"] == "https://127.0.0.1:1"
    assert cfg["x-custom"] == "keep-me"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    backup = path.with_name("config.kubelab-backup")
    assert "kwok-t" not in backup.read_text() and stat.S_IMODE(backup.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []

    kubeconfig.remove("kwok-t", path=path)
    cfg = kubeconfig.load(path)
    assert kubeconfig.current_context(cfg) == "mine"
    assert [c["name"] for c in cfg["contexts"]] == ["mine"]
    assert [c["name"] for c in cfg["clusters"]] == ["c"]
    assert [u["name"] for u in cfg["users"]] == ["u"]
    assert "extensions" not in cfg.get("preferences", {})
    kubeconfig.remove("kwok-t", path=path)  # idempotent


def test_kubeconfig_path_and_bad_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    monkeypatch.setenv("KUBECONFIG", f"{a}{os.pathsep}{b}")
    assert kubeconfig.kubeconfig_path() == a
    assert kubeconfig.load()["contexts"] == []  # missing file = empty config
    a.write_text("clusters: [unclosed\n")
    with pytest.raises(kubeconfig.KubeconfigError, match="not valid YAML"):
        kubeconfig.load()


def test_controllers_run_without_leader_election(embedded_cluster: Any) -> None:
    """One controller manager and one scheduler, no rival: with leader election, a lease renewal
    that times out while the machine is loaded makes them exit, and nothing restarts them (seen
    in CI: every Deployment after that stood still)."""
    pids = cluster.cluster_dir(embedded_cluster.name) / "pids"
    for component in ("kube-controller-manager", "kube-scheduler"):
        pid = int((pids / f"{component}.pid").read_text())
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        assert b"--leader-elect=false" in args, (component, args)
