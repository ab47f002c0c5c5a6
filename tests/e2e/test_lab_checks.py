"""Lab 1's "check my work" and the CLI's view of the embedded cluster (every lab runs end to end
in test_labs.py)."""

from __future__ import annotations

from kubelab.lab.loader import load_lab


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
    assert "runnable here" in labs.stdout
    doctor = kubelab_cli("doctor", env=embedded_cluster.env)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert "kubelab embedded cluster" in doctor.stdout
    assert "cluster reachable: Kubernetes v1." in doctor.stdout
    assert "simulated (kwok): " in doctor.stdout
    if embedded_cluster.real_node:
        assert f"running containers: {embedded_cluster.real_node}" in doctor.stdout
