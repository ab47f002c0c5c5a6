"""kubelab acts only on local training contexts; anything else is refused by name."""

from __future__ import annotations

import pytest
import yaml

from kubelab.errors import ContextRefusedError
from kubelab.kube.context import Context, flavour_of_context, guard


def kubeconfig(tmp_path, context: str, server: str) -> str:
    path = tmp_path / "config"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": context,
                "clusters": [{"name": "c", "cluster": {"server": server}}],
                "users": [{"name": "u", "user": {"token": "not-a-real-token"}}],
                "contexts": [{"name": context, "context": {"cluster": "c", "user": "u"}}],
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
    monkeypatch.setenv("KUBELAB_ALLOW_CONTEXTS", "other, prod-eks-admin")
    assert guard(ctx) == "unknown"


@pytest.mark.parametrize(
    "command", [["run", "probe-test-app"], ["check", "probe-test-app"], ["reset", "probe-test-app"]]
)
def test_cli_refuses_a_production_context_without_traceback(tmp_path, kubelab_cli, command):
    # The server address is never contacted: the guard refuses before any request.
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
