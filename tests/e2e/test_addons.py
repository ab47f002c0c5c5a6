"""Add-ons against the embedded cluster, with the real helm: install (idempotent), status and
readiness, the addon:NAME requirement met only when ready, uninstall.

The add-on installed here is a small local chart (tests/fixtures/addons/kubelab-test-addon)
registered at run time: the real metrics-server chart cannot be downloaded on this machine (no
chart repository is reachable), and the embedded cluster's simulated nodes could not run it
anyway. metrics-server's own pins, values and command lines are unit-tested; here its CLI
refusal on a cluster without containers is checked for real.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
import yaml

from kubelab import addons
from kubelab.addons.base import AddOn, Chart, CRDEstablished, DeploymentAvailable
from kubelab.addons.manage import install, status, uninstall
from kubelab.errors import KubelabError
from kubelab.session import Session

CHART = Path(__file__).resolve().parents[1] / "fixtures" / "addons" / "kubelab-test-addon"
NS = "kubelab-addon-test"
NAME = "kubelab-test"
CRD = "widgets.test.kubelab.dev"

READY_ADDON = AddOn(
    name=NAME,
    summary="a local test chart standing in for a real add-on",
    chart=Chart(str(CHART), "0.1.0"),
    app_version="0.1.0",
    namespace=NS,
    release=NAME,
    ready=(DeploymentAvailable(NS, NAME), CRDEstablished(CRD)),
    timeout=120,
)
# the same add-on with Pods that no node accepts: installed, never ready
STUCK_ADDON = dataclasses.replace(
    READY_ADDON, values={"nodeSelector": {"kubelab.dev/no-such-node": "true"}}
)


@pytest.fixture
def session(embedded_cluster):
    if not (embedded_cluster.bin_dir / "helm").is_file() and shutil.which("helm") is None:
        pytest.skip("helm is not built yet (`make tools`)")
    with Session.open() as opened:
        yield opened
    addons.unregister(NAME)
    # leave the shared cluster as found, whatever the test did
    embedded_cluster.kubectl("delete", "namespace", NS, "--ignore-not-found", "--wait=false")
    embedded_cluster.kubectl("delete", "crd", CRD, "--ignore-not-found")


def _generation(cluster) -> str:
    proc = cluster.kubectl(
        "-n", NS, "get", "deployment", NAME, "-o", "jsonpath={.metadata.generation}"
    )
    return proc.stdout


def test_install_status_requirement_and_uninstall(embedded_cluster, session):
    lines: list[str] = []
    caps = session.capabilities

    addons.register(STUCK_ADDON)
    assert status(STUCK_ADDON, session.kube, session.flavour).installed is False
    ok, reason = caps.check(f"addon:{NAME}")
    assert not ok and f"kubelab addons install {NAME}" in reason

    # installed but its Pods never run: the install waits until its deadline and says why
    with pytest.raises(KubelabError) as info:
        install([NAME], session, lines.append, timeout=3)
    assert "is not ready after 3s" in info.value.message
    assert f"deployment {NS}/{NAME}: 0/1 available" in info.value.message
    assert any(line.startswith(f"{NAME}: waiting") for line in lines)  # the progress line
    st = status(STUCK_ADDON, session.kube, session.flavour)
    assert (st.source, st.ready, st.revision) == ("kubelab", False, 1)
    caps.forget()
    ok, reason = caps.check(f"addon:{NAME}")
    assert not ok and "not ready" in reason

    # fixed values: the same release is upgraded and becomes ready
    addons.register(READY_ADDON)
    [st] = install([NAME], session, lines.append)
    assert (st.source, st.ready, st.revision) == ("kubelab", True, 2)
    caps.forget()
    assert caps.check(f"addon:{NAME}") == (True, "")

    # installing again changes nothing on the cluster (a new helm revision, the same objects)
    generation = _generation(embedded_cluster)
    [again] = install([NAME], session, lines.append)
    assert (again.ready, again.revision) == (True, 3)
    assert _generation(embedded_cluster) == generation

    [gone] = uninstall([NAME], session, lines.append)
    assert gone.installed is False
    caps.forget()
    assert caps.check(f"addon:{NAME}")[0] is False
    absent = embedded_cluster.kubectl("-n", NS, "get", "deployment", NAME, check=False)
    assert absent.returncode != 0 and "NotFound" in absent.stderr
    # and again: nothing to do, no error
    [still] = uninstall([NAME], session, lines.append)
    assert still.installed is False
    assert lines[-1] == f"{NAME}: not installed"


def test_metrics_server_on_the_embedded_cluster(embedded_cluster, session, kubelab_cli):
    """Simulated nodes cannot run it (a clear refusal); with a real node the embedded cluster
    runs metrics-server itself, so there is nothing to install."""
    proc = kubelab_cli("addons", "install", "metrics-server", env=embedded_cluster.env)
    assert "Traceback" not in proc.stdout + proc.stderr
    status_proc = kubelab_cli("addons", "status", "metrics-server", env=embedded_cluster.env)
    assert "provided by the cluster" in status_proc.stdout
    doctor = kubelab_cli("doctor", env=embedded_cluster.env)
    assert "add-on metrics-server: provided by the cluster" in " ".join(doctor.stdout.split())
    if session.flavour.containers:
        assert proc.returncode == 0, proc.stderr
        assert "metrics-server: provided by the cluster" in " ".join(proc.stdout.split())
    else:
        assert proc.returncode == 2
        assert "cannot install metrics-server" in proc.stderr
        assert "runs no containers" in proc.stderr
        assert status_proc.returncode == 1  # not ready: nothing serves the metrics API


def test_status_as_a_lab_user_checks_as_the_training_cluster(
    embedded_cluster, tmp_path, kubelab_cli
):
    """An RBAC lab leaves the learner on a user's context of the training cluster."""
    config = yaml.safe_load(embedded_cluster.kubeconfig.read_text())
    training = next(c for c in config["contexts"] if c["name"] == embedded_cluster.context)
    config["users"].append({"name": "jane", "user": {"token": "jane-has-no-real-token"}})
    config["contexts"].append(
        {"name": "jane", "context": {"cluster": training["context"]["cluster"], "user": "jane"}}
    )
    config["current-context"] = "jane"
    copy = tmp_path / "config"
    copy.write_text(yaml.safe_dump(config))
    copy.chmod(0o600)
    proc = kubelab_cli("addons", "status", env={**embedded_cluster.env, "KUBECONFIG": str(copy)})
    assert "Traceback" not in proc.stdout + proc.stderr
    expected = (
        f"current context jane is a user of training cluster {embedded_cluster.context}; "
        f"checking as {embedded_cluster.context}"
    )
    assert expected in " ".join(proc.stdout.split()), proc.stdout + proc.stderr
    assert "metrics-server" in proc.stdout
