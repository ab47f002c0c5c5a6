# ruff: noqa: E501 - the lab below holds commands verbatim, as a lesson would show them
"""The lab format v2, written as an author would and run by the real runner against the embedded
cluster: one shell session (variables, heredocs), a command that must fail with "forbidden" between
two that must succeed, a lab user's kubeconfig in the work folder and expectations acting as that
user, an EndpointSlice whose two endpoints are matched in either order, an HPA's
`desiredReplicas >= 2`, and the name of a Job made from a CronJob captured and reused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from kubelab.kube.client import Kube
from kubelab.run.lock import RunLock

LAB = r"""
apiVersion: kubelab.dev/v1beta1
kind: Lab
metadata: {name: features, title: Format v2 features}
spec:
  namespace: fmt-test
  timeout: 60s
  steps:
    - id: setup
      title: A namespace, a read-only user and a kubeconfig for her in the work folder
      run:
        - export KUBELAB_WORK="${KUBELAB_WORK:-$HOME/.local/state/kubelab/work/features}"
        - mkdir -p "$KUBELAB_WORK" && cd "$KUBELAB_WORK"
        - kubectl create namespace fmt-test
        - kubectl -n fmt-test create serviceaccount jane
        - kubectl -n fmt-test create rolebinding jane-view --clusterrole=view --serviceaccount=fmt-test:jane
        - SERVER=$(kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}')
        - kubectl config view --minify --raw -o jsonpath='{.clusters[0].cluster.certificate-authority-data}' | base64 -d > ca.crt
        - kubectl config set-cluster lab --server="$SERVER" --certificate-authority=ca.crt --embed-certs --kubeconfig jane.kubeconfig
        - kubectl config set-credentials jane --token="$(kubectl -n fmt-test create token jane)" --kubeconfig jane.kubeconfig
        - kubectl config set-context jane --cluster=lab --user=jane --namespace=fmt-test --kubeconfig jane.kubeconfig
        - kubectl config use-context jane --kubeconfig jane.kubeconfig
        - |
          cat <<EOF | kubectl apply -f -
          apiVersion: v1
          kind: ConfigMap
          metadata: {name: settings, namespace: fmt-test}
          data: {made-by: "$SERVER"}
          EOF
      expect:
        - match: {apiVersion: v1, kind: ConfigMap, metadata: {name: settings},
                  data: {made-by: {$regex: '^https://127\.0\.0\.1:'}}}
          as: jane.kubeconfig
        - command: {run: kubectl auth can-i list pods -n fmt-test, contains: ["yes"]}
          as: jane.kubeconfig

    - id: forbidden
      title: Jane may read her namespace, not the cluster
      run:
        - kubectl --kubeconfig "$KUBELAB_WORK/jane.kubeconfig" get configmaps
        - cmd: kubectl --kubeconfig "$KUBELAB_WORK/jane.kubeconfig" get pods -n kube-system
          exit: nonzero
          contains: [forbidden]
        - cmd: kubectl --kubeconfig "$KUBELAB_WORK/jane.kubeconfig" auth whoami
          contains: ["system:serviceaccount:fmt-test:jane"]

    - id: endpoints
      title: Two endpoints, matched in either order
      run:
        - kubectl -n fmt-test run web-a --image=localhost/kubelab/probe-test-app:v1 --labels=app=web
        - kubectl -n fmt-test run web-b --image=localhost/kubelab/probe-test-app:v1 --labels=app=web
        - kubectl -n fmt-test create service clusterip web --tcp=80:8080
      expect:
        - count:
            apiVersion: discovery.k8s.io/v1
            kind: EndpointSlice
            selector: kubernetes.io/service-name=web
            equals: 1
            where:
              endpoints:
                $unordered:
                  - targetRef: {name: web-b}
                  - targetRef: {name: web-a}
        - count:
            apiVersion: discovery.k8s.io/v1
            kind: EndpointSlice
            selector: kubernetes.io/service-name=web
            equals: 1
            where:
              endpoints: {$includes: [{targetRef: {name: web-b}}], $len: {$gte: 2}}

    - id: autoscaler
      title: An autoscaler wants at least two replicas
      run:
        - kubectl -n fmt-test create deployment api --image=localhost/kubelab/probe-test-app:v1 --replicas=1
        - kubectl -n fmt-test autoscale deployment api --min=2 --max=4 --cpu-percent=50
      expect:
        - match:
            apiVersion: autoscaling/v2
            kind: HorizontalPodAutoscaler
            metadata: {name: api}
            status: {desiredReplicas: {$gte: 2}}
          timeout: 45s

    - id: cronjob
      title: A Job made from a CronJob, its name captured
      run:
        - kubectl -n fmt-test create cronjob hello --image=localhost/kubelab/stress:v1 --schedule="0 0 1 1 *" -- stress --help
        - cmd: kubectl -n fmt-test create job --from=cronjob/hello hello-now
          capture: {JOB: 'job\.batch/(\S+) created'}
        - kubectl -n fmt-test get job/$JOB -o name
      expect:
        - match:
            apiVersion: batch/v1
            kind: Job
            metadata:
              name: ${JOB}
              ownerReferences: {$some: {kind: CronJob, name: hello}}
            status: {succeeded: 1}
      capture:
        OWNER: {apiVersion: batch/v1, kind: Job, name: hello-now, path: 'metadata.ownerReferences[0].name'}

    - id: logs
      title: The Job's logs, by the captured name
      requires: [containers]
      run:
        - cmd: kubectl -n fmt-test logs job/$JOB
          contains: [usage]

  cleanup:
    run:
      - kubectl delete namespace fmt-test --ignore-not-found --wait=false
    expect:
      - absent: {apiVersion: v1, kind: Namespace, name: fmt-test}
"""

SLOW = """
apiVersion: kubelab.dev/v1beta1
kind: Lab
metadata: {name: slow, title: A step that waits}
spec:
  namespace: slow-test
  steps:
    - id: namespace
      title: A namespace with a ConfigMap
      run:
        - kubectl create namespace slow-test
        - kubectl -n slow-test create configmap stays --from-literal=a=b
    - id: never
      title: Waits for what never comes
      timeout: 90s
      run: kubectl -n slow-test get configmaps
      expect:
        - absent: {apiVersion: v1, kind: ConfigMap, name: stays}
  cleanup:
    run:
      - kubectl delete namespace slow-test --ignore-not-found --wait=false
    expect:
      - absent: {apiVersion: v1, kind: Namespace, name: slow-test}
"""


def _labs(tmp_path: Path, name: str, text: str) -> Path:
    folder = tmp_path / "labs" / name
    folder.mkdir(parents=True)
    (folder / "lab.yaml").write_text(textwrap.dedent(text).lstrip())
    return folder.parent


@pytest.fixture
def lab_env(embedded_cluster, tmp_path):
    return {
        **embedded_cluster.env,
        "KUBELAB_LABS": str(_labs(tmp_path, "features", LAB)),
        "KUBELAB_STATE": str(tmp_path / "state"),
    }


def test_format_v2_features_on_a_real_api_server(embedded_cluster, kubelab_cli, lab_env, tmp_path):
    report_file = tmp_path / "report.json"
    proc = kubelab_cli("run", "features", "--report", str(report_file), env=lab_env)
    report = json.loads(report_file.read_text())
    statuses = {s["id"]: s["status"] for s in report["steps"]}
    containers = "needs a container runtime" not in json.dumps(report)
    assert statuses == {
        "setup": "passed",
        "forbidden": "passed",
        "endpoints": "passed",
        "autoscaler": "passed",
        "cronjob": "passed",
        "logs": "passed" if containers else "skipped",
    }, proc.stdout[-5000:]
    assert proc.returncode == 0, proc.stdout[-5000:]
    steps = {s["id"]: s for s in report["steps"]}
    assert steps["cronjob"]["captured"] == {"JOB": "hello-now", "OWNER": "hello"}
    assert steps["cronjob"]["commands"][2]["output"].strip() == "job.batch/hello-now"
    # the work folder held jane's kubeconfig during the run and is gone after the cleanup
    assert not (tmp_path / "state" / "work" / "features").exists()
    assert report["cleanup"]["status"] == "passed"


def test_a_command_that_must_fail_but_succeeds_stops_the_step_naming_it(
    embedded_cluster, kubelab_cli, tmp_path
):
    lab = LAB.replace("get pods -n kube-system", "get configmaps -n fmt-test")
    env = {
        **embedded_cluster.env,
        "KUBELAB_LABS": str(_labs(tmp_path, "features", lab)),
        "KUBELAB_STATE": str(tmp_path / "state"),
    }
    report_file = tmp_path / "r.json"
    kubelab_cli("run", "features", "--report", str(report_file), env=env)
    steps = {s["id"]: s for s in json.loads(report_file.read_text())["steps"]}
    forbidden = steps["forbidden"]
    assert forbidden["status"] == "failed"
    assert forbidden["reason"].startswith("`kubectl --kubeconfig")
    assert "exited 0 but must fail" in forbidden["reason"]
    assert "did not print 'forbidden'" in forbidden["reason"]
    assert len(forbidden["commands"]) == 2  # the third command never ran


def test_check_upto_stops_at_the_first_failure(embedded_cluster, kubelab_cli, lab_env):
    kubelab_cli("reset", "features", env=lab_env)
    proc = kubelab_cli("check", "features", "--upto", "endpoints", env=lab_env)
    assert proc.returncode == 1
    assert "(setup)" in proc.stdout and "(forbidden)" not in proc.stdout, proc.stdout
    assert "hint:" in proc.stdout and "kubectl create namespace fmt-test" in proc.stdout


def test_a_second_run_on_the_same_cluster_is_refused_naming_the_first(
    embedded_cluster, kubelab_cli, lab_env
):
    from kubelab.kube.context import pinned_kubeconfig

    pinned = pinned_kubeconfig(embedded_cluster.context)
    try:
        kube = Kube(pinned, embedded_cluster.context)
        with RunLock(kube, "another-lab"):
            proc = kubelab_cli("run", "features", env=lab_env)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert "another kubelab run works on this cluster: lab another-lab" in proc.stderr
        assert f"pid {os.getpid()}" in proc.stderr
    finally:
        pinned.unlink(missing_ok=True)


def test_sigterm_during_a_run_cleans_up_and_leaves_no_credentials(embedded_cluster, tmp_path):
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    env = {
        **embedded_cluster.env,
        "KUBELAB_LABS": str(_labs(tmp_path, "slow", SLOW)),
        "KUBELAB_STATE": str(tmp_path / "state"),
        "TMPDIR": str(private_tmp),
        "COLUMNS": "200",
    }
    kubelab = Path(sys.executable).with_name("kubelab")
    proc = subprocess.Popen(
        [str(kubelab), "run", "slow"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while embedded_cluster.kubectl("-n", "slow-test", "get", "configmap", "stays",
                                   check=False).returncode != 0:  # fmt: skip
        assert time.monotonic() < deadline, "the run never reached its waiting step"
        time.sleep(0.3)
    assert list(private_tmp.rglob("kubelab-*.kubeconfig")), "the run keeps its kubeconfig in TMPDIR"
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=90)
    assert proc.returncode == 128 + signal.SIGTERM, out
    assert "SIGTERM: stopped; cleaning up" in out and "interrupted by SIGTERM" in out
    assert [p for p in private_tmp.rglob("*") if not p.is_dir()] == [], "files outlived the run"
    gone = embedded_cluster.kubectl("get", "namespace", "slow-test", "-o",
                                    "jsonpath={.status.phase}", check=False)  # fmt: skip
    assert gone.returncode != 0 or gone.stdout == "Terminating", gone.stdout
