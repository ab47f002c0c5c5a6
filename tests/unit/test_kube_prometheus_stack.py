"""kube-prometheus-stack: its values per flavour, the Helm-release requirement on the embedded
cluster, and the config sync's transformations (the e2e tests run the real programs)."""

from __future__ import annotations

import base64
import gzip

from kubelab import addons
from kubelab.addons import kube_prometheus_stack as kps
from kubelab.addons.prometheus_config import KEY, expand, render, write_if_changed
from kubelab.flavours import FLAVOURS
from kubelab.requirements import Capabilities

STACK = addons.get("kube-prometheus-stack")


def test_loadbalancer_only_where_the_flavour_puts_one_on_localhost():
    for flavour in FLAVOURS:
        values = STACK.values_for(flavour)
        lb = values["prometheus"].get("service", {}).get("type") == "LoadBalancer"
        assert lb == (flavour in ("docker-desktop", "orbstack", "rancher-desktop")), flavour
        assert values["grafana"]["service"]["port"] == 3000


def test_laptop_values_leave_out_what_local_clusters_cannot_serve():
    values = STACK.values_for("kind")
    for component in ("kubeControllerManager", "kubeScheduler", "kubeEtcd", "kubeProxy"):
        assert values[component] == {"enabled": False}, component
    assert values["alertmanager"] == {"enabled": False}
    spec = values["prometheus"]["prometheusSpec"]
    assert spec["retention"] == "6h" and spec["resources"]["limits"]["memory"] == "1Gi"
    assert values["grafana"]["sidecar"]["dashboards"]["searchNamespace"] == "ALL"


class _NoKube:
    """The embedded flavour's answer must not need the cluster at all."""

    def __getattr__(self, name):
        raise AssertionError(f"the cluster was asked ({name})")


def test_helm_release_requirement_is_unmet_by_the_embedded_host_processes():
    caps = Capabilities(_NoKube(), FLAVOURS["embedded"], 1, "")  # type: ignore[arg-type]
    ok, reason = caps.check("addon-release:kube-prometheus-stack")
    assert not ok
    assert "host processes" in reason and "no Grafana (AGPL" in reason


def test_config_sync_expands_the_reloaders_variables_and_leaves_others():
    text = "replica: $(POD_NAME)\nshard: $(SHARD)\nzone: $(ZONE)\nshell: $HOME\n"
    out = expand(text, {"POD_NAME": "p-0", "SHARD": "0"})
    assert out == "replica: p-0\nshard: 0\nzone: $(ZONE)\nshell: $HOME\n"


def test_config_sync_renders_the_operators_gzipped_secret(tmp_path):
    raw = base64.b64encode(gzip.compress(b"global:\n  external_labels: {r: $(POD_NAME)}\n"))
    assert render({KEY: raw.decode()}, {"POD_NAME": "x"}) == (
        "global:\n  external_labels: {r: x}\n"
    )
    assert render(None, {}) is None and render({"other": "e30="}, {}) is None
    target = tmp_path / "prometheus.yaml"
    assert write_if_changed(target, "a: 1\n")
    assert not write_if_changed(target, "a: 1\n")  # unchanged: no reload
    assert write_if_changed(target, "a: 2\n") and target.read_text() == "a: 2\n"
    assert [p.name for p in tmp_path.iterdir()] == ["prometheus.yaml"]


def test_embedded_prometheus_object_is_a_chart_lookalike_without_pods(monkeypatch, tmp_path):
    monkeypatch.setattr(kps, "_api_server", lambda _kube: "https://127.0.0.1:6443")
    monkeypatch.setattr(kps, "_pki", lambda _kube: tmp_path)
    monkeypatch.setattr(kps, "_certs", lambda _kube: tmp_path / "certs")
    obj = kps._prometheus_object(None)  # type: ignore[arg-type]
    spec = obj["spec"]
    assert obj["metadata"]["name"] == "kube-prometheus-stack-prometheus"
    assert spec["replicas"] == 0
    assert spec["serviceMonitorSelector"] == {"matchLabels": {"release": "kube-prometheus-stack"}}
    assert spec["apiserverConfig"]["host"] == "https://127.0.0.1:6443"
    tls = spec["apiserverConfig"]["tlsConfig"]
    assert tls["caFile"] == str(tmp_path / "ca.crt")
    # Prometheus' own client certificate (user kubelab:prometheus), never the cluster's admin
    assert tls["certFile"] == str(tmp_path / "certs" / "prometheus.crt")
