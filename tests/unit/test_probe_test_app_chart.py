"""The course's Helm chart for probe-test-app (labs/helm/probe-test-app), with the real helm
(the cached one `make tools` builds): `helm lint`, `helm template` with the values the lessons
use, and values.schema.json rejecting bad values with its own message. No cluster needed: the
helm lab installs, upgrades, tests and rolls the chart back on the embedded cluster
(tests/e2e/test_labs.py)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from kubelab.embedded import build

REPO = Path(__file__).resolve().parents[2]
LAB = REPO / "labs" / "helm"
CHART = LAB / "probe-test-app"


@pytest.fixture(scope="module")
def helm() -> str:
    cached = build.bin_dir() / "helm"
    found = str(cached) if cached.is_file() else shutil.which("helm")
    if found is None:
        pytest.skip("helm is not built yet (`make tools`) and not on PATH")
    return found


def run(helm: str, *args: str) -> subprocess.CompletedProcess[str]:
    # no cluster and no repositories: a private HOME-less config so nothing of the user's leaks in
    return subprocess.run(
        [helm, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin", "HELM_CACHE_HOME": "/nonexistent/cache",
             "HELM_CONFIG_HOME": "/nonexistent/config", "HELM_DATA_HOME": "/nonexistent/data",
             "KUBECONFIG": "/nonexistent/kubeconfig"},
    )  # fmt: skip


def render(helm: str, *args: str) -> dict[tuple[str, str], dict]:
    proc = run(helm, "template", "demo", str(CHART), *args)
    assert proc.returncode == 0, proc.stderr
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def test_lint_is_clean(helm):
    proc = run(helm, "lint", "--strict", str(CHART))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in proc.stdout
    assert "[WARNING]" not in proc.stdout and "[ERROR]" not in proc.stdout


def test_defaults_render_a_pinned_non_root_app_a_service_and_a_test_hook(helm):
    objs = render(helm)
    assert set(objs) == {
        ("Deployment", "demo-probe-test-app"),
        ("Service", "demo-probe-test-app"),
        ("Pod", "demo-probe-test-app-test"),
    }
    deploy = objs["Deployment", "demo-probe-test-app"]
    assert deploy["spec"]["replicas"] == 2
    pod = deploy["spec"]["template"]["spec"]
    (app,) = pod["containers"]
    assert app["image"] == "localhost/kubelab/probe-test-app:v1"
    assert app["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
    assert app["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    labels = deploy["spec"]["selector"]["matchLabels"]
    assert labels.items() <= deploy["spec"]["template"]["metadata"]["labels"].items()
    svc = objs["Service", "demo-probe-test-app"]
    assert svc["spec"]["type"] == "ClusterIP"
    assert svc["spec"]["selector"] == labels
    assert svc["spec"]["ports"] == [{"name": "http", "port": 8000, "targetPort": "http"}]
    test = objs["Pod", "demo-probe-test-app-test"]
    assert test["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert "http://demo-probe-test-app:8000" in test["spec"]["containers"][0]["args"][0]
    for spec in (pod, test["spec"]):  # the course's rules for every workload it ships
        assert spec["securityContext"]["runAsNonRoot"] is True
        for c in spec["containers"]:
            assert c["resources"]["requests"], c["name"]
            assert not c["image"].endswith(":latest") and ":" in c["image"], c["image"]
            assert c["securityContext"]["allowPrivilegeEscalation"] is False


def test_values_change_what_they_say(helm):
    objs = render(
        helm,
        "--set", "image.tag=v2", "--set", "replicaCount=4", "--set", "service.type=NodePort",
        "--set", "probes.liveness.enabled=false", "--set", "probes.readiness.periodSeconds=2",
    )  # fmt: skip
    deploy = objs["Deployment", "demo-probe-test-app"]
    (app,) = deploy["spec"]["template"]["spec"]["containers"]
    assert deploy["spec"]["replicas"] == 4
    assert app["image"] == "localhost/kubelab/probe-test-app:v2"
    assert "livenessProbe" not in app
    assert app["readinessProbe"]["periodSeconds"] == 2
    assert objs["Service", "demo-probe-test-app"]["spec"]["type"] == "NodePort"
    test_script = objs["Pod", "demo-probe-test-app-test"]["spec"]["containers"][0]["args"][0]
    assert 'version = "v2"' in test_script  # the test expects the version the values ask for


def test_autoscaling_adds_an_hpa_and_leaves_replicas_to_it(helm):
    objs = render(helm, "--set", "autoscaling.enabled=true", "--set", "autoscaling.maxReplicas=7")
    hpa = objs["HorizontalPodAutoscaler", "demo-probe-test-app"]
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1", "kind": "Deployment", "name": "demo-probe-test-app",
    }  # fmt: skip
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (1, 7)
    assert "replicas" not in objs["Deployment", "demo-probe-test-app"]["spec"]


def test_the_labs_values_file_is_valid(helm):
    objs = render(helm, "-f", str(LAB / "values-v2.yaml"))
    deploy = objs["Deployment", "demo-probe-test-app"]
    assert deploy["spec"]["replicas"] == 3
    (app,) = deploy["spec"]["template"]["spec"]["containers"]
    # values merge deeply: the file sets the period, the chart's default still gives the path
    assert app["readinessProbe"]["periodSeconds"] == 2
    assert app["readinessProbe"]["httpGet"]["path"] == "/readyz"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--set", "service.type=Loadbalancer"],
         "at '/service/type': value must be one of 'ClusterIP', 'NodePort', 'LoadBalancer'"),
        (["--set", "replicas=3"], "at '': additional properties 'replicas' not allowed"),
        (["--set", "replicaCount=-1"], "at '/replicaCount': minimum: got -1, want 0"),
        (["--set-string", "autoscaling.enabled=yes"],
         "at '/autoscaling/enabled': got string, want boolean"),
        (["--set", "image.tag=bad tag"], "at '/image/tag': 'bad tag' does not match pattern"),
        (["--set", "probes.liveness.path=livez"],
         "at '/probes/liveness/path': 'livez' does not match pattern '^/'"),
        (["--set", "autoscaling.maxReplicas=0"],
         "at '/autoscaling/maxReplicas': minimum: got 0, want 1"),
    ],
)  # fmt: skip
def test_schema_rejects_a_bad_value_with_its_message(helm, flags, message):
    for command in (["template", "demo"], ["lint"]):
        proc = run(helm, *command, str(CHART), *flags)
        assert proc.returncode != 0, (command, proc.stdout)
        assert message in proc.stdout + proc.stderr, (command, proc.stdout + proc.stderr)
        assert "values don't meet the specifications of the schema" in proc.stdout + proc.stderr


def test_a_template_check_the_schema_cannot_express(helm):
    proc = run(
        helm, "template", "demo", str(CHART), "--set", "autoscaling.enabled=true",
        "--set", "autoscaling.minReplicas=4", "--set", "autoscaling.maxReplicas=3",
    )  # fmt: skip
    assert proc.returncode != 0
    assert "autoscaling.maxReplicas must be at least autoscaling.minReplicas" in proc.stderr
