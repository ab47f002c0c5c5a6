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
from kubelab.addons.manage import (
    helm_release,
    install,
    plans,
    status,
    uninstall,
    values_text,
)
from kubelab.errors import KubelabError
from kubelab.session import Session

CHART = Path(__file__).resolve().parents[1] / "fixtures" / "addons" / "kubelab-test-addon"
NS = "kubelab-addon-test"
NAME = "kubelab-test"
CRD = "widgets.test.kubelab.dev"  # in the chart's templates: helm uninstall deletes it
KEPT_CRD = "gadgets.test.kubelab.dev"  # in its crds/ folder: helm never deletes it

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
    embedded_cluster.kubectl("delete", "crd", CRD, KEPT_CRD, "--ignore-not-found")


def _names(cluster, kind: str, selector: str) -> list[str]:
    proc = cluster.kubectl("get", kind, "-l", selector, "-o", "jsonpath={.items[*].metadata.name}")
    return sorted(proc.stdout.split())


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

    assert st.changed is True
    # what the install created beside the release is labelled, for uninstall to remove
    owned = f"kubelab.dev/addon={NAME}"
    assert _names(embedded_cluster, "namespace", owned) == [NS]
    assert _names(embedded_cluster, "crd", owned) == sorted([CRD, KEPT_CRD])

    # installing again changes nothing: helm is not even run (no new revision), and it says so
    generation = _generation(embedded_cluster)
    [again] = install([NAME], session, lines.append)
    assert (again.ready, again.revision, again.changed) == (True, 2, False)
    assert lines[-1] == (
        f"{NAME}: already installed: {CHART} 0.1.0 (local chart) with the same values "
        "(helm revision 2), ready: nothing to change"
    )
    assert _generation(embedded_cluster) == generation
    assert helm_release(session.kube, READY_ADDON).revision == 2  # type: ignore[union-attr]

    # other values are a change: helm upgrades the release
    addons.register(dataclasses.replace(READY_ADDON, values={"replicas": 1}))
    [changed] = install([NAME], session, lines.append)
    assert (changed.ready, changed.revision, changed.changed) == (True, 3, True)
    addons.register(READY_ADDON)

    [gone] = uninstall([NAME], session, lines.append)
    assert gone.installed is False
    caps.forget()
    assert caps.check(f"addon:{NAME}")[0] is False
    absent = embedded_cluster.kubectl("-n", NS, "get", "deployment", NAME, check=False)
    assert absent.returncode != 0 and "NotFound" in absent.stderr
    # nothing of it is left: not the namespace helm created, not the CRD helm keeps
    assert embedded_cluster.kubectl("get", "namespace", NS, check=False).returncode != 0
    crds = embedded_cluster.kubectl("get", "crd", "-o", "name").stdout.split()
    assert not [c for c in crds if c.endswith(".test.kubelab.dev")], crds
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
    dry = kubelab_cli("addons", "install", "metrics-server", "--dry-run", env=embedded_cluster.env)
    if session.flavour.containers:
        assert proc.returncode == 0, proc.stderr
        said = " ".join(proc.stdout.split())
        assert "✔ metrics-server: nothing changed — provided by the cluster, ready" in said
        assert dry.returncode == 0, dry.stderr
        assert "metrics-server: kubelab embedded cluster" in " ".join(dry.stdout.split())
        assert "provides it itself" in dry.stdout
    else:
        assert proc.returncode == 2
        assert "cannot install metrics-server" in proc.stderr
        assert "runs no containers" in proc.stderr
        assert status_proc.returncode == 1  # not ready: nothing serves the metrics API
        # the dry run refuses as the install does
        assert dry.returncode == 2 and "runs no containers" in dry.stderr, dry.stderr


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


# --- --dry-run: the plan, printed, and nothing changed ----------------------------------------


def _footprint(cluster) -> list[str]:
    """What an add-on could leave on the API server: namespaces, CRDs, webhooks, helm's
    release records (everywhere)."""
    kinds = "customresourcedefinitions,validatingwebhookconfigurations"
    objects = cluster.kubectl("get", kinds, "-o", "name").stdout.split()
    # active ones: another test's namespace still terminating is not this test's business
    active = '{range .items[?(@.status.phase=="Active")]}{.metadata.name}{" "}{end}'
    namespaces = cluster.kubectl("get", "namespaces", "-o", f"jsonpath={active}").stdout.split()
    releases = cluster.kubectl("get", "secrets", "-A", "-l", "owner=helm", "-o", "name")
    return sorted(objects + [f"namespace/{n}" for n in namespaces] + releases.stdout.split())


def test_dry_run_of_a_chart_prints_the_exact_commands_and_changes_nothing(
    embedded_cluster, session
):
    addons.register(READY_ADDON)
    context = session.context.name
    before = _footprint(embedded_cluster)

    [plan] = plans([NAME], session, "install")
    text = "\n".join(plan.lines())
    assert plan.changes
    values_file = f"{NAME}.values.yaml"
    assert (
        f"$ helm upgrade --install {NAME} {CHART} --namespace {NS} --create-namespace "
        f"--reset-values --values {values_file} --kube-context {context}"
    ) in text
    assert plan.files == {values_file: values_text({})}
    assert f"label the namespace {NS} it creates kubelab.dev/addon={NAME}" in text
    assert (
        f"wait up to 120s until: deployment {NS}/{NAME} available; CRD {CRD} Established"
    ) in text
    [gone] = plans([NAME], session, "uninstall")
    assert (gone.action, gone.changes) == ("not installed", False)
    assert _footprint(embedded_cluster) == before  # no release, no namespace, no CRD

    # installed: the dry runs say "nothing to change" and what uninstall would delete
    [st] = install([NAME], session, lambda _m: None)
    assert st.ready and st.revision == 1
    installed = _footprint(embedded_cluster)
    [again] = plans([NAME], session, "install")
    assert not again.changes and again.action.endswith("nothing to change")
    [remove] = plans([NAME], session, "uninstall")
    assert remove.commands == [
        f"helm uninstall {NAME} --namespace {NS} --wait --kube-context {context}",
        f"kubectl delete customresourcedefinition {KEPT_CRD} {CRD} --ignore-not-found "
        f"--wait=true --timeout=120s --context {context}",
        f"kubectl delete namespace {NS} --ignore-not-found --wait=true --timeout=120s "
        f"--context {context}",
    ]
    assert _footprint(embedded_cluster) == installed
    assert helm_release(session.kube, READY_ADDON).revision == 1  # type: ignore[union-attr]

    uninstall([NAME], session, lambda _m: None)
    assert _footprint(embedded_cluster) == before  # uninstall left nothing


def test_gatekeeper_dry_run_install_twice_and_uninstall_on_the_embedded_cluster(
    embedded_cluster, kubelab_cli
):
    """The host-process add-on, through the CLI: --dry-run starts nothing and applies nothing;
    a second install says nothing changed (the same manager keeps running); uninstall leaves
    nothing."""
    from kubelab.embedded.cluster import cluster_dir

    c, env = embedded_cluster, embedded_cluster.env
    pid_file = cluster_dir(c.name) / "addons" / "gatekeeper" / "gatekeeper.pid"
    before = _footprint(c)

    dry = kubelab_cli("addons", "install", "gatekeeper", "--dry-run", env=env)
    out = " ".join(dry.stdout.split())
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "gatekeeper: would run as host processes beside the embedded API server" in out
    assert "apply the CRDs of Gatekeeper v3.23.1" in out
    assert "apply the ValidatingWebhookConfiguration" in out
    assert "dry run: nothing was installed, nothing changed" in out
    assert _footprint(c) == before and not pid_file.exists()
    dry = kubelab_cli("addons", "uninstall", "gatekeeper", "--dry-run", env=env)
    assert dry.returncode == 0 and "not running" in dry.stdout, dry.stdout + dry.stderr

    first = kubelab_cli("addons", "install", "gatekeeper", env=env)
    try:
        assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
        assert "nothing changed" not in first.stdout
        pid = pid_file.read_text()
        installed = _footprint(c)
        second = kubelab_cli("addons", "install", "gatekeeper", env=env)
        said = " ".join(second.stdout.split())
        assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
        assert "gatekeeper: already running, ready" in said
        assert "✔ gatekeeper: nothing changed — installed by kubelab, ready" in said
        assert pid_file.read_text() == pid and _footprint(c) == installed
        dry = kubelab_cli("addons", "uninstall", "gatekeeper", "--dry-run", env=env)
        assert "would stop its host processes" in dry.stdout, dry.stdout + dry.stderr
        assert pid_file.read_text() == pid and _footprint(c) == installed
    finally:
        gone = kubelab_cli("addons", "uninstall", "gatekeeper", env=env)
    assert gone.returncode == 0, gone.stdout[-3000:] + gone.stderr[-3000:]
    assert _footprint(c) == before and not pid_file.exists()
