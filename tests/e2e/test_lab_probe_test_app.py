"""The first lab, end to end, through the same runner learners use, on the embedded cluster:
every step that needs no container runtime passes; the others are skipped with the reason."""

from __future__ import annotations

import json

from kubelab.lab.loader import load_lab

CONTAINER_STEPS = {
    "port-forward",
    "exec",
    "service-http",
    "liveness",
    "readiness-off",
    "readiness-heal",
}


def test_probe_test_app_lab_runs_on_the_embedded_cluster(embedded_cluster, kubelab_cli, tmp_path):
    report_file = tmp_path / "report.json"
    junit_file = tmp_path / "report.xml"
    proc = kubelab_cli(
        "run", "probe-test-app", "--report", str(report_file), env=embedded_cluster.env
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr
    assert f"context: {embedded_cluster.context}" in proc.stdout
    report = json.loads(report_file.read_text())
    statuses = {s["id"]: s for s in report["steps"]}
    lab = load_lab("probe-test-app").lab
    assert list(statuses) == [s.id for s in lab.steps]
    for step_id, step in statuses.items():
        if step_id in CONTAINER_STEPS:
            assert step["status"] == "skipped", step
            assert "needs a container runtime" in step["reason"]
        else:
            assert step["status"] == "passed", step
    assert report["counts"]["passed"] >= 10
    assert report["cleanup"]["status"] == "passed"

    # cleanup left nothing behind
    left = embedded_cluster.kubectl(
        "get",
        "pods,replicasets,deployments,services,hpa",
        "-n",
        "default",
        "-l",
        "app.kubernetes.io/name=probe-test-app",
        "-o",
        "name",
    ).stdout
    assert left.strip() == ""
    assert (
        embedded_cluster.kubectl("get", "pods", "-l", "quarantine=true", "-o", "name").stdout == ""
    )

    # the same run as JUnit for CI, one step at a time
    proc = kubelab_cli(
        "run",
        "probe-test-app",
        "--step",
        "pod",
        "--report",
        str(junit_file),
        env=embedded_cluster.env,
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "<testsuite" in junit_file.read_text()


def test_check_my_work_follows_what_the_learner_typed(embedded_cluster, kubelab_cli):
    env = embedded_cluster.env
    folder = load_lab("probe-test-app").folder
    before = kubelab_cli("check", "probe-test-app", "--step", "pod", env=env)
    assert before.returncode == 1
    assert "Pod probe-test-app not found" in before.stdout
    assert "kubectl apply -f probe-test-app-pod.yaml" in before.stdout  # the hint
    try:
        embedded_cluster.kubectl("apply", "-f", str(folder / "probe-test-app-pod.yaml"))
        embedded_cluster.kubectl(
            "wait", "--for=condition=Ready", "pod/probe-test-app", "--timeout=60s"
        )
        after = kubelab_cli("check", "probe-test-app", "--step", "pod", env=env)
        assert after.returncode == 0, after.stdout
        assert "passed" in after.stdout
    finally:
        reset = kubelab_cli("reset", "probe-test-app", env=env)
        assert reset.returncode == 0, reset.stdout + reset.stderr
    again = kubelab_cli("reset", "probe-test-app", env=env)
    assert again.returncode == 0, again.stdout + again.stderr


def test_labs_and_doctor_see_the_embedded_flavour(embedded_cluster, kubelab_cli):
    labs = kubelab_cli("labs", env=embedded_cluster.env)
    assert labs.returncode == 0, labs.stderr
    assert "probe-test-app" in labs.stdout
    assert "runs no containers" in labs.stdout
    doctor = kubelab_cli("doctor", env=embedded_cluster.env)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert "kubelab embedded cluster" in doctor.stdout
    assert "cluster reachable: Kubernetes v1." in doctor.stdout
