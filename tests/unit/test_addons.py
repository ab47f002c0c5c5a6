"""The add-ons home: registry, pinned charts, values per flavour, helm command lines, status and
the addon:NAME requirement — against a fake cluster (the e2e test uses real helm and a real API
server)."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from kubelab import addons
from kubelab.addons import manage
from kubelab.addons.base import (
    AddOn,
    APIServiceAvailable,
    Chart,
    CRDEstablished,
    DeploymentAvailable,
    merge,
)
from kubelab.errors import KubelabError
from kubelab.flavours import FLAVOURS
from kubelab.kube.client import UnknownKind
from kubelab.requirements import ADDONS, REQUIREMENT_PATTERN, Capabilities, is_requirement


class FakeKube:
    """Objects by (kind, namespace, name); list() filters by the label selector's equalities."""

    def __init__(self, objects: list[dict] | None = None, unknown: set[str] | None = None):
        self.objects = objects or []
        self.unknown = unknown or set()

    def _of(self, kind: str, namespace: str | None) -> list[dict]:
        if kind in self.unknown:
            raise UnknownKind(kind)
        return [
            o
            for o in self.objects
            if o["kind"] == kind and o["metadata"].get("namespace") == namespace
        ]

    def get(self, api_version, kind, name, namespace):
        return next((o for o in self._of(kind, namespace) if o["metadata"]["name"] == name), None)

    def list(self, api_version, kind, namespace, selector=None):
        wanted = dict(pair.split("=") for pair in (selector or "").split(",") if pair)
        return [
            o
            for o in self._of(kind, namespace)
            if all((o["metadata"].get("labels") or {}).get(k) == v for k, v in wanted.items())
        ]


def deployment(ns: str, name: str, available: int, replicas: int = 1, stale: bool = False):
    return {
        "kind": "Deployment",
        "metadata": {"namespace": ns, "name": name, "generation": 2},
        "spec": {"replicas": replicas},
        "status": {
            "availableReplicas": available,
            "updatedReplicas": available,
            "observedGeneration": 1 if stale else 2,
        },
    }


def apiservice(name: str, available: bool, reason: str = "FailedDiscoveryCheck"):
    cond = {"type": "Available", "status": "True" if available else "False", "reason": reason}
    return {"kind": "APIService", "metadata": {"name": name}, "status": {"conditions": [cond]}}


def release_secret(ns: str, release: str, revision: int, status: str = "deployed"):
    labels = {"owner": "helm", "name": release, "status": status, "version": str(revision)}
    return {"kind": "Secret", "metadata": {"namespace": ns, "name": "x", "labels": labels}}


METRICS = addons.get("metrics-server")
MS_READY = [
    deployment("kube-system", "metrics-server", 1),
    apiservice("v1beta1.metrics.k8s.io", True),
]


# --- the registry and the pins ----------------------------------------------------------------


def test_registry_lists_metrics_server_and_names_the_known_ones_on_a_typo():
    assert "metrics-server" in addons.names()
    assert addons.names() == ADDONS
    with pytest.raises(KubelabError) as info:
        addons.get("metric-server")
    assert "metrics-server" in (info.value.hint or "")


def test_every_addon_is_pinned_and_complete():
    for addon in addons.ADDONS.values():
        assert re.fullmatch(r"\d+\.\d+\.\d+", addon.chart.version), addon.name
        assert re.fullmatch(r"\d+\.\d+\.\d+", addon.app_version), addon.name
        assert addon.chart.repo is None or addon.chart.repo.startswith("https://"), addon.name
        assert addon.ready, f"{addon.name} has no ready checks"
        assert set(addon.flavour_values) <= set(FLAVOURS), addon.name
        assert set(addon.provided_by) <= set(FLAVOURS), addon.name
        assert all(is_requirement(n) for n in addon.needs), addon.name
        assert addon.namespace and addon.release and addon.summary


def test_metrics_server_pins_a_release_supporting_kubernetes_1_36():
    # chart 3.13.1 ships metrics-server 0.8.1; 0.8.x supports Kubernetes 1.31+
    assert (METRICS.chart.name, METRICS.chart.version) == ("metrics-server", "3.13.1")
    assert METRICS.chart.repo == "https://kubernetes-sigs.github.io/metrics-server/"
    assert METRICS.app_version == "0.8.1"
    assert (METRICS.namespace, METRICS.release) == ("kube-system", "metrics-server")
    assert METRICS.needs == ("containers",)


@pytest.mark.parametrize(
    ("flavour", "insecure"),
    [
        ("kind", True),
        ("docker-desktop", True),
        ("minikube", True),
        ("orbstack", True),
        ("k3d", False),
        ("unknown", False),
    ],
)
def test_metrics_server_values_per_flavour(flavour, insecure):
    args = METRICS.values_for(flavour).get("args", [])
    assert ("--kubelet-insecure-tls" in args) is insecure


def test_k3s_based_clusters_and_the_embedded_one_run_metrics_server_themselves():
    assert {"k3d", "rancher-desktop", "embedded"} <= set(METRICS.provided_by)


def test_values_merge_like_helm():
    base = {"a": {"b": 1, "c": [1]}, "d": 1}
    assert merge(base, {"a": {"c": [2]}, "e": 3}) == {"a": {"b": 1, "c": [2]}, "d": 1, "e": 3}
    assert base == {"a": {"b": 1, "c": [1]}, "d": 1}  # not changed in place


# --- command lines ----------------------------------------------------------------------------


def test_install_command_is_an_idempotent_upgrade_from_the_pinned_repo(tmp_path):
    values = tmp_path / "v.json"
    assert manage.install_command(METRICS, values, "helm") == [
        "helm",
        "upgrade",
        "--install",
        "metrics-server",
        "metrics-server",
        "--repo",
        "https://kubernetes-sigs.github.io/metrics-server/",
        "--version",
        "3.13.1",
        "--namespace",
        "kube-system",
        "--create-namespace",
        "--reset-values",
        "--values",
        str(values),
    ]


def test_install_command_for_a_local_chart_has_no_repo(tmp_path):
    local = AddOn(
        "t", "test", Chart(str(tmp_path / "chart"), "0.1.0"), "0.1.0", "ns", "rel", ready=()
    )
    cmd = manage.install_command(local, tmp_path / "v.json", "helm")
    assert cmd[:5] == ["helm", "upgrade", "--install", "rel", str(tmp_path / "chart")]
    assert "--repo" not in cmd


def test_uninstall_command():
    assert manage.uninstall_command(METRICS, "helm") == [
        "helm",
        "uninstall",
        "metrics-server",
        "--namespace",
        "kube-system",
        "--wait",
    ]


# --- checks and status ------------------------------------------------------------------------


def test_deployment_check_wants_every_replica_available_for_the_current_spec():
    check = DeploymentAvailable("ns", "d")
    assert check.evaluate(FakeKube([deployment("ns", "d", 2, replicas=2)]))[0]
    assert not check.evaluate(FakeKube([deployment("ns", "d", 1, replicas=2)]))[0]
    assert not check.evaluate(FakeKube([deployment("ns", "d", 2, replicas=2, stale=True)]))[0]
    ok, what = check.evaluate(FakeKube())
    assert not ok and "does not exist" in what


def test_apiservice_and_crd_checks_tolerate_an_api_the_cluster_does_not_serve():
    kube = FakeKube(unknown={"APIService", "CustomResourceDefinition"})
    assert APIServiceAvailable("v1beta1.metrics.k8s.io").evaluate(kube)[0] is False
    assert CRDEstablished("x.example.com").evaluate(kube)[0] is False
    ok, what = APIServiceAvailable("v1beta1.metrics.k8s.io").evaluate(
        FakeKube([apiservice("v1beta1.metrics.k8s.io", False)])
    )
    assert not ok and "FailedDiscoveryCheck" in what


KIND = FLAVOURS["kind"]


@pytest.mark.parametrize(
    ("objects", "flavour", "source", "ready"),
    [
        ([], "kind", None, False),
        ([release_secret("kube-system", "metrics-server", 1)], "kind", "kubelab", False),
        ([release_secret("kube-system", "metrics-server", 1), *MS_READY], "kind", "kubelab", True),
        ([release_secret("kube-system", "metrics-server", 1, "failed")], "kind", "kubelab", False),
        (
            [release_secret("kube-system", "metrics-server", 1, "pending-install"), *MS_READY],
            "kind",
            "kubelab",
            False,
        ),
        (  # a failed upgrade leaves the deployed revision running
            [
                release_secret("kube-system", "metrics-server", 1),
                release_secret("kube-system", "metrics-server", 2, "failed"),
                *MS_READY,
            ],
            "kind",
            "kubelab",
            True,
        ),
        (MS_READY, "kind", "other", True),  # e.g. `minikube addons enable metrics-server`
        (MS_READY, "k3d", "cluster", True),
        ([apiservice("v1beta1.metrics.k8s.io", False)], "k3d", "cluster", False),
        ([], "k3d", "cluster", False),
    ],
)
def test_status(objects, flavour, source, ready):
    st = manage.status(METRICS, FakeKube(objects), FLAVOURS[flavour])
    assert (st.source, st.ready) == (source, ready)
    assert st.describe()


def test_status_names_the_helm_revision():
    objects = [
        release_secret("kube-system", "metrics-server", 1, "superseded"),
        release_secret("kube-system", "metrics-server", 3),
        *MS_READY,
    ]
    st = manage.status(METRICS, FakeKube(objects), KIND)
    assert st.revision == 3
    assert st.describe().startswith("installed (helm revision 3), ready")


# --- the addon:NAME requirement ---------------------------------------------------------------


def caps(objects, flavour="kind") -> Capabilities:
    return Capabilities(FakeKube(objects), FLAVOURS[flavour], 1, "")  # type: ignore[arg-type]


def test_requirement_vocabulary_knows_exactly_the_registered_addons():
    assert re.match(REQUIREMENT_PATTERN, "addon:metrics-server")
    assert not re.match(REQUIREMENT_PATTERN, "addon:nope")
    assert is_requirement("nodes>=3") and is_requirement("containers")
    assert is_requirement("network-policy")
    assert not is_requirement("nodes>=0")


def test_addon_requirement_is_met_only_when_installed_and_ready():
    ok, reason = caps([]).check("addon:metrics-server")
    assert not ok and "kubelab addons install metrics-server" in reason
    installed = [release_secret("kube-system", "metrics-server", 1)]
    ok, reason = caps(installed).check("addon:metrics-server")
    assert not ok and "not ready" in reason
    assert caps([*installed, *MS_READY]).check("addon:metrics-server") == (True, "")
    assert caps(MS_READY, "k3d").check("addon:metrics-server")[0]  # provided by k3s
    assert not caps([], "k3d").check("addon:metrics-server")[0]  # …unless it is not served
    assert not caps([]).check("addon:nope")[0]


def test_metrics_api_requirement_asks_the_apiservice():
    assert caps(MS_READY).check("metrics-api")[0]
    assert not caps([apiservice("v1beta1.metrics.k8s.io", False)]).check("metrics-api")[0]


# --- install decisions, without a cluster -----------------------------------------------------


@dataclass
class FakeSession:
    kube: FakeKube
    flavour_name: str
    env: dict[str, str] = field(default_factory=lambda: {"PATH": ""})
    kubeconfig: Path = Path("/nonexistent")
    containers: bool | None = None  # as a live node would change it

    @property
    def flavour(self):
        flavour = FLAVOURS[self.flavour_name]
        return flavour if self.containers is None else flavour.replace(containers=self.containers)

    @property
    def capabilities(self):
        return Capabilities(self.kube, self.flavour, 1, "")  # type: ignore[arg-type]

    @property
    def context(self):
        from kubelab.kube.context import Context

        return Context("kind-x", "c", "https://127.0.0.1:1", "u", None)


def _no_helm(*_args, **_kwargs):
    raise AssertionError("helm must not run here")


def test_install_refuses_a_cluster_that_runs_no_containers_before_running_helm(monkeypatch):
    monkeypatch.setattr(manage.subprocess, "run", _no_helm)
    with pytest.raises(KubelabError) as info:
        manage.install(["metrics-server"], FakeSession(FakeKube(), "embedded"), print)  # type: ignore[arg-type]
    assert "cannot install metrics-server" in info.value.message
    assert "runs no containers" in info.value.message


def test_install_leaves_metrics_server_to_an_embedded_cluster_with_a_real_node(monkeypatch):
    monkeypatch.setattr(manage.subprocess, "run", _no_helm)
    said: list[str] = []
    session = FakeSession(FakeKube(MS_READY), "embedded", containers=True)
    [st] = manage.install(["metrics-server"], session, said.append)  # type: ignore[arg-type]
    assert (st.source, st.ready) == ("cluster", True)
    assert "provides it itself" in said[-1]


@pytest.mark.parametrize("flavour", ["k3d", "kind"])
def test_install_leaves_an_addon_the_cluster_already_serves(monkeypatch, flavour):
    monkeypatch.setattr(manage.subprocess, "run", _no_helm)
    said: list[str] = []
    [st] = manage.install(["metrics-server"], FakeSession(FakeKube(MS_READY), flavour), said.append)  # type: ignore[arg-type]
    assert st.ready and st.source in ("cluster", "other")
    assert "provides it itself" in said[-1] or "nothing to install" in said[-1]


def test_install_without_helm_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(manage.subprocess, "run", _no_helm)
    with pytest.raises(KubelabError, match="helm is not on PATH"):
        manage.install(["metrics-server"], FakeSession(FakeKube(), "kind"), print)  # type: ignore[arg-type]


def test_install_runs_helm_with_the_flavours_values_and_removes_the_values_file(
    monkeypatch, tmp_path
):
    helm = tmp_path / "helm"
    helm.write_text("#!/bin/sh\n")
    helm.chmod(0o755)
    seen: dict = {}

    def fake_run(cmd, **kwargs):
        values = Path(cmd[cmd.index("--values") + 1])
        seen["cmd"], seen["values"] = cmd, yaml.safe_load(values.read_text())
        seen["file"] = values

        class Done:
            returncode, stdout, stderr = 0, "", ""

        return Done()

    monkeypatch.setattr(manage.subprocess, "run", fake_run)
    session = FakeSession(FakeKube(), "kind", env={"PATH": str(tmp_path)})
    [st] = manage.install(["metrics-server"], session, print, wait=False)  # type: ignore[arg-type]
    assert seen["values"] == {"args": ["--kubelet-insecure-tls"]}
    assert not seen["file"].exists()
    assert seen["cmd"][-4:] == ["--kubeconfig", "/nonexistent", "--kube-context", "kind-x"]
    assert st.source is None  # the fake cluster did not change: nothing claims it is installed


def test_install_over_an_interrupted_helm_run_says_how_to_clear_it(monkeypatch):
    monkeypatch.setattr(manage.subprocess, "run", _no_helm)
    pending = [release_secret("kube-system", "metrics-server", 1, "pending-install")]
    with pytest.raises(KubelabError) as info:
        manage.install(["metrics-server"], FakeSession(FakeKube(pending), "kind"), print)  # type: ignore[arg-type]
    assert "pending-install (a helm run was cut short)" in info.value.message
    assert "kubelab addons uninstall metrics-server" in (info.value.hint or "")


def test_uninstall_leaves_what_kubelab_did_not_install(monkeypatch):
    monkeypatch.setattr(manage.subprocess, "run", _no_helm)
    said: list[str] = []
    manage.uninstall(["metrics-server"], FakeSession(FakeKube(MS_READY), "k3d"), said.append)  # type: ignore[arg-type]
    manage.uninstall(["metrics-server"], FakeSession(FakeKube(), "kind"), said.append)  # type: ignore[arg-type]
    assert "not kubelab's to remove" in said[0]
    assert said[1] == "metrics-server: not installed"


def test_cli_lists_the_pinned_addons(kubelab_cli):
    proc = kubelab_cli("addons", "list")
    assert proc.returncode == 0, proc.stderr
    text = " ".join(proc.stdout.split())
    assert "metrics-server 3.13.1 from https://kubernetes-sigs.github.io/metrics-server/" in text
    assert "(app 0.8.1)" in text


def test_cli_unknown_addon_is_a_clear_error(kubelab_cli):
    proc = kubelab_cli("addons", "install", "metric-server")
    assert proc.returncode == 2
    assert "there is no add-on 'metric-server'" in proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr


def test_progress_in_a_log_prints_a_line_per_change_of_state_not_per_second(monkeypatch):
    import io

    from rich.console import Console

    from kubelab import cli

    out = io.StringIO()
    monkeypatch.setattr(cli, "console", Console(file=out, force_terminal=False, width=200))
    say = cli._addon_progress(None)
    for msg in (
        "m: installing x",
        "m: waiting (1s) — 0/1 available",
        "m: waiting (2s) — 0/1 available",
        "m: waiting (3s) — 1/1 available",
    ):
        say(msg)
    assert out.getvalue().splitlines() == [
        "m: installing x",
        "m: waiting (1s) — 0/1 available",
        "m: waiting (3s) — 1/1 available",
    ]


def test_addon_release_requirement_needs_kubelabs_own_helm_release():
    assert re.match(REQUIREMENT_PATTERN, "addon-release:metrics-server")
    assert not re.match(REQUIREMENT_PATTERN, "addon-release:nope")
    installed = [release_secret("kube-system", "metrics-server", 1)]
    assert caps([*installed, *MS_READY]).check("addon-release:metrics-server") == (True, "")
    ok, reason = caps(installed).check("addon-release:metrics-server")
    assert not ok and "not ready" in reason
    ok, reason = caps([]).check("addon-release:metrics-server")
    assert not ok and "kubelab addons install metrics-server" in reason
    # served, but not by kubelab's release: a step reading the release with helm cannot run
    ok, reason = caps(MS_READY, "k3d").check("addon-release:metrics-server")
    assert not ok and "Helm release kube-system/metrics-server" in reason
    assert FLAVOURS["k3d"].title in reason
    ok, reason = caps(MS_READY, "kind").check("addon-release:metrics-server")
    assert not ok and "something other than kubelab" in reason
    assert caps(MS_READY, "kind").check("addon:metrics-server")[0]  # addon: is still met


def test_gatekeeper_chart_and_host_binary_pin_the_same_release():
    from kubelab.addons import gatekeeper
    from kubelab.embedded import build

    gk = addons.get("gatekeeper")
    built = build._module_versions("gatekeeper")["github.com/open-policy-agent/gatekeeper/v3"]
    assert built == gatekeeper.VERSION == f"v{gk.chart.version}" == f"v{gk.app_version}"
    assert gk.chart.repo == "https://open-policy-agent.github.io/gatekeeper/charts"
    # helm's Pods must really run; the embedded cluster runs the manager on the host instead
    assert gk.needs == ("containers",) and gk.local is not None
    assert {type(c).__name__ for c in gk.local_ready} >= {"HTTPReady", "WebhookConfigured"}


def _stored(secret: dict, chart_version: str, config: dict | None) -> dict:
    """A release Secret as helm stores it: base64 of gzipped JSON, base64 again by the API."""
    import base64
    import gzip
    import json

    record = {"chart": {"metadata": {"version": chart_version}}, "config": config}
    inner = base64.b64encode(gzip.compress(json.dumps(record).encode()))
    return {**secret, "data": {"release": base64.b64encode(inner).decode()}}


@pytest.mark.parametrize(
    ("chart_version", "config", "changes"),
    [
        ("3.13.1", {"args": ["--kubelet-insecure-tls"]}, False),  # as pinned: nothing to do
        ("3.12.0", {"args": ["--kubelet-insecure-tls"]}, True),  # an older pin: upgrade
        ("3.13.1", None, True),  # other values (none): upgrade
    ],
)
def test_install_again_changes_nothing_only_when_chart_and_values_are_the_pinned_ones(
    monkeypatch, chart_version, config, changes
):
    monkeypatch.setattr(manage.subprocess, "run", _no_helm)
    secret = _stored(release_secret("kube-system", "metrics-server", 4), chart_version, config)
    plan = manage.plan_install(METRICS, FakeSession(FakeKube([secret, *MS_READY]), "kind"))  # type: ignore[arg-type]
    assert plan.changes is changes, plan.lines()
    if changes:
        assert plan.action.startswith("would upgrade metrics-server 3.13.1"), plan.lines()
        assert plan.files == {"metrics-server.values.yaml": "args:\n- --kubelet-insecure-tls\n"}
        assert plan.commands[0].endswith(
            "--reset-values --values metrics-server.values.yaml --kube-context kind-x"
        )
    else:
        assert plan.action.endswith("(helm revision 4), ready: nothing to change")


def test_a_release_record_that_cannot_be_read_is_never_taken_for_unchanged(monkeypatch):
    monkeypatch.setattr(manage.subprocess, "run", _no_helm)
    kube = FakeKube([release_secret("kube-system", "metrics-server", 1), *MS_READY])
    plan = manage.plan_install(METRICS, FakeSession(kube, "kind"))  # type: ignore[arg-type]
    assert plan.changes and plan.action.startswith("would upgrade")


def _metrics_with(**extra) -> AddOn:
    return dataclasses.replace(METRICS, **extra)


def test_an_addons_manifests_are_applied_before_its_chart_and_deleted_after_it(monkeypatch):
    monkeypatch.setattr(manage.subprocess, "run", _no_helm)
    url = "https://example.invalid/crds.yaml"
    addon = _metrics_with(manifests=(url,))
    plan = manage.plan_install(addon, FakeSession(FakeKube(), "kind"))  # type: ignore[arg-type]
    assert plan.commands[0] == (
        f"kubectl apply --server-side --force-conflicts -f {url} --context kind-x"
    )
    assert plan.commands[1].startswith("helm upgrade --install metrics-server")
    installed = [release_secret("kube-system", "metrics-server", 1), *MS_READY]
    gone = manage.plan_uninstall(addon, FakeSession(FakeKube(installed), "kind"))  # type: ignore[arg-type]
    assert gone.commands[0].startswith("helm uninstall metrics-server")
    assert (
        gone.commands[1]
        == f"kubectl delete --ignore-not-found --wait=true -f {url} --context kind-x"
    )
    refused = _metrics_with(unavailable={"kind": "no way"})
    with pytest.raises(KubelabError) as info:
        manage.plan_install(refused, FakeSession(FakeKube(), "kind"))  # type: ignore[arg-type]
    assert info.value.message == "cannot install metrics-server on kind: no way"


# --- traefik, istio ---------------------------------------------------------------------------


def test_traefik_chart_host_binary_and_gateway_api_crds_pin_the_same_releases():
    from kubelab.addons import traefik
    from kubelab.embedded import build

    tr = addons.get("traefik")
    built = build._module_versions("traefik")["github.com/traefik/traefik/v3"]
    assert built == traefik.VERSION == f"v{tr.app_version}" == tr.values["image"]["tag"]
    assert (tr.chart.name, tr.chart.version) == ("traefik", "41.3.0")
    assert tr.chart.repo == "https://traefik.github.io/charts"
    assert re.fullmatch(r"v1\.6\.\d+", traefik.GATEWAY_API)
    assert tr.manifests == (
        "https://github.com/kubernetes-sigs/gateway-api/releases/download/"
        f"{traefik.GATEWAY_API}/standard-install.yaml",
    )
    providers = tr.values["providers"]
    assert all(providers[p]["enabled"] for p in ("kubernetesIngress", "kubernetesCRD",
                                                 "kubernetesGateway"))  # fmt: skip
    assert tr.values["gateway"] == {"enabled": False}  # the labs make their own Gateways
    assert tr.values["ingressClass"]["isDefaultClass"] is False


@pytest.mark.parametrize(
    ("flavour", "service_type"),
    [
        ("docker-desktop", "LoadBalancer"),
        ("orbstack", "LoadBalancer"),
        ("rancher-desktop", "LoadBalancer"),
        ("k3d", "LoadBalancer"),
        ("kind", "ClusterIP"),
        ("minikube", "ClusterIP"),
        ("unknown", "ClusterIP"),
    ],
)
def test_traefik_gets_a_loadbalancer_only_where_the_flavour_answers_one(flavour, service_type):
    tr = addons.get("traefik")
    assert tr.values_for(flavour)["service"]["spec"]["type"] == service_type
    assert (service_type == "LoadBalancer") is FLAVOURS[flavour].loadbalancer


@pytest.mark.parametrize("name", ["istio-base", "istio", "kiali"])
def test_istio_cannot_run_on_the_embedded_cluster_and_says_why(monkeypatch, name):
    monkeypatch.setattr(manage.subprocess, "run", _no_helm)
    session = FakeSession(FakeKube(), "embedded", containers=True)
    with pytest.raises(KubelabError) as info:
        manage.install([name], session, print)  # type: ignore[arg-type]
    assert "Envoy" in info.value.message and "C++" in info.value.message
    ok, reason = caps([], "embedded").check(f"addon:{name}")
    assert not ok and "cannot run on" in reason and "Envoy" in reason


def test_istio_pins_one_release_for_both_charts_and_installs_after_its_base():
    base, istiod = addons.get("istio-base"), addons.get("istio")
    assert base.chart.version == istiod.chart.version == "1.30.4"
    assert (base.chart.name, istiod.chart.name) == ("base", "istiod")
    assert "addon:istio-base" in istiod.needs and "addon:istio" in addons.get("kiali").needs


def test_install_applies_an_addons_manifests_before_its_chart(monkeypatch, tmp_path):
    for tool in ("helm", "kubectl"):
        (tmp_path / tool).write_text("#!/bin/sh\n")
        (tmp_path / tool).chmod(0o755)
    calls: list[list[str]] = []

    def fake_run(cmd, **kwargs):
        calls.append(cmd)

        class Done:
            returncode, stdout, stderr = 0, "", ""

        return Done()

    monkeypatch.setattr(manage.subprocess, "run", fake_run)
    session = FakeSession(FakeKube(), "kind", env={"PATH": str(tmp_path)})
    manage.install(["traefik"], session, print, wait=False)  # type: ignore[arg-type]
    tools = [Path(c[0]).name for c in calls]
    assert tools == ["kubectl", "helm"]
    apply = [
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        addons.get("traefik").manifests[0],
    ]
    assert calls[0][1:6] == apply and calls[0][-2:] == ["--context", "kind-x"], calls[0]


def test_keda_chart_and_host_binaries_pin_the_same_release():
    from kubelab.addons import keda
    from kubelab.embedded import build

    addon = addons.get("keda")
    built = build._module_versions("keda")["github.com/kedacore/keda/v2"]
    assert built == keda.VERSION == f"v{addon.chart.version}" == f"v{addon.app_version}"
    assert addon.chart.repo == "https://kedacore.github.io/charts"
    assert addon.needs == ("containers",) and addon.local is not None
    names = {type(c).__name__ for c in addon.local_ready}
    assert names >= {"HTTPReady", "APIServiceAvailable", "BothRunning", "CRDEstablished"}


def test_keda_adapter_patch_moves_only_its_metrics_listener_to_loopback():
    """The adapter's one edit binds /metrics to 127.0.0.1, in its main package (built without
    vendoring); the pinned source has the upstream line exactly once (a KEDA bump that changes
    it fails here, before any build)."""
    import shutil
    import subprocess

    from kubelab.embedded import build

    (adapter,) = [b for b in build.binaries() if b.name == "keda-adapter"]
    (patch,) = adapter.patches
    assert patch.inside == "cmd/adapter/main.go" and build._main_package_patch(adapter)
    assert '":%v"' in patch.old and '"127.0.0.1:%v"' in patch.new
    if shutil.which("go") is None:
        pytest.skip("no Go toolchain to find the pinned KEDA source")
    out = subprocess.run(
        ["go", "list", "-f", "{{.Dir}}", adapter.package],
        cwd=build.tools_dir() / "keda", capture_output=True, text=True,
    )  # fmt: skip
    if out.returncode != 0:
        pytest.skip(f"the pinned KEDA module is not in Go's cache: {out.stderr.strip()[-200:]}")
    upstream = (Path(out.stdout.strip()) / "main.go").read_text()
    assert upstream.count(patch.old) == 1
