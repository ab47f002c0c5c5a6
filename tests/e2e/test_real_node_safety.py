"""The embedded cluster is safe to leave running: etcd wants client certificates from its own
CA, keys are 0600 and separate, only health paths answer anonymously, two clusters started at
once both come up, and `up` writes nothing into a kubeconfig it cannot write."""

from __future__ import annotations

import json
import os
import signal
import ssl
import stat
import subprocess
import sys
import threading
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from kubelab.embedded import cluster
from kubelab.errors import KubelabError

pytestmark = pytest.mark.e2e


def _options(name: str) -> dict[str, Any]:
    doc = json.loads((cluster.workdir() / f"kubelab-kwokctl-{name}.yaml").read_text())
    return doc["options"]


def _insecure() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _status(url: str, ctx: ssl.SSLContext | None = None, data: bytes | None = None) -> int | str:
    try:
        with urllib.request.urlopen(url, data=data, context=ctx, timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError) as exc:
        return type(getattr(exc, "reason", exc)).__name__


def test_etcd_takes_only_its_own_client_certificates(embedded_cluster: Any) -> None:
    port = _options(embedded_cluster.name)["etcdPort"]
    pki = cluster.cluster_dir(embedded_cluster.name) / "pki"
    body = b'{"key": "Lw==", "range_end": "MA=="}'  # every key under /
    url = f"127.0.0.1:{port}/v3/kv/range"
    # plain HTTP, TLS without a certificate, the cluster admin's certificate: all refused
    assert _status(f"http://{url}", data=body) != 200
    assert _status(f"https://{url}", _insecure(), body) != 200
    admin = _insecure()
    admin.load_cert_chain(pki / "admin.crt", pki / "admin.key")
    assert _status(f"https://{url}", admin, body) != 200
    # the API server's etcd client certificate works (so the test can tell refusal from failure)
    client = ssl.create_default_context(cafile=str(pki / "etcd-ca.crt"))
    client.load_cert_chain(pki / "apiserver-etcd-client.crt", pki / "apiserver-etcd-client.key")
    assert _status(f"https://{url}", client, body) == 200


def test_keys_are_private_and_separate(embedded_cluster: Any) -> None:
    pki = cluster.cluster_dir(embedded_cluster.name) / "pki"
    assert stat.S_IMODE(pki.stat().st_mode) == 0o700
    keys = sorted(pki.glob("*.key"))
    assert {k.name for k in keys} >= {"ca.key", "admin.key", "apiserver.key", "sa.key"}
    for key in keys:
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    contents = [k.read_bytes() for k in keys]
    assert len(set(contents)) == len(contents)
    # the API server serves its own certificate, not the admin's
    port = _options(embedded_cluster.name)["kubeApiserverPort"]
    pem = ssl.get_server_certificate(("127.0.0.1", port))
    assert pem.strip() == (pki / "apiserver.crt").read_text().strip()
    args = Path(f"/proc/{cluster._pids(embedded_cluster.name)['kube-apiserver']}/cmdline")
    cmdline = args.read_bytes().split(b"\0")
    assert f"--service-account-signing-key-file={pki / 'sa.key'}".encode() in cmdline
    assert not any(a.startswith(b"--etcd-servers=http://") for a in cmdline)


def test_only_health_answers_anonymously(embedded_cluster: Any) -> None:
    opts = _options(embedded_cluster.name)
    for key in ("kubeControllerManagerPort", "kubeSchedulerPort"):
        base = f"https://127.0.0.1:{opts[key]}"
        assert _status(f"{base}/healthz", _insecure()) == 200
        assert _status(f"{base}/metrics", _insecure()) == 403
    api = f"https://127.0.0.1:{opts['kubeApiserverPort']}"
    assert _status(f"{api}/readyz", _insecure()) == 200
    assert _status(f"{api}/api/v1/secrets", _insecure()) in (401, 403)
    # kwok's server authenticates no one (logs/exec of fake Pods, /metrics, /debug/pprof): off
    kwok = cluster.cluster_footprint(embedded_cluster.name)[0]["kwok-controller"]
    assert not cluster._listening_ports(cluster._socket_inodes(kwok))


def test_two_clusters_started_at_once_both_come_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "config"))
    names = [f"e2e-c{i}-{uuid.uuid4().hex[:4]}" for i in range(2)]
    results: dict[str, object] = {}

    def start(name: str) -> None:
        try:
            results[name] = cluster.up(nodes=1, name=name, progress=lambda _m: None)
        except (KubelabError, OSError) as exc:
            results[name] = exc

    try:
        threads = [threading.Thread(target=start, args=(n,)) for n in names]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        for name in names:
            assert isinstance(results.get(name), cluster.UpResult), results.get(name)
        ports = [set(_options(n).values()) - {"127.0.0.1"} for n in names]
        assert not ports[0] & ports[1]
        for name in names:
            assert cluster.status(name).ready
    finally:
        for name in names:
            cluster.down(name=name, progress=lambda _m: None)


def test_up_into_a_read_only_kubeconfig_starts_nothing(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        # root writes read-only files anyway; a folder that is not a folder stops it too
        config = tmp_path / "not-a-folder" / "config"
        (tmp_path / "not-a-folder").write_text("")
    else:
        config = tmp_path / "config"
        config.write_text("")
        config.chmod(0o444)
    name = f"e2e-ro-{uuid.uuid4().hex[:4]}"
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("kubelab")), "cluster", "up", "--name", name],
        env={**os.environ, "KUBECONFIG": str(config)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "nothing was started" in proc.stdout + proc.stderr
    assert not cluster.cluster_dir(name).exists()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupted_up_removes_what_it_started(tmp_path: Path, signum: int) -> None:
    """Ctrl-C (or a SIGTERM, as from `kill` or a CI runner) while the control plane is starting:
    `up` rolls back, no process or port stays."""
    import time

    name = f"e2e-int-{uuid.uuid4().hex[:4]}"
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("kubelab")), "cluster", "up", "--name", name],
        env={**os.environ, "KUBECONFIG": str(tmp_path / "config")},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        # interrupt once some component of the new cluster runs
        while time.monotonic() < deadline and not cluster.cluster_footprint(name)[0]:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            time.sleep(0.05)
        assert cluster.cluster_footprint(name)[0], "no component started in time"
        proc.send_signal(signum)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signum, out
    assert "Traceback" not in out
    assert "`up` interrupted; removing the half-started cluster" in out, out
    pids, ports = cluster.cluster_footprint(name)
    assert not pids and not ports
    assert not cluster.cluster_dir(name).exists()
    cfg = tmp_path / "config"
    assert not cfg.exists() or f"kwok-{name}" not in cfg.read_text()


def test_down_with_a_read_only_kubeconfig_stops_nothing_and_says_why(tmp_path: Path) -> None:
    """`down` removes the context last; when it cannot, it refuses before stopping anything
    (the cluster keeps running, its context stays usable) instead of half-finishing."""
    name = f"e2e-ro-{uuid.uuid4().hex[:4]}"
    folder = tmp_path / "kube"
    folder.mkdir()
    env = {**os.environ, "KUBECONFIG": str(folder / "config")}
    kubelab = str(Path(sys.executable).with_name("kubelab"))

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [kubelab, "cluster", *args, "--name", name],
            env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip

    try:
        assert cli("up", "--nodes", "1").returncode == 0
        before = (folder / "config").read_bytes()
        folder.chmod(0o555)
        refused = cli("down")
        folder.chmod(0o700)
        out = refused.stdout + refused.stderr
        assert refused.returncode != 0 and "Traceback" not in out
        assert "read-only" in out and "changed nothing" in out, out
        assert (folder / "config").read_bytes() == before
        assert cli("status").returncode == 0  # still running, still reachable by its context
    finally:
        folder.chmod(0o700)
        cli("down")
    procs, ports = cluster.cluster_footprint(name)
    assert not procs and not ports
    assert f"kwok-{name}" not in (folder / "config").read_text()
