"""The runner against a real API server: passing, failing, skipped steps, expected failures,
diagnostics, reports and cleanup — with a small lab written for the purpose."""

from __future__ import annotations

import json
import textwrap

import pytest

LAB = """\
apiVersion: kubelab.dev/v1beta1
kind: Lab
metadata:
  name: synthetic
  title: Runner behaviour
spec:
  namespace: runner-test
  timeout: 30s
  steps:
    - id: namespace
      title: Make a namespace
      run: kubectl create namespace runner-test
      expect:
        - match: {apiVersion: v1, kind: Namespace, metadata: {name: runner-test},
                  status: {phase: Active}}
    - id: configmap
      title: Store a setting
      run:
        - kubectl -n runner-test create configmap settings --from-literal=colour=blue
      expect:
        - match: {apiVersion: v1, kind: ConfigMap, metadata: {name: settings},
                  data: {colour: blue}}
    - id: forbidden
      title: A service account without rights is refused
      run:
        - cmd: kubectl -n runner-test get secrets --as=system:serviceaccount:runner-test:nobody
          exit: nonzero
          contains: ["forbidden"]
    - id: needs-lb
      title: Something only a LoadBalancer can do
      requires: [loadbalancer]
      run: kubectl get services
      expect:
        - absent: {apiVersion: v1, kind: Service, name: nothing}
    - id: deployment
      title: A Deployment that will never have five ready replicas
      timeout: 4s
      run: kubectl -n runner-test create deployment web --image=localhost/kubelab/probe-test-app:v1
      expect:
        - match: {apiVersion: apps/v1, kind: Deployment, metadata: {name: web},
                  status: {readyReplicas: 5}}
    - id: broken
      title: A command that fails
      run: kubectl apply -f does-not-exist.yaml
      expect:
        - absent: {apiVersion: v1, kind: Pod, name: nothing}
  cleanup:
    run:
      - kubectl delete namespace runner-test --ignore-not-found --wait=false
    expect:
      - absent: {apiVersion: v1, kind: Namespace, name: runner-test}
"""


@pytest.fixture
def synthetic_lab(tmp_path):
    folder = tmp_path / "labs" / "synthetic"
    folder.mkdir(parents=True)
    (folder / "lab.yaml").write_text(textwrap.dedent(LAB))
    return folder.parent


def test_run_reports_each_kind_of_outcome(embedded_cluster, kubelab_cli, synthetic_lab, tmp_path):
    env = {**embedded_cluster.env, "KUBELAB_LABS": str(synthetic_lab)}
    report_file = tmp_path / "r.json"
    proc = kubelab_cli("run", "synthetic", "--report", str(report_file), env=env)
    out = proc.stdout
    assert proc.returncode == 1, out
    steps = {s["id"]: s for s in json.loads(report_file.read_text())["steps"]}
    assert {k: v["status"] for k, v in steps.items()} == {
        "namespace": "passed",
        "configmap": "passed",
        "forbidden": "passed",
        "needs-lb": "skipped",
        "deployment": "failed",
        "broken": "failed",
    }
    assert "LoadBalancer" in steps["needs-lb"]["reason"]
    assert steps["deployment"]["reason"].startswith("not true after 4s: Deployment web")
    broken = "`kubectl apply -f does-not-exist.yaml` exited 1, expected 0"
    assert steps["broken"]["reason"] == broken
    # diagnostics a person can act on: the mismatch, the live fields, events, command output
    assert "but: status.readyReplicas: expected 5, found 1" in out
    assert "live:" in out and "readyReplicas: 1" in out
    assert "recent events:" in out and "ScalingReplicaSet" in out
    assert "does-not-exist.yaml" in out and "exit 1" in out
    # cleanup ran and left nothing
    assert json.loads(report_file.read_text())["cleanup"]["status"] == "passed"
    ns = embedded_cluster.kubectl("get", "namespace", "runner-test", check=False)
    assert ns.returncode != 0 and "NotFound" in ns.stderr


def test_step_from_keep_and_reset(embedded_cluster, kubelab_cli, synthetic_lab):
    env = {**embedded_cluster.env, "KUBELAB_LABS": str(synthetic_lab)}
    first = kubelab_cli("run", "synthetic", "--step", "namespace", "--keep", env=env)
    assert first.returncode == 0, first.stdout
    kept = embedded_cluster.kubectl("get", "namespace", "runner-test", "-o", "name")
    assert kept.stdout.strip() == "namespace/runner-test"
    rest = kubelab_cli("run", "synthetic", "--from", "configmap", "--keep", env=env)
    assert "Store a setting" in rest.stdout and "Make a namespace" not in rest.stdout
    check = kubelab_cli("check", "synthetic", "--step", "configmap", env=env)
    assert check.returncode == 0, check.stdout
    for _ in range(2):  # reset is idempotent
        reset = kubelab_cli("reset", "synthetic", env=env)
        assert reset.returncode == 0, reset.stdout + reset.stderr
    unknown = kubelab_cli("run", "synthetic", "--step", "nope", env=env)
    assert unknown.returncode == 2
    assert "has no step 'nope'" in unknown.stderr and "namespace, configmap" in unknown.stderr
