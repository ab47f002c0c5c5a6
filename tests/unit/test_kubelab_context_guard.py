"""kubelab acts only on local training contexts, judged by name AND server, before any I/O."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from kubelab.errors import ContextRefusedError
from kubelab.flavours.network import HostNetworks
from kubelab.kube.context import Context
from kubelab.kube.guard import choose, flavour_of_context, guard, same_server


def kubeconfig(tmp_path, context: str, server: str, others: dict[str, str] | None = None) -> str:
    """A kubeconfig whose current context is `context`; `others` adds contexts (name -> server)."""
    servers = {context: server, **(others or {})}
    path = tmp_path / "config"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": context,
                "clusters": [
                    {"name": f"c-{name}", "cluster": {"server": url}}
                    for name, url in servers.items()
                ],
                "users": [{"name": "u", "user": {"token": "not-a-real-token"}}],
                "contexts": [
                    {"name": name, "context": {"cluster": f"c-{name}", "user": "u"}}
                    for name in servers
                ],
            }
        )
    )
    return str(path)


@pytest.mark.parametrize(
    ("name", "flavour"),
    [
        ("docker-desktop", "docker-desktop"),
        ("kind-kind", "kind"),
        ("k3d-lab", "k3d"),
        ("minikube", "minikube"),
        ("rancher-desktop", "rancher-desktop"),
        ("orbstack", "orbstack"),
        ("kwok-kubelab", "embedded"),
        ("prod-eks-admin", None),
        ("arn:aws:eks:eu-west-1:1:cluster/kind-x", None),
        ("my-kind-cluster", None),
    ],
)
def test_training_contexts_are_recognised_by_name(name, flavour):
    assert flavour_of_context(name) == flavour


def test_other_contexts_are_refused_unless_allowed_by_exact_name(monkeypatch):
    monkeypatch.delenv("KUBELAB_ALLOW_CONTEXTS", raising=False)
    ctx = Context("prod-eks-admin", "c", "https://example.eks.amazonaws.com", "u", None)
    with pytest.raises(ContextRefusedError) as info:
        guard(ctx)
    assert "prod-eks-admin" in str(info.value)
    assert "--allow-context prod-eks-admin" in str(info.value)
    assert guard(ctx, ["prod-eks-admin"]) == "unknown"
    with pytest.raises(ContextRefusedError):
        guard(ctx, ["prod-eks"])
    with pytest.raises(ContextRefusedError):
        guard(ctx, ["prod-*"])  # no wildcards, on purpose
    monkeypatch.setenv("KUBELAB_ALLOW_CONTEXTS", "other, prod-eks-admin")
    assert guard(ctx) == "unknown"
    monkeypatch.setenv("KUBELAB_ALLOW_CONTEXTS", "*")
    with pytest.raises(ContextRefusedError):
        guard(ctx)


@pytest.mark.parametrize(
    "command", [["run", "probe-test-app"], ["check", "probe-test-app"], ["reset", "probe-test-app"]]
)
def test_cli_refuses_a_production_context_without_traceback(tmp_path, kubelab_cli, command):
    # The server address is never contacted: the guard refuses before any request (proved for
    # a training name below, with an audit hook).
    config = kubeconfig(tmp_path, "prod-eks-admin", "https://203.0.113.10:443")
    proc = kubelab_cli(*command, env={"KUBECONFIG": config, "KUBELAB_ALLOW_CONTEXTS": ""})
    assert proc.returncode != 0
    assert "refusing to act on context 'prod-eks-admin'" in proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr


def test_allowed_but_unreachable_cluster_is_a_clear_error(tmp_path, kubelab_cli):
    # 127.0.0.1:9 (discard) refuses connections on loopback: nothing listens there.
    config = kubeconfig(tmp_path, "scratch", "https://127.0.0.1:9")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    proc = kubelab_cli(
        "check",
        "probe-test-app",
        "--allow-context",
        "scratch",
        env={"KUBECONFIG": config, "TMPDIR": str(scratch)},
    )
    assert proc.returncode == 2
    assert "does not answer" in proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    # the private copy of the credentials made for the run is gone, failure or not
    assert list(scratch.glob("kubelab-*.kubeconfig")) == []


def test_missing_kubeconfig_is_a_clear_error(tmp_path, kubelab_cli):
    proc = kubelab_cli("check", "probe-test-app", env={"KUBECONFIG": str(tmp_path / "none")})
    assert proc.returncode == 2
    assert "no kubeconfig found" in proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr


def test_cached_tools_come_first_only_for_the_embedded_cluster(tmp_path, monkeypatch):
    from kubelab.embedded.build import k8s_version
    from kubelab.session import tool_path

    cached = tmp_path / "bin" / k8s_version()
    cached.mkdir(parents=True)
    monkeypatch.setenv("KUBELAB_CACHE", str(tmp_path))
    monkeypatch.setenv("PATH", "/usr/bin")
    assert tool_path("kwok-kubelab") == f"{cached}:/usr/bin"  # kubectl matching its server
    assert tool_path("kind-kind") == f"/usr/bin:{cached}"  # the learner's own tools first
    assert tool_path(None) == f"/usr/bin:{cached}"


# --- the server rule ----------------------------------------------------------------------------

NO_NETWORKS = HostNetworks()


def ctx(name: str, server: str, cluster: str = "c") -> Context:
    return Context(name, cluster, server, "u", None)


@pytest.mark.parametrize(
    "server",
    [
        "https://10.20.30.40:6443",
        "https://k8s.example.com",
        "https://k8s.example.com:443/",
        "https://203.0.113.10",
        "https://[2001:db8::1]:6443",
        "https://127.0.0.1.nip.io:6443",  # a DNS name that resolves to loopback is still a name
        "",
        "not a url",
    ],
)
def test_a_training_name_with_a_remote_server_is_refused_naming_both(monkeypatch, server):
    monkeypatch.delenv("KUBELAB_ALLOW_CONTEXTS", raising=False)
    with pytest.raises(ContextRefusedError) as info:
        guard(ctx("kind-prod", server), networks=NO_NETWORKS)
    message = str(info.value)
    assert "'kind-prod'" in message
    assert (server or "?") in message
    assert "not on this machine" in message
    assert "--allow-context kind-prod" in message


@pytest.mark.parametrize(
    ("name", "server", "flavour"),
    [
        ("kind-lab", "https://127.0.0.1:41234", "kind"),
        ("kind-lab", "https://[::1]:41234", "kind"),
        ("k3d-lab", "https://0.0.0.0:6550", "k3d"),
        ("docker-desktop", "https://kubernetes.docker.internal:6443", "docker-desktop"),
        ("orbstack", "https://127.0.0.1:26443", "orbstack"),
        ("rancher-desktop", "https://127.0.0.1:6443", "rancher-desktop"),
        ("minikube", "https://127.0.0.1:32771", "minikube"),
        ("kwok-kubelab", "https://127.0.0.1:32766", "embedded"),
    ],
)
def test_the_default_servers_of_each_tool_are_accepted(name, server, flavour):
    assert guard(ctx(name, server), networks=NO_NETWORKS) == flavour


def test_an_attached_container_network_is_local_but_only_for_container_flavours(monkeypatch):
    monkeypatch.delenv("KUBELAB_ALLOW_CONTEXTS", raising=False)
    import ipaddress

    nets = HostNetworks(virtual=(ipaddress.IPv4Network("192.168.49.0/24"),))
    assert guard(ctx("minikube", "https://192.168.49.2:8443"), networks=nets) == "minikube"
    with pytest.raises(ContextRefusedError):
        guard(ctx("minikube", "https://192.168.50.2:8443"), networks=nets)
    with pytest.raises(ContextRefusedError):  # the embedded cluster is on loopback, always
        guard(ctx("kwok-x", "https://192.168.49.2:8443"), networks=nets)


def test_an_explicitly_allowed_training_name_skips_the_server_rule(monkeypatch):
    monkeypatch.delenv("KUBELAB_ALLOW_CONTEXTS", raising=False)
    remote = ctx("kind-prod", "https://10.20.30.40:6443")
    assert guard(remote, ["kind-prod"], networks=NO_NETWORKS) == "kind"
    with pytest.raises(ContextRefusedError):
        guard(remote, ["kind-*"], networks=NO_NETWORKS)
    monkeypatch.setenv("KUBELAB_ALLOW_CONTEXTS", "kind-prod")
    assert guard(remote, networks=NO_NETWORKS) == "kind"


def test_same_server():
    assert same_server("https://127.0.0.1:6443", "https://127.0.0.1:6443/")
    assert same_server("https://K8S.local", "https://k8s.local:443")
    assert not same_server("https://127.0.0.1:6443", "https://127.0.0.1:6444")
    assert not same_server("https://127.0.0.1:6443", "http://127.0.0.1:6443")
    assert not same_server("", "")


# --- a lab user's context observes as its training cluster --------------------------------------


def test_a_lab_user_of_a_training_cluster_checks_as_that_cluster(monkeypatch):
    monkeypatch.delenv("KUBELAB_ALLOW_CONTEXTS", raising=False)
    kind = ctx("kind-x", "https://127.0.0.1:41000", cluster="kind-x")
    other = ctx("kind-y", "https://127.0.0.1:42000", cluster="kind-y")
    jane = ctx("jane", "https://127.0.0.1:41000/", cluster="jane-copy")
    choice = choose(jane, [other, kind, jane], networks=NO_NETWORKS)
    assert choice.context == kind
    assert choice.flavour == "kind"
    assert choice.current == jane
    assert choice.note == (
        "current context jane is a user of training cluster kind-x; checking as kind-x"
    )
    # the training context itself: no note
    assert choose(kind, [kind, jane], networks=NO_NETWORKS).note is None


def test_a_lab_user_prefers_the_training_context_sharing_its_cluster_entry():
    a = ctx("kind-a", "https://127.0.0.1:41000", cluster="shared")
    b = ctx("kind-b", "https://127.0.0.1:41000", cluster="kind-b")
    jane = ctx("jane@kind-b", "https://127.0.0.1:41000", cluster="kind-b")
    assert choose(jane, [a, b, jane], networks=NO_NETWORKS).context == b


def test_a_user_context_is_refused_when_no_training_context_shares_its_server(monkeypatch):
    monkeypatch.delenv("KUBELAB_ALLOW_CONTEXTS", raising=False)
    kind = ctx("kind-x", "https://127.0.0.1:41000")
    jane = ctx("jane", "https://127.0.0.1:49999")
    with pytest.raises(ContextRefusedError, match="'jane'"):
        choose(jane, [kind, jane], networks=NO_NETWORKS)


def test_a_user_of_a_remote_training_named_cluster_is_refused(monkeypatch):
    monkeypatch.delenv("KUBELAB_ALLOW_CONTEXTS", raising=False)
    prod = ctx("kind-prod", "https://10.20.30.40:6443")
    admin = ctx("admin@prod", "https://10.20.30.40:6443")
    with pytest.raises(ContextRefusedError, match=r"kind-prod.*10\.20\.30\.40"):
        choose(admin, [prod, admin], networks=NO_NETWORKS)


# --- proof that a refused context is never contacted -------------------------------------------

# Installed into the kubelab process through sitecustomize: every socket connect, DNS look-up and
# program start is written to a log; a connect to anything but loopback is blocked, so even a
# broken guard could not send a packet to the "remote" address.
AUDIT_HOOK = textwrap.dedent(
    """
    import json, os, sys

    LOG = os.environ["KUBELAB_AUDIT_LOG"]

    def _hook(event, args):
        if event not in ("socket.connect", "socket.getaddrinfo", "subprocess.Popen"):
            return
        with open(LOG, "a") as fh:
            fh.write(json.dumps([event, repr(args)[:300]]) + "\\n")
        if event == "socket.connect":
            address = args[1]
            host = address[0] if isinstance(address, tuple) else ""
            if not (host.startswith("127.") or host == "::1"):
                raise PermissionError(f"test audit hook: blocked a connect to {address!r}")

    sys.addaudithook(_hook)
    """
)


def _audited_kubelab(tmp_path: Path, config: str, *args: str) -> tuple[subprocess.Popen, Path]:
    hook_dir = tmp_path / "audit"
    hook_dir.mkdir(exist_ok=True)
    (hook_dir / "sitecustomize.py").write_text(AUDIT_HOOK)
    log = tmp_path / f"audit-{len(list(tmp_path.glob('audit-*')))}.log"
    log.touch()
    env = {
        **__import__("os").environ,
        "KUBECONFIG": config,
        "KUBELAB_ALLOW_CONTEXTS": "",
        "PYTHONPATH": str(hook_dir),
        "KUBELAB_AUDIT_LOG": str(log),
    }
    kubelab = Path(sys.executable).with_name("kubelab")
    proc = subprocess.Popen(
        [str(kubelab), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return proc, log


def _events(log: Path) -> list[str]:
    return [json.loads(line)[0] for line in log.read_text().splitlines()]


def test_kind_prod_with_a_remote_server_is_refused_without_any_connection(tmp_path):
    config = kubeconfig(tmp_path, "kind-prod", "https://10.20.30.40:6443")
    proc, log = _audited_kubelab(tmp_path, config, "run", "probe-test-app")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, out + err
    assert "refusing to act on context 'kind-prod'" in err
    assert "https://10.20.30.40:6443" in err
    assert "Traceback" not in out + err
    # not one connect, DNS look-up or program (kubectl) start happened
    assert _events(log) == []


def test_the_audit_hook_does_see_the_connection_an_accepted_context_makes(tmp_path):
    """The control for the test above: same harness, a training context whose server is a
    loopback socket we listen on. The hook logs the connect and the socket accepts it."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    config = kubeconfig(tmp_path, "kind-local", f"https://127.0.0.1:{port}")
    proc, log = _audited_kubelab(tmp_path, config, "check", "probe-test-app")
    try:
        with listener:
            listener.settimeout(60)
            conn, _ = listener.accept()  # the client did connect: the guard let it through
            conn.close()
        # the port is closed now: the client's retries are refused and it reports the cluster
        # as not answering
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 2, out + err
    assert "socket.connect" in _events(log)
    assert "Traceback" not in out + err


def test_a_remote_proxy_url_is_refused_like_a_remote_server(monkeypatch):
    from kubelab.kube.guard import guard_proxy

    monkeypatch.delenv("KUBELAB_ALLOW_CONTEXTS", raising=False)
    kind = ctx("kind-x", "https://127.0.0.1:41000")
    guard_proxy(kind, None, networks=NO_NETWORKS)
    guard_proxy(kind, "http://127.0.0.1:3128", networks=NO_NETWORKS)
    with pytest.raises(ContextRefusedError, match=r"proxy socks5://bastion\.example\.com:1080"):
        guard_proxy(kind, "socks5://bastion.example.com:1080", networks=NO_NETWORKS)
    guard_proxy(kind, "socks5://bastion.example.com:1080", ["kind-x"], networks=NO_NETWORKS)


def test_cli_refuses_a_training_context_behind_a_remote_proxy(tmp_path, kubelab_cli):
    path = Path(kubeconfig(tmp_path, "kind-x", "https://127.0.0.1:41000"))
    config = yaml.safe_load(path.read_text())
    config["clusters"][0]["cluster"]["proxy-url"] = "http://203.0.113.7:3128"
    path.write_text(yaml.safe_dump(config))
    env = {"KUBECONFIG": str(path), "KUBELAB_ALLOW_CONTEXTS": ""}
    proc = kubelab_cli("check", "probe-test-app", env=env)
    assert proc.returncode == 2
    assert "go through the proxy http://203.0.113.7:3128" in " ".join(proc.stderr.split())
    assert "Traceback" not in proc.stdout + proc.stderr


def test_lab_commands_reach_the_course_programs_beside_kubelab(monkeypatch, tmp_path):
    """apps/* console scripts (probeapp-operator) live in kubelab's venv; a lab's commands find
    them without the venv being activated, after everything on the learner's PATH."""
    import sys

    from kubelab.session import with_course_programs

    venv_bin = tmp_path / "venv" / "bin"
    monkeypatch.setattr(sys, "executable", str(venv_bin / "python"))
    assert with_course_programs("/usr/bin:/bin") == f"/usr/bin:/bin:{venv_bin}"
    assert with_course_programs(f"{venv_bin}:/usr/bin") == f"{venv_bin}:/usr/bin"  # activated
