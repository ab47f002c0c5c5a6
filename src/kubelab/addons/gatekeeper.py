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
import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kubelab.addons.base import AddOn, Chart, CRDEstablished, DeploymentAvailable
from kubelab.errors import KubelabError

if TYPE_CHECKING:
    from kubelab.kube.client import Kube

VERSION = "v3.23.1"
NAMESPACE = "gatekeeper-system"
WEBHOOK = "gatekeeper-validating-webhook-configuration"
TEMPLATES_CRD = "constrainttemplates.templates.gatekeeper.sh"
STOP_TIMEOUT = 15.0


def _cluster(kube: Kube) -> str:
    from kubelab.embedded.cluster import CONTEXT_PREFIX

    return kube.context.removeprefix(CONTEXT_PREFIX)


def _dir(kube: Kube) -> Path:
    """Everything the host process owns; inside the cluster's folder, so `cluster down` finds
    (and stops) it by its command line too."""
    from kubelab.embedded.cluster import cluster_dir

    return cluster_dir(_cluster(kube)) / "addons" / "gatekeeper"


def _pid(kube: Kube) -> int | None:
    try:
        pid = int((_dir(kube) / "gatekeeper.pid").read_text())
    except (OSError, ValueError):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        cmdline = ""
    if str(_dir(kube)) not in cmdline:  # gone, or the pid was reused by another program
        return None
    return pid


def _kubectl(kube: Kube, *args: str, stdin: str | None = None, check: bool = True) -> str:
    from kubelab.embedded import build

    cmd = [str(build.bin_dir() / "kubectl"), "--kubeconfig", str(kube.kubeconfig),
           "--context", kube.context, *args]  # fmt: skip
    try:
        proc = subprocess.run(
            cmd, input=stdin, capture_output=True, text=True, timeout=120, check=False
        )
    except subprocess.TimeoutExpired:
        raise KubelabError(
            f"gatekeeper: `kubectl {' '.join(args)}` did not finish within 120 s",
            "is the embedded cluster up? `kubelab cluster status`",
        ) from None
    if check and proc.returncode != 0:
        raise KubelabError(
            f"gatekeeper: `kubectl {' '.join(args)}` failed: {proc.stderr.strip()[-800:]}",
            "is the embedded cluster up? `kubelab cluster status`",
        )
    return proc.stdout


def _module_dir() -> Path:
    """The pinned Gatekeeper module (its CRDs), from the Go module cache (downloaded once)."""
    from kubelab.embedded import build

    proc = subprocess.run(
        ["go", "mod", "download", "-json", f"github.com/open-policy-agent/gatekeeper/v3@{VERSION}"],
        cwd=build.tools_dir() / "gatekeeper", capture_output=True, text=True, timeout=300,
        check=False,
    )  # fmt: skip
    try:
        return Path(json.loads(proc.stdout)["Dir"])
    except (ValueError, KeyError):
        raise KubelabError(
            f"gatekeeper: no Gatekeeper {VERSION} module: {proc.stderr.strip()[-400:]}",
            "run `make tools` (needs Go and the Go module proxy)",
        ) from None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
        return _pid(kube) is not None

    def install(self, kube: Kube, progress: Callable[[str], None]) -> None:
        from kubelab.embedded import build, pki
        from kubelab.embedded.cluster import private_kubeconfig

        binary = build.bin_dir() / "gatekeeper"
        if not binary.is_file():
            raise KubelabError(
                "gatekeeper: the Gatekeeper manager is not built",
                "run `make tools` (builds it from the Go module proxy)",
            )
        if _pid(kube) is not None:
            progress("gatekeeper: already running")
            return
        folder = _dir(kube)
        certs = folder / "certs"
        certs.mkdir(parents=True, exist_ok=True)
        ca = pki.make_ca(certs, "ca", "kubelab-gatekeeper-webhook-ca")
        pki.issue(certs, "tls", ca, "gatekeeper-webhook", client=False, server=True,
                  ips=("127.0.0.1",))  # fmt: skip
        crds = _module_dir() / "charts" / "gatekeeper" / "crds"
        progress(f"gatekeeper: applying its CRDs ({VERSION})")
        _kubectl(kube, "apply", "--server-side", "--force-conflicts", "-f", str(crds))
        _kubectl(kube, "wait", "--for=condition=Established", "--timeout=60s",
                 f"crd/{TEMPLATES_CRD}", "crd/configs.config.gatekeeper.sh")  # fmt: skip
        ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE,
              "labels": {"admission.gatekeeper.sh/ignore": "no-self-managing"}}}  # fmt: skip
        _kubectl(kube, "apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List",
                 "items": [ns, _ANCHOR_POD]}))  # fmt: skip
        port, health = _free_port(), _free_port()
        cmd = [
            str(binary),
            f"--kubeconfig={private_kubeconfig(_cluster(kube))}",
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
        env = {**os.environ, "POD_NAMESPACE": NAMESPACE, "POD_NAME": pod,
               "NAMESPACE": NAMESPACE, "CONTAINER_NAME": "manager"}  # fmt: skip
        log = open(folder / "gatekeeper.log", "ab")  # noqa: SIM115 - the child keeps it
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True, cwd=folder)  # fmt: skip
        log.close()
        (folder / "gatekeeper.pid").write_text(str(proc.pid))
        (folder / "health.port").write_text(str(health))
        progress(f"gatekeeper: manager started (pid {proc.pid}, webhook 127.0.0.1:{port})")
        _kubectl(kube, "apply", "-f", "-",
                 stdin=json.dumps(_webhook_configuration(port, ca[0].read_bytes())))  # fmt: skip

    def uninstall(self, kube: Kube, progress: Callable[[str], None]) -> None:
        stop(_dir(kube), progress)
        _kubectl(kube, "delete", "validatingwebhookconfiguration", WEBHOOK, "--ignore-not-found")
        progress("gatekeeper: removing its CRDs (constraints and templates with them)")
        names = _kubectl(kube, "get", "crd", "-o", "name").split()
        ours = [n for n in names if n.endswith("gatekeeper.sh")]
        if ours:
            _kubectl(kube, "delete", "--ignore-not-found", "--wait=true", "--timeout=60s", *ours)
        _kubectl(kube, "delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=true",
                 "--timeout=60s")  # fmt: skip
        with contextlib.suppress(OSError):
            for f in ("gatekeeper.pid", "health.port"):
                (_dir(kube) / f).unlink(missing_ok=True)
        progress("gatekeeper: removed")


def stop(folder: Path, progress: Callable[[str], None] = lambda _: None) -> None:
    """Stop the host process whose files are in `folder` (SIGTERM, then SIGKILL), by its pid."""
    try:
        pid = int((folder / "gatekeeper.pid").read_text())
        alive = str(folder) in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except (OSError, ValueError):
        return
    if not alive:
        return
    progress(f"gatekeeper: stopping the manager (pid {pid})")
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        if not Path(f"/proc/{pid}").exists() or _zombie(pid):
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


@dataclass(frozen=True)
class HostReady:
    """The host process answers its readiness endpoint."""

    def evaluate(self, kube: Kube) -> tuple[bool, str]:
        folder = _dir(kube)
        if _pid(kube) is None:
            return (
                False,
                f"the Gatekeeper manager is not running (see its log: {folder / 'gatekeeper.log'})",
            )
        try:
            port = int((folder / "health.port").read_text())
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                ok = r.status == 200
        except (OSError, ValueError):
            ok = False
        return ok, f"manager {'ready' if ok else 'not ready yet'}"


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
    local_ready=(CRDEstablished(TEMPLATES_CRD), WebhookConfigured(), HostReady()),
)
