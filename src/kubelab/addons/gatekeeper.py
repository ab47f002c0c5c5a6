"""OPA Gatekeeper: a validating admission webhook that enforces ConstraintTemplates/Constraints.

Real clusters: the project's chart 3.23.1 (Gatekeeper v3.23.1, built against Kubernetes 1.36's
client libraries). The embedded cluster runs no containers without its real node, so there the
Gatekeeper manager (built from the Go module proxy, tools/k8s/gatekeeper) runs as a host process
against the embedded API server: its CRDs applied, its webhook served on 127.0.0.1 with a
certificate of its own CA, and a ValidatingWebhookConfiguration that calls it by `url:`.
`failurePolicy: Ignore` and the kube-system/gatekeeper-system exclusions mean a stopped or
crashed manager can never lock the cluster. The process is stopped by `kubelab addons
uninstall gatekeeper` and by `kubelab cluster down`.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kubelab.addons import host
from kubelab.addons.base import AddOn, Chart, CRDEstablished, DeploymentAvailable
from kubelab.addons.host import HostProgram, HTTPReady
from kubelab.errors import KubelabError

if TYPE_CHECKING:
    from kubelab.kube.client import Kube

MODULE = "github.com/open-policy-agent/gatekeeper/v3"
VERSION = "v3.23.1"
NAMESPACE = "gatekeeper-system"
WEBHOOK = "gatekeeper-validating-webhook-configuration"
TEMPLATES_CRD = "constrainttemplates.templates.gatekeeper.sh"
MANAGER = HostProgram("gatekeeper", "gatekeeper")


def _kubectl(kube: Kube, *args: str, stdin: str | None = None, check: bool = True) -> str:
    return host.kubectl(kube, "gatekeeper", *args, stdin=stdin, check=check)


def _webhook_configuration(port: int, ca: bytes) -> dict:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": WEBHOOK, "labels": {"gatekeeper.sh/system": "yes"}},
        "webhooks": [
            {
                "name": "validation.gatekeeper.sh",
                "admissionReviewVersions": ["v1"],
                "clientConfig": {
                    "url": f"https://127.0.0.1:{port}/v1/admit",
                    "caBundle": base64.b64encode(ca).decode(),
                },
                # a stopped manager lets requests through; system namespaces never wait on it
                "failurePolicy": "Ignore",
                "matchPolicy": "Exact",
                "namespaceSelector": {
                    "matchExpressions": [
                        {"key": "admission.gatekeeper.sh/ignore", "operator": "DoesNotExist"},
                        {
                            "key": "kubernetes.io/metadata.name",
                            "operator": "NotIn",
                            "values": [NAMESPACE, "kube-system", "kube-node-lease"],
                        },
                    ]
                },
                "rules": [
                    {
                        "apiGroups": ["*"],
                        "apiVersions": ["*"],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": ["*"],
                    }
                ],
                "sideEffects": "None",
                "timeoutSeconds": 3,
            }
        ],
    }


# The manager writes its status objects owned by "its Pod" (POD_NAME): on the embedded cluster
# that Pod is a record standing for the host process, never scheduled (no node matches).
_ANCHOR_POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
        "name": "gatekeeper-host-process",
        "namespace": NAMESPACE,
        "labels": {"gatekeeper.sh/system": "yes"},
        "annotations": {
            "kubelab.dev/note": "stands for the Gatekeeper manager kubelab runs on the host"
        },
    },
    "spec": {
        "nodeSelector": {"kubelab.dev/never": "scheduled"},
        "containers": [{"name": "manager", "image": "localhost/kubelab/none:0"}],
    },
}


@dataclass(frozen=True)
class HostProcess:
    def installed(self, kube: Kube) -> bool:
        return MANAGER.pid(kube) is not None

    def plan(self, kube: Kube, action: str) -> list[str]:
        """What install or uninstall does (`kubelab addons install --dry-run`), doing nothing."""
        from kubelab.embedded import build

        folder = MANAGER.folder(kube)
        if action == "install":
            pod = _ANCHOR_POD["metadata"]["name"]
            return [
                f"apply the CRDs of Gatekeeper {VERSION} (charts/gatekeeper/crds of the pinned "
                f"Go module {MODULE}) with `kubectl apply --server-side`, wait until Established",
                f"apply the namespace {NAMESPACE} and the Pod record {pod} (stands for the "
                "host process; never scheduled)",
                f"start {build.bin_dir() / 'gatekeeper'} (webhook, audit, status, generate) on "
                f"127.0.0.1 with its own CA; certificates, pid and log in {folder}",
                f"apply the ValidatingWebhookConfiguration {WEBHOOK} (url "
                "https://127.0.0.1:PORT/v1/admit, failurePolicy Ignore)",
            ]
        return [
            f"stop the manager (pid file in {folder})",
            f"delete the ValidatingWebhookConfiguration {WEBHOOK}, every *.gatekeeper.sh CRD "
            f"(templates and constraints with them) and the namespace {NAMESPACE}",
        ]

    def install(self, kube: Kube, progress: Callable[[str], None]) -> None:
        from kubelab.embedded import build, pki

        binary = build.bin_dir() / "gatekeeper"
        if not binary.is_file():
            raise KubelabError(
                "gatekeeper: the Gatekeeper manager is not built",
                "run `make tools` (builds it from the Go module proxy)",
            )
        if MANAGER.pid(kube) is not None:
            progress("gatekeeper: already running")
            return
        certs = MANAGER.folder(kube) / "certs"
        certs.mkdir(parents=True, exist_ok=True)
        ca = pki.make_ca(certs, "ca", "kubelab-gatekeeper-webhook-ca")
        pki.issue(certs, "tls", ca, "gatekeeper-webhook", client=False, server=True,
                  ips=("127.0.0.1",))  # fmt: skip
        module = host.module_dir("gatekeeper", MODULE, VERSION)
        progress(f"gatekeeper: applying its CRDs ({VERSION})")
        _kubectl(kube, "apply", "--server-side", "--force-conflicts", "-f",
                 str(module / "charts" / "gatekeeper" / "crds"))  # fmt: skip
        _kubectl(kube, "wait", "--for=condition=Established", "--timeout=60s",
                 f"crd/{TEMPLATES_CRD}", "crd/configs.config.gatekeeper.sh")  # fmt: skip
        ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE,
              "labels": {"admission.gatekeeper.sh/ignore": "no-self-managing"}}}  # fmt: skip
        host.apply(kube, "gatekeeper", [ns, _ANCHOR_POD])
        port, health = host.free_port(), host.free_port()
        cmd = [
            str(binary),
            f"--kubeconfig={host.private_kubeconfig(kube)}",
            "--host=127.0.0.1",
            f"--port={port}",
            f"--health-addr=127.0.0.1:{health}",
            "--metrics-addr=0",
            # its Prometheus exporter always listens on every interface (":PORT"): use the
            # OpenTelemetry one instead, pointed at a closed loopback port and never pushing,
            # so that nothing of Gatekeeper listens beyond loopback
            "--metrics-backend=opentelemetry",
            "--otlp-endpoint=127.0.0.1:9",
            "--otlp-metric-interval=8760h",
            f"--cert-dir={certs}",
            "--disable-cert-rotation",
            "--operation=webhook",
            "--operation=audit",
            "--operation=status",
            "--operation=generate",  # creates the CRD of each ConstraintTemplate
            f"--exempt-namespace={NAMESPACE}",
            "--disable-opa-builtin={http.send}",
            "--shutdown-delay=0",
            "--logtostderr",
        ]
        pod = _ANCHOR_POD["metadata"]["name"]
        env = {"POD_NAMESPACE": NAMESPACE, "POD_NAME": pod, "NAMESPACE": NAMESPACE,
               "CONTAINER_NAME": "manager"}  # fmt: skip
        pid = MANAGER.start(kube, cmd, env)
        MANAGER.write_port(kube, "health", health)
        progress(f"gatekeeper: manager started (pid {pid}, webhook 127.0.0.1:{port})")
        host.apply(kube, "gatekeeper", [_webhook_configuration(port, ca[0].read_bytes())])

    def uninstall(self, kube: Kube, progress: Callable[[str], None]) -> None:
        MANAGER.stop(kube, progress)
        _kubectl(kube, "delete", "validatingwebhookconfiguration", WEBHOOK, "--ignore-not-found")
        progress("gatekeeper: removing its CRDs (constraints and templates with them)")
        names = _kubectl(kube, "get", "crd", "-o", "name").split()
        ours = [n for n in names if n.endswith("gatekeeper.sh")]
        if ours:
            _kubectl(kube, "delete", "--ignore-not-found", "--wait=true", "--timeout=60s", *ours)
        _kubectl(kube, "delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=true",
                 "--timeout=60s")  # fmt: skip
        (MANAGER.folder(kube) / "health.port").unlink(missing_ok=True)
        progress("gatekeeper: removed")


@dataclass(frozen=True)
class WebhookConfigured:
    def evaluate(self, kube: Kube) -> tuple[bool, str]:
        from kubelab.addons.base import _get

        obj = _get(kube, "admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration",
                   WEBHOOK, None)  # fmt: skip
        return obj is not None, f"webhook configuration {'present' if obj else 'missing'}"


ADDON = AddOn(
    name="gatekeeper",
    summary="OPA Gatekeeper: admission policies as ConstraintTemplates and Constraints",
    chart=Chart(
        name="gatekeeper",
        version="3.23.1",
        repo="https://open-policy-agent.github.io/gatekeeper/charts",
    ),
    app_version=VERSION.removeprefix("v"),
    namespace=NAMESPACE,
    release="gatekeeper",
    ready=(
        DeploymentAvailable(NAMESPACE, "gatekeeper-controller-manager"),
        DeploymentAvailable(NAMESPACE, "gatekeeper-audit"),
        CRDEstablished(TEMPLATES_CRD),
    ),
    served=(CRDEstablished(TEMPLATES_CRD),),
    needs=("containers",),  # helm's Pods must really run to serve the webhook
    timeout=300.0,
    local=HostProcess(),
    local_ready=(
        CRDEstablished(TEMPLATES_CRD),
        WebhookConfigured(),
        HTTPReady(MANAGER, "health", "/readyz"),
    ),
)
