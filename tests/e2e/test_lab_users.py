"""The RBAC lab's user setup (labs/namespaces-and-rbac/make-user.py) against the embedded
cluster's real API server and CSR signer, run as a learner runs it: kubectl reads the learner's
~/.kube/config (no KUBECONFIG), the lab's files go to $KUBELAB_WORK.

Run twice it leaves one jane and one john (one CSR each, one file each with one user, cluster and
context) and the learner's kubeconfig byte for byte as it was; a user whose file stopped working
is replaced, not added to; bad input ends in one clear line."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from kubelab.lab.loader import load_lab

LAB = load_lab("namespaces-and-rbac").folder
SCRIPT = LAB / "make-user.py"
LABEL = "kubelab.dev/lab=namespaces-and-rbac"


@pytest.fixture
def learner(embedded_cluster, tmp_path):
    """A learner's machine: HOME with ~/.kube/config for the cluster and no KUBECONFIG; the teams
    applied; everything the lab made removed afterwards."""
    home = tmp_path / "home"
    (home / ".kube").mkdir(parents=True)
    config = home / ".kube" / "config"
    config.write_bytes(embedded_cluster.kubeconfig.read_bytes())
    config.chmod(0o600)
    env = {k: v for k, v in embedded_cluster.env.items() if k != "KUBECONFIG"}
    env |= {"HOME": str(home), "KUBELAB_WORK": str(tmp_path / "work")}
    embedded_cluster.kubectl("apply", "-f", str(LAB / "team1.yaml"), "-f", str(LAB / "team2.yaml"))
    try:
        yield config, env
    finally:
        embedded_cluster.kubectl("delete", "csr", "jane", "john", "--ignore-not-found")
        embedded_cluster.kubectl(
            "delete", "namespace", "team1", "team2", "--ignore-not-found", "--wait=false"
        )


def make_user(env: dict[str, str], *args: str, stdin: str | None = None):
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        cwd=LAB,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def as_user(cluster, env: dict[str, str], user: str, *args: str):
    work = Path(env["KUBELAB_WORK"])
    return subprocess.run(
        [str(cluster.bin_dir / "kubectl"), "--kubeconfig", str(work / f"{user}.kubeconfig"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def cluster_ca(kubeconfig: bytes) -> x509.Certificate:
    """The CA the learner's kubeconfig trusts (a file, as the embedded cluster writes it, or
    inline data)."""
    cluster = yaml.safe_load(kubeconfig)["clusters"][0]["cluster"]
    if "certificate-authority-data" in cluster:
        pem = base64.b64decode(cluster["certificate-authority-data"])
    else:
        pem = Path(cluster["certificate-authority"]).read_bytes()
    return x509.load_pem_x509_certificate(pem)


def csrs(cluster) -> dict[str, dict]:
    items = json.loads(cluster.kubectl("get", "csr", "-l", LABEL, "-o", "json").stdout)["items"]
    return {c["metadata"]["name"]: c for c in items}


def test_setup_twice_leaves_one_jane_one_john_and_the_learners_kubeconfig_unchanged(
    embedded_cluster, learner
):
    config, env = learner
    before, before_stat = config.read_bytes(), config.stat()
    kube_dir_before = sorted(p.name for p in config.parent.iterdir())
    work = Path(env["KUBELAB_WORK"])

    teams = (("jane", "team1"), ("john", "team2"))
    first = {user: make_user(env, user, "--namespace", ns) for user, ns in teams}
    for user, proc in first.items():
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert f"kubectl certificate approve {user}" in proc.stdout
    issued = csrs(embedded_cluster)
    assert sorted(issued) == ["jane", "john"]

    second = [make_user(env, user, "--namespace", ns) for user, ns in teams]
    for proc in second:
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "already works" in proc.stdout
        assert "certificate approve" not in proc.stdout
    again = csrs(embedded_cluster)
    assert sorted(again) == ["jane", "john"]
    # the same objects: a second run neither replaced nor added a CSR
    assert {n: c["metadata"]["uid"] for n, c in again.items()} == {
        n: c["metadata"]["uid"] for n, c in issued.items()
    }

    # the learner's kubeconfig: byte for byte, not even rewritten; nothing added beside it
    # (kubectl's own discovery cache aside)
    assert config.read_bytes() == before
    assert config.stat().st_mtime_ns == before_stat.st_mtime_ns
    assert config.stat().st_ino == before_stat.st_ino
    kube_dir_after = sorted(p.name for p in config.parent.iterdir() if p.name != "cache")
    assert kube_dir_after == [n for n in kube_dir_before if n != "cache"]

    ca = cluster_ca(before)
    for user, namespace in teams:
        kubeconfig = work / f"{user}.kubeconfig"
        data = yaml.safe_load(kubeconfig.read_text())
        assert [u["name"] for u in data["users"]] == [user]
        assert len(data["clusters"]) == 1 and len(data["contexts"]) == 1
        assert data["contexts"][0]["context"]["namespace"] == namespace
        for name in (f"{user}.kubeconfig", f"{user}.key", f"{user}.crt"):
            assert stat.S_IMODE((work / name).stat().st_mode) == 0o600, name
        # the certificate is the cluster CA's, for CN=user, and matches the key in the file
        cert = x509.load_pem_x509_certificate((work / f"{user}.crt").read_bytes())
        assert cert.subject.rfc4514_string() == f"CN={user}"
        cert.verify_directly_issued_by(ca)
        assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
        who = as_user(embedded_cluster, env, user, "auth", "whoami", "-o", "json")
        assert who.returncode == 0, who.stderr
        assert json.loads(who.stdout)["status"]["userInfo"]["username"] == user

    everywhere = as_user(embedded_cluster, env, "jane", "get", "pods", "-A")
    assert everywhere.returncode != 0 and "forbidden" in everywhere.stderr
    assert as_user(embedded_cluster, env, "jane", "get", "pods").returncode == 0
    team1 = as_user(embedded_cluster, env, "john", "get", "pods", "-n", "team1")
    assert team1.returncode != 0 and 'User "john" cannot list' in team1.stderr


def test_a_users_file_that_stopped_working_is_replaced_not_added_to(embedded_cluster, learner):
    config, env = learner
    before = config.read_bytes()
    assert make_user(env, "jane", "--namespace", "team1").returncode == 0
    old_uid = csrs(embedded_cluster)["jane"]["metadata"]["uid"]
    kubeconfig = Path(env["KUBELAB_WORK"]) / "jane.kubeconfig"
    # as if the cluster had been made anew on another address: the file no longer works
    server = yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
    kubeconfig.write_text(kubeconfig.read_text().replace(server, "https://127.0.0.1:9"))

    proc = make_user(env, "jane", "--namespace", "team1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "jane.key exists: reusing it" in proc.stdout
    now = csrs(embedded_cluster)
    assert list(now) == ["jane"] and now["jane"]["metadata"]["uid"] != old_uid
    data = yaml.safe_load(kubeconfig.read_text())
    assert data["clusters"][0]["cluster"]["server"] == server
    assert len(data["users"]) == 1
    assert as_user(embedded_cluster, env, "jane", "auth", "whoami").returncode == 0
    assert config.read_bytes() == before


def test_bad_input_ends_in_one_clear_line(embedded_cluster, learner):
    _, env = learner
    no_token = make_user(env, "reporter", "--token-stdin", stdin="not a token\n")
    assert no_token.returncode == 1
    assert "stdin holds no token" in no_token.stderr and "kubectl create token" in no_token.stderr
    bad_name = make_user(env, "Jane Doe")
    assert bad_name.returncode == 2 and "is not a valid name" in bad_name.stderr
    # kubectl only on PATH: openssl is missing
    no_openssl = make_user({**env, "PATH": str(embedded_cluster.bin_dir)}, "jane")
    assert no_openssl.returncode == 1
    assert "openssl is not on PATH" in no_openssl.stderr
    for proc in (no_token, bad_name, no_openssl):
        assert "Traceback" not in proc.stderr
    assert not csrs(embedded_cluster)
    assert os.listdir(env["KUBELAB_WORK"]) == []
    # a damaged key (an editor, a bad copy): the message says what to do
    key = Path(env["KUBELAB_WORK"]) / "jane.key"
    key.write_text("not a key\n")
    damaged = make_user(env, "jane")
    assert damaged.returncode == 1 and "Traceback" not in damaged.stderr
    assert f"if {key} is damaged, delete it" in damaged.stderr
    key.unlink()
    assert make_user(env, "jane").returncode == 0
    assert [p.name for p in Path(env["KUBELAB_WORK"]).iterdir() if p.name.startswith(".")] == []
