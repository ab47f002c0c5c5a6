"""kube-prometheus-stack: the Prometheus Operator, Prometheus, Grafana, kube-state-metrics and
node-exporter, with the ServiceMonitors that make Prometheus scrape the cluster.

Real clusters: the prometheus-community chart 88.5.3 (Prometheus Operator v0.93.1, Prometheus
v3.14.0, Grafana 12). Newer chart majors ship operator v0.94+/v0.95, whose `pkg/client` module
the Go module proxy does not serve, so the embedded cluster could not run the same operator:
88.5.3 is the newest line that is the same program on both. Values for a laptop: no
Alertmanager (the course sends no alerts), 6 h of retention, small requests, and no
ServiceMonitors for the control plane's own components (controller manager, scheduler, etcd,
kube-proxy): on every local flavour they listen on the node's loopback, and the only way to
reach them is to rewire the node (the reference patched Docker Desktop's VM with nsenter; we
never do). Prometheus and Grafana get a LoadBalancer on the flavours that put one on localhost
(Docker Desktop, OrbStack, Rancher Desktop), ClusterIP elsewhere (`kubectl port-forward`).

The embedded cluster runs no chart (no containers without its real node, and Grafana is AGPL:
kubelab never builds it). There kubelab runs the real programs as host processes against the API
server, all on 127.0.0.1: the Prometheus Operator (tools/k8s/prometheus-operator), the chart's
Prometheus object with `replicas: 0` and an `apiserverConfig` (the operator generates its
configuration from ServiceMonitors exactly as in a cluster, but starts no Pod), Prometheus
itself (tools/k8s/prometheus, Kubernetes service discovery only) as that object's one replica,
and a small config sync (kubelab.addons.prometheus_config) standing in for the operator's
config-reloader sidecar: it writes the generated configuration to Prometheus' file and asks
Prometheus to reload. Each of the three is a user of its own (a client certificate from the
cluster's CA) bound to upstream's ClusterRole for the operator, or for Prometheus, or to reading
Secrets in `monitoring`: none runs as the cluster's admin. Prometheus' address is published in
the ConfigMap monitoring/kubelab-prometheus for the lab's `promql.py`. There is no Grafana,
Alertmanager, node-exporter or kube-state-metrics on the embedded cluster.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubelab.addons import host
from kubelab.addons.base import AddOn, Chart, CRDEstablished, DeploymentAvailable
from kubelab.addons.host import HostProgram, HTTPReady
from kubelab.errors import KubelabError

if TYPE_CHECKING:
    from kubelab.kube.client import Kube

NAME = "kube-prometheus-stack"
OPERATOR_VERSION = "v0.93.1"
PROMETHEUS_VERSION = "v3.14.0"
NAMESPACE = "monitoring"
RELEASE = "kube-prometheus-stack"
PROMETHEUS = f"{RELEASE}-prometheus"  # the chart's Prometheus object (and its Service)
CONFIG_SECRET = f"prometheus-{PROMETHEUS}"  # where the operator writes its configuration
ADDRESS_CONFIGMAP = "kubelab-prometheus"  # embedded cluster: where Prometheus answers
SERVICEMONITORS_CRD = "servicemonitors.monitoring.coreos.com"
PROMETHEUSES_CRD = "prometheuses.monitoring.coreos.com"
SCRAPECONFIGS_CRD = "scrapeconfigs.monitoring.coreos.com"
RETENTION = "6h"
SCRAPE_INTERVAL = "15s"

OPERATOR = HostProgram(NAME, "prometheus-operator")
SERVER = HostProgram(NAME, "prometheus")
SYNC = HostProgram(NAME, "config-sync")

# --- the chart's values ---------------------------------------------------------------------

_SMALL = {"requests": {"cpu": "50m", "memory": "64Mi"}}
VALUES: dict[str, Any] = {
    "alertmanager": {"enabled": False},
    # on local clusters these listen on the node's loopback only: their targets would be down
    "kubeControllerManager": {"enabled": False},
    "kubeScheduler": {"enabled": False},
    "kubeEtcd": {"enabled": False},
    "kubeProxy": {"enabled": False},
    "prometheus": {
        "prometheusSpec": {
            "retention": RETENTION,
            "retentionSize": "1GB",
            "scrapeInterval": SCRAPE_INTERVAL,
            "resources": {
                "requests": {"cpu": "100m", "memory": "400Mi"},
                "limits": {"memory": "1Gi"},
            },
        },
    },
    "prometheusOperator": {"resources": _SMALL},
    "grafana": {
        "service": {"port": 3000},
        "resources": {"requests": {"cpu": "50m", "memory": "160Mi"}},
        # dashboards are ConfigMaps labelled grafana_dashboard=1, in any namespace
        "sidecar": {"dashboards": {"searchNamespace": "ALL"}},
    },
    "kube-state-metrics": {"resources": _SMALL},
    "prometheus-node-exporter": {
        # Docker Desktop's VM refuses the host root mount (mount propagation)
        "hostRootFsMount": {"enabled": False},
        "resources": {"requests": {"cpu": "20m", "memory": "32Mi"}},
    },
}
_LOADBALANCER = {
    "prometheus": {"service": {"type": "LoadBalancer"}},
    "grafana": {"service": {"type": "LoadBalancer"}},
}

# --- the embedded cluster -------------------------------------------------------------------


def _crd_dir() -> Path:
    src = host.module_dir(
        "prometheus-operator",
        "github.com/prometheus-operator/prometheus-operator",
        OPERATOR_VERSION,
    )
    return src / "example" / "prometheus-operator-crd"


def _api_server(kube: Kube) -> str:
    """The API server's URL from the cluster's own kubeconfig."""
    import yaml

    config = yaml.safe_load(host.private_kubeconfig(kube).read_text())
    return config["clusters"][0]["cluster"]["server"]


def _pki(kube: Kube) -> Path:
    return host.private_kubeconfig(kube).parent / "pki"


# Each host process is a user of its own (a client certificate from the cluster's CA), with the
# permissions upstream gives its ServiceAccount: never the cluster's admin.
IDENTITIES = {
    "prometheus-operator": "kubelab:prometheus-operator",
    "prometheus": "kubelab:prometheus",
    "config-sync": "kubelab:prometheus-config-sync",
}
OWNED = {"kubelab.dev/addon": NAME}  # the label of every cluster-wide object it makes


def _certs(kube: Kube) -> Path:
    return SERVER.folder(kube) / "certs"


def _issue_identities(kube: Kube) -> None:
    from kubelab.embedded import pki

    folder = _certs(kube)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    ca = (_pki(kube) / "ca.crt", _pki(kube) / "ca.key")
    for name, user in IDENTITIES.items():
        pki.issue(folder, name, ca, user)


def _rbac() -> list[dict[str, Any]]:
    """Upstream's ClusterRoles for the operator and for Prometheus (from the pinned module),
    bound to the host processes' users; the config sync reads the one Secret it copies."""
    import yaml

    rbac = _crd_dir().parent / "rbac"
    objects: list[dict[str, Any]] = []
    for program, path in (
        ("prometheus-operator", "prometheus-operator/prometheus-operator-cluster-role.yaml"),
        ("prometheus", "prometheus/prometheus-cluster-role.yaml"),
    ):
        role = yaml.safe_load((rbac / path).read_text())
        name = f"kubelab-{program}"
        role["metadata"] = {"name": name, "labels": OWNED}
        binding = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": name, "labels": OWNED},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": name},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                          "name": IDENTITIES[program]}],
        }  # fmt: skip
        objects += [role, binding]
    name = "kubelab-prometheus-config-sync"
    objects += [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "rules": [{"apiGroups": [""], "resources": ["secrets"],
                       "verbs": ["get", "list", "watch"]}],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                          "name": IDENTITIES["config-sync"]}],
        },
    ]  # fmt: skip
    return objects


def _prometheus_object(kube: Kube) -> dict[str, Any]:
    pki, certs = _pki(kube), _certs(kube)
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "Prometheus",
        "metadata": {
            "name": PROMETHEUS,
            "namespace": NAMESPACE,
            "labels": {"release": RELEASE, "app.kubernetes.io/managed-by": "kubelab"},
            "annotations": {
                "kubelab.dev/note": "replicas: 0 — kubelab runs its one replica as a host "
                "process beside the embedded API server, from the configuration the operator "
                f"generates (secret {CONFIG_SECRET})"
            },
        },
        "spec": {
            "replicas": 0,
            "version": PROMETHEUS_VERSION,
            "retention": RETENTION,
            "scrapeInterval": SCRAPE_INTERVAL,
            # what the chart selects: ServiceMonitors and PodMonitors labelled with its release
            "serviceMonitorSelector": {"matchLabels": {"release": RELEASE}},
            "serviceMonitorNamespaceSelector": {},
            "podMonitorSelector": {"matchLabels": {"release": RELEASE}},
            "podMonitorNamespaceSelector": {},
            "ruleSelector": {"matchLabels": {"release": RELEASE}},
            "scrapeConfigSelector": {"matchLabels": {"release": RELEASE}},
            "scrapeConfigNamespaceSelector": {},
            # a host process is not in the cluster: service discovery reaches the API server
            # on loopback with the cluster's CA and a client certificate
            "apiserverConfig": {
                "host": _api_server(kube),
                "tlsConfig": {
                    "caFile": str(pki / "ca.crt"),
                    "certFile": str(certs / "prometheus.crt"),
                    "keyFile": str(certs / "prometheus.key"),
                },
            },
        },
    }


def _scrape_host_processes(prometheus_port: int, operator_port: int) -> dict[str, Any]:
    """In a cluster the chart's ServiceMonitors make Prometheus scrape itself and the operator
    through their Services; host processes have no Service (an endpoint cannot be loopback), so
    a ScrapeConfig names their addresses."""
    return {
        "apiVersion": "monitoring.coreos.com/v1alpha1",
        "kind": "ScrapeConfig",
        "metadata": {
            "name": "kubelab-host-processes",
            "namespace": NAMESPACE,
            "labels": {"release": RELEASE},
        },
        "spec": {
            "staticConfigs": [
                {"targets": [f"127.0.0.1:{prometheus_port}"], "labels": {"job": PROMETHEUS}},
                {
                    "targets": [f"127.0.0.1:{operator_port}"],
                    "labels": {"job": f"{RELEASE}-operator"},
                },
            ]
        },
    }


def _wait_established(kube: Kube, names: list[str], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        pending = [n for n in names if not CRDEstablished(n).evaluate(kube)[0]]
        if not pending:
            return
        if time.monotonic() >= deadline:
            raise KubelabError(
                f"{NAME}: CRDs not Established after {timeout:.0f} s: {', '.join(pending)}",
                "is the embedded cluster up? `kubelab cluster status`",
            )
        time.sleep(0.5)


_EMPTY_CONFIG = f"global:\n  scrape_interval: {SCRAPE_INTERVAL}\nscrape_configs: []\n"


@dataclass(frozen=True)
class HostProcesses:
    def installed(self, kube: Kube) -> bool:
        return any(p.pid(kube) is not None for p in (OPERATOR, SERVER, SYNC))

    def install(self, kube: Kube, progress: Callable[[str], None]) -> None:
        from kubelab.embedded import build

        running = [p.program for p in (OPERATOR, SERVER, SYNC) if p.pid(kube) is not None]
        if len(running) == 3:
            progress(
                f"{NAME}: already running (operator, Prometheus, config sync): nothing changed"
            )
            return
        if running:  # half of it (one crashed, or an interrupted install): start over
            self._stop(kube, progress)
        for binary in ("prometheus-operator", "prometheus"):
            if not (build.bin_dir() / binary).is_file():
                raise KubelabError(
                    f"{NAME}: {binary} is not built",
                    "run `make tools` (builds it from the Go module proxy)",
                )
        progress(f"{NAME}: applying the Prometheus Operator's CRDs ({OPERATOR_VERSION})")
        host.kubectl(kube, NAME, "apply", "--server-side", "--force-conflicts", "-f",
                     str(_crd_dir()))  # fmt: skip
        # polled, not `kubectl wait`: that fails at once ("accessor error") on a CRD so new
        # that it has no status conditions yet
        _wait_established(kube, [PROMETHEUSES_CRD, SERVICEMONITORS_CRD, SCRAPECONFIGS_CRD])
        _issue_identities(kube)
        namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
        host.apply(kube, NAME, [namespace, *_rbac(), _prometheus_object(kube)])

        folder = SERVER.folder(kube)
        (folder / "data").mkdir(parents=True, exist_ok=True)
        config = folder / "prometheus.yaml"
        if not config.exists():
            config.write_text(_EMPTY_CONFIG)  # until the operator's first configuration
        server, pki = _api_server(kube), _pki(kube)

        operator_port = port = host.free_port()
        pid = OPERATOR.start(kube, [
            str(build.bin_dir() / "prometheus-operator"),
            f"--apiserver={server}",
            f"--ca-file={pki / 'ca.crt'}",
            f"--cert-file={_certs(kube) / 'prometheus-operator.crt'}",
            f"--key-file={_certs(kube) / 'prometheus-operator.key'}",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--prometheus-instance-namespaces={NAMESPACE}",
            "--log-level=info",
        ])  # fmt: skip
        OPERATOR.write_port(kube, "operator", port)
        progress(f"{NAME}: Prometheus Operator started (pid {pid}, 127.0.0.1:{port})")

        port = host.free_port()
        pid = SERVER.start(kube, [
            str(build.bin_dir() / "prometheus"),
            f"--config.file={config}",
            f"--storage.tsdb.path={folder / 'data'}",
            f"--storage.tsdb.retention.time={RETENTION}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-lifecycle",  # POST /-/reload, used by the config sync
            f"--web.external-url=http://127.0.0.1:{port}/",
        ])  # fmt: skip
        SERVER.write_port(kube, "prometheus", port)
        progress(f"{NAME}: Prometheus started (pid {pid}, http://127.0.0.1:{port})")

        pid = SYNC.start(kube, [
            sys.executable, "-m", "kubelab.addons.prometheus_config",
            "--server", server, "--ca", str(pki / "ca.crt"),
            "--cert", str(_certs(kube) / "config-sync.crt"),
            "--key", str(_certs(kube) / "config-sync.key"),
            "--namespace", NAMESPACE, "--secret", CONFIG_SECRET,
            "--config", str(config),
            "--reload-url", f"http://127.0.0.1:{port}/-/reload",
            "--pod-name", f"{PROMETHEUS}-host",
        ])  # fmt: skip
        progress(f"{NAME}: config sync started (pid {pid})")
        address = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": ADDRESS_CONFIGMAP, "namespace": NAMESPACE},
            "data": {"url": f"http://127.0.0.1:{port}"},
        }
        host.apply(kube, NAME, [address, _scrape_host_processes(port, operator_port)])

    def _stop(self, kube: Kube, progress: Callable[[str], None]) -> None:
        for program in (SYNC, SERVER, OPERATOR):
            program.stop(kube, progress)

    def uninstall(self, kube: Kube, progress: Callable[[str], None]) -> None:
        self._stop(kube, progress)
        progress(f"{NAME}: removing its namespace and CRDs (ServiceMonitors with them)")
        host.kubectl(kube, NAME, "delete", "namespace", NAMESPACE, "--ignore-not-found",
                     "--wait=true", "--timeout=60s")  # fmt: skip
        selector = ",".join(f"{k}={v}" for k, v in OWNED.items())
        host.kubectl(kube, NAME, "delete", "clusterrolebinding,clusterrole", "-l", selector,
                     "--ignore-not-found")  # fmt: skip
        names = host.kubectl(kube, NAME, "get", "crd", "-o", "name").split()
        ours = [n for n in names if n.endswith(".monitoring.coreos.com")]
        if ours:
            host.kubectl(kube, NAME, "delete", "--ignore-not-found", "--wait=true",
                         "--timeout=60s", *ours)  # fmt: skip
        # its data, configuration, ports and logs: nothing of it stays
        shutil.rmtree(SERVER.folder(kube), ignore_errors=True)
        progress(f"{NAME}: removed")


@dataclass(frozen=True)
class ConfigSynced:
    """The operator's configuration reached Prometheus: Prometheus runs a configuration that
    the config sync wrote from the operator's secret (not the placeholder)."""

    def evaluate(self, kube: Kube) -> tuple[bool, str]:
        if SYNC.pid(kube) is None:
            return False, SYNC.not_running(kube)
        port = SERVER.read_port(kube, "prometheus")
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{port}/api/v1/status/config", timeout=2
            ) as r:
                loaded = json.load(r)["data"]["yaml"]
        except (OSError, ValueError, KeyError):
            return False, "Prometheus does not answer yet"
        ok = "prometheus_replica" in loaded  # the operator's external labels
        return ok, "operator's configuration " + ("loaded" if ok else "not loaded yet")


@dataclass(frozen=True)
class PrometheusAvailable:
    """The operator reports the chart's Prometheus object Available (its Pods are ready)."""

    def evaluate(self, kube: Kube) -> tuple[bool, str]:
        from kubelab.addons.base import _get
        from kubelab.kube.ready import condition

        obj = _get(kube, "monitoring.coreos.com/v1", "Prometheus", PROMETHEUS, NAMESPACE)
        if obj is None:
            return False, f"Prometheus {NAMESPACE}/{PROMETHEUS} does not exist"
        ok = (condition(obj, "Available") or {}).get("status") == "True"
        return ok, f"Prometheus {NAMESPACE}/{PROMETHEUS}: {'Available' if ok else 'not Available'}"


ADDON = AddOn(
    name=NAME,
    summary="Prometheus Operator, Prometheus and Grafana: metrics, ServiceMonitors, dashboards",
    chart=Chart(
        name="kube-prometheus-stack",
        version="88.5.3",
        repo="https://prometheus-community.github.io/helm-charts",
    ),
    app_version=OPERATOR_VERSION.removeprefix("v"),
    namespace=NAMESPACE,
    release=RELEASE,
    ready=(
        DeploymentAvailable(NAMESPACE, f"{RELEASE}-operator"),
        DeploymentAvailable(NAMESPACE, f"{RELEASE}-grafana"),
        DeploymentAvailable(NAMESPACE, f"{RELEASE}-kube-state-metrics"),
        CRDEstablished(SERVICEMONITORS_CRD),
        PrometheusAvailable(),
    ),
    served=(CRDEstablished(SERVICEMONITORS_CRD),),
    values=VALUES,
    flavour_values={
        "docker-desktop": _LOADBALANCER,
        "orbstack": _LOADBALANCER,
        "rancher-desktop": _LOADBALANCER,
    },
    needs=("containers",),
    timeout=420.0,
    local=HostProcesses(),
    local_ready=(
        CRDEstablished(SERVICEMONITORS_CRD),
        HTTPReady(OPERATOR, "operator", "/healthz"),
        HTTPReady(SERVER, "prometheus", "/-/ready"),
        ConfigSynced(),
    ),
    local_lacks="the Prometheus Operator and Prometheus only: no Grafana (AGPL, kubelab never "
    "builds it), Alertmanager, node-exporter or kube-state-metrics",
)
