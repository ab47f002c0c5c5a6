"""Install, uninstall and inspect add-ons with helm, and wait for them to be ready.

Installs are `helm upgrade --install` (idempotent), then a bounded wait on the add-on's own ready
checks with a progress line. Add-ons are not lab objects: no lab's cleanup removes them, only
`kubelab addons uninstall`. An add-on the cluster already serves (k3d's metrics-server,
minikube's addon) is reported as such and never installed twice nor uninstalled.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from kubelab import addons
from kubelab.addons.base import AddOn
from kubelab.errors import KubelabError, MissingToolError

if TYPE_CHECKING:
    from kubelab.flavours import Flavour
    from kubelab.kube.client import Kube
    from kubelab.session import Session

Progress = Callable[[str], None]
Source = Literal["kubelab", "cluster", "other"]
POLL_INTERVAL = 1.0  # between readiness looks while waiting (bounded by the deadline)
HELM_TIMEOUT = 300.0  # a helm call that applies manifests and returns


@dataclass(frozen=True)
class Status:
    addon: str
    source: Source | None  # who installed it; None: nobody
    ready: bool
    detail: str  # what was seen, for people
    revision: int | None = None  # our helm release's revision

    @property
    def installed(self) -> bool:
        return self.source is not None

    def describe(self) -> str:
        if self.source is None:
            return "not installed"
        if self.source == "cluster":
            head = "provided by the cluster"
        elif self.source == "other":
            head = "installed outside kubelab"
        elif self.revision is None:
            head = "installed by kubelab"
        else:
            head = f"installed (helm revision {self.revision})"
        return f"{head}, {'ready' if self.ready else 'not ready'}: {self.detail}"


# --- status ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Release:
    revision: int
    state: str  # helm's: deployed, failed, pending-install, pending-upgrade, …

    @property
    def pending(self) -> bool:
        return self.state.startswith("pending")


def helm_release(kube: Kube, addon: AddOn) -> Release | None:
    """Our release as helm recorded it (its release Secrets; no helm binary needed): the
    deployed revision, else the latest one (failed, or pending when a helm run was cut short)."""
    from kubelab.kube.client import UnknownKind

    try:
        secrets = kube.list("v1", "Secret", addon.namespace, f"owner=helm,name={addon.release}")
    except UnknownKind:
        return None
    found = []
    for secret in secrets:
        labels = secret["metadata"].get("labels") or {}
        try:
            found.append(Release(int(labels.get("version", "")), labels.get("status", "")))
        except ValueError:
            continue
    deployed = [r for r in found if r.state == "deployed"]
    return max(deployed or found, key=lambda r: r.revision, default=None)


def _evaluate(kube: Kube, checks: tuple) -> tuple[bool, str]:
    results = [check.evaluate(kube) for check in checks]
    failing = [what for ok, what in results if not ok]
    return not failing, "; ".join(failing or [what for _, what in results])


def status(addon: AddOn, kube: Kube, flavour: Flavour) -> Status:
    if addon.local is not None and flavour.name == "embedded":
        if not addon.local.installed(kube):
            return Status(addon.name, None, False, "not running")
        ready, detail = _evaluate(kube, addon.local_ready)
        return Status(addon.name, "kubelab", ready, f"host process; {detail}")
    release = helm_release(kube, addon)
    if release is not None and release.state != "deployed":
        what = f"helm release {addon.namespace}/{addon.release} is {release.state}"
        if release.pending:
            what += " (a helm run was cut short)"
        return Status(addon.name, "kubelab", False, what, release.revision)
    if release is not None:
        ready, detail = _evaluate(kube, addon.ready)
        return Status(addon.name, "kubelab", ready, detail, release.revision)
    served, detail = _evaluate(kube, addon.served_checks)
    if flavour.name in addon.provided_by:
        return Status(addon.name, "cluster", served, detail)
    if served:
        return Status(addon.name, "other", True, detail)
    return Status(addon.name, None, False, detail)


def statuses(session: Session, names: list[str] | None = None) -> list[Status]:
    chosen = [addons.get(n) for n in names] if names else list(addons.ADDONS.values())
    return [status(a, session.kube, session.flavour) for a in chosen]


# --- helm command lines -----------------------------------------------------------------------


def install_command(addon: AddOn, values_file: Path, helm: str = "helm") -> list[str]:
    chart = addon.chart
    cmd = [helm, "upgrade", "--install", addon.release, chart.name]
    if chart.repo:
        cmd += ["--repo", chart.repo, "--version", chart.version]
    # --reset-values: exactly the pinned values, also when they are empty (helm otherwise
    # keeps the previous release's values when given none). No --wait: kubelab waits on the
    # add-on's own checks, with a progress line and a deadline.
    return [
        *cmd,
        "--namespace",
        addon.namespace,
        "--create-namespace",
        "--reset-values",
        "--values",
        str(values_file),
    ]


def uninstall_command(addon: AddOn, helm: str = "helm") -> list[str]:
    return [helm, "uninstall", addon.release, "--namespace", addon.namespace, "--wait"]


def _helm(session: Session) -> str:
    helm = shutil.which("helm", path=session.env.get("PATH"))
    if helm is None:
        raise MissingToolError(
            "helm is not on PATH; add-ons are installed with it",
            "install helm 3 (README: prerequisites) or build the cached one: `make tools`",
        )
    return helm


def _run_helm(session: Session, cmd: list[str], timeout: float) -> None:
    # the session's pinned kubeconfig: helm acts on the guarded context, whatever is current
    full = [*cmd, "--kubeconfig", str(session.kubeconfig), "--kube-context", session.context.name]
    try:
        proc = subprocess.run(
            full, env=session.env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise KubelabError(
            f"`{shlex.join(cmd)}` did not finish within {timeout:.0f}s",
            "is the cluster (or the chart repository) reachable? `kubelab doctor`",
        ) from None
    if proc.returncode != 0:
        output = (proc.stderr.strip() or proc.stdout.strip())[-2000:]
        raise KubelabError(f"`{shlex.join(cmd)}` failed:\n{output}", "see helm's message above")


def _run_kubectl(session: Session, args: list[str]) -> None:
    """kubectl on the session's pinned context (an add-on's manifests)."""
    kubectl = shutil.which("kubectl", path=session.env.get("PATH"))
    if kubectl is None:
        raise MissingToolError("kubectl is not on PATH", "install kubectl (README: prerequisites)")
    cmd = [kubectl, "--kubeconfig", str(session.kubeconfig), "--context", session.context.name]
    try:
        proc = subprocess.run([*cmd, *args], env=session.env, capture_output=True, text=True,
                              timeout=HELM_TIMEOUT, check=False)  # fmt: skip
    except subprocess.TimeoutExpired:
        raise KubelabError(
            f"`kubectl {shlex.join(args)}` did not finish within {HELM_TIMEOUT:.0f}s",
            "is the cluster (and the manifest's address) reachable? `kubelab doctor`",
        ) from None
    if proc.returncode != 0:
        raise KubelabError(
            f"`kubectl {shlex.join(args)}` failed:\n{(proc.stderr or proc.stdout).strip()[-2000:]}",
            "see kubectl's message above",
        )


# --- install / uninstall ----------------------------------------------------------------------


def wait_ready(
    addon: AddOn,
    kube: Kube,
    progress: Progress,
    timeout: float | None = None,
    checks: tuple | None = None,
) -> tuple[bool, str]:
    """Poll the add-on's ready checks until all hold or the deadline passes."""
    deadline = time.monotonic() + (timeout if timeout is not None else addon.timeout)
    started = time.monotonic()
    while True:
        ready, detail = _evaluate(kube, checks if checks is not None else addon.ready)
        if ready or time.monotonic() >= deadline:
            return ready, detail
        progress(f"{addon.name}: waiting ({time.monotonic() - started:.0f}s) — {detail}")
        time.sleep(min(POLL_INTERVAL, max(0.0, deadline - time.monotonic())))


def install(
    names: list[str],
    session: Session,
    progress: Progress,
    timeout: float | None = None,
    wait: bool = True,
) -> list[Status]:
    """Install (or upgrade to the pinned chart) each named add-on and wait until it is ready.

    Idempotent. Skips what the cluster already serves. Raises KubelabError naming the add-on when
    the cluster cannot run it, helm fails or it is not ready by the deadline (`timeout`, else the
    add-on's own).
    """
    chosen = [addons.get(n) for n in dict.fromkeys(names)]
    try:
        return [_install_one(addon, session, progress, timeout, wait) for addon in chosen]
    finally:
        session.capabilities.forget()  # requirements are asked again, of the changed cluster


def _install_one(
    addon: AddOn, session: Session, progress: Progress, timeout: float | None, wait: bool
) -> Status:
    flavour = session.flavour
    if flavour.name in addon.unavailable:
        raise KubelabError(
            f"cannot install {addon.name} on {flavour.title}: {addon.unavailable[flavour.name]}",
            "use a cluster that runs containers and reaches the internet (Docker Desktop, kind…)",
        )
    if addon.local is not None and flavour.name == "embedded":
        return _install_local(addon, session, progress, timeout, wait)
    before = status(addon, session.kube, flavour)
    if before.source == "other":  # someone else's copy serves it: a second one would collide
        progress(f"{addon.name}: {before.describe()} — nothing to install")
        return before
    unmet = session.capabilities.unmet(list(addon.needs))
    if unmet:
        raise KubelabError(
            f"cannot install {addon.name} on {flavour.title}: {'; '.join(unmet)}",
            "use a cluster that runs containers (Docker Desktop, kind, k3d, minikube…)",
        )
    if before.source == "cluster":
        progress(f"{addon.name}: {flavour.title} provides it itself ({before.detail})")
        return before
    release = helm_release(session.kube, addon)
    if release is not None and release.pending:  # helm refuses to touch it until it is cleared
        raise KubelabError(
            f"cannot install {addon.name}: {before.detail}",
            f"remove it with `kubelab addons uninstall {addon.name}`, then install it again",
        )
    helm = _helm(session)
    fd, name = tempfile.mkstemp(prefix=f"kubelab-{addon.name}-", suffix=".values.json")
    values_file = Path(name)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(addon.values_for(flavour.name), fh)  # JSON is YAML: helm reads it
        verb = "upgrading" if before.installed else "installing"
        for url in addon.manifests:
            progress(f"{addon.name}: applying {url}")
            _run_kubectl(session, ["apply", "--server-side", "--force-conflicts", "-f", url])
        progress(f"{addon.name}: {verb} {addon.chart.describe()} (app {addon.app_version})")
        _run_helm(session, install_command(addon, values_file, helm), HELM_TIMEOUT)
    finally:
        values_file.unlink(missing_ok=True)
    if wait:
        ready, detail = wait_ready(addon, session.kube, progress, timeout)
        if not ready:
            limit = timeout if timeout is not None else addon.timeout
            raise KubelabError(
                f"{addon.name} was installed but is not ready after {limit:.0f}s: {detail}",
                f"look at it: `kubectl -n {addon.namespace} get pods,events`; "
                f"`kubelab addons status` tells when it is",
            )
    after = status(addon, session.kube, flavour)
    progress(f"{addon.name}: {after.describe()}")
    return after


def _install_local(
    addon: AddOn, session: Session, progress: Progress, timeout: float | None, wait: bool
) -> Status:
    assert addon.local is not None
    progress(f"{addon.name}: starting it as a host process beside the embedded API server")
    addon.local.install(session.kube, progress)
    if wait:
        ready, detail = wait_ready(addon, session.kube, progress, timeout, addon.local_ready)
        if not ready:
            limit = timeout if timeout is not None else addon.timeout
            raise KubelabError(
                f"{addon.name} was started but is not ready after {limit:.0f}s: {detail}",
                f"`kubelab addons uninstall {addon.name}`, then install it again",
            )
    after = status(addon, session.kube, session.flavour)
    progress(f"{addon.name}: {after.describe()}")
    return after


def uninstall(names: list[str], session: Session, progress: Progress) -> list[Status]:
    """Remove what kubelab installed; leave alone what the cluster or someone else provides."""
    chosen = [addons.get(n) for n in dict.fromkeys(names)]
    results = []
    for addon in chosen:
        before = status(addon, session.kube, session.flavour)
        if addon.local is not None and session.flavour.name == "embedded":
            addon.local.uninstall(session.kube, progress)
        elif before.source == "kubelab":
            progress(f"{addon.name}: uninstalling release {addon.namespace}/{addon.release}")
            _run_helm(session, uninstall_command(addon, _helm(session)), HELM_TIMEOUT)
            for url in reversed(addon.manifests):
                progress(f"{addon.name}: deleting what {url} made")
                _run_kubectl(session, ["delete", "--ignore-not-found", "--wait=true", "-f", url])
        elif before.source is not None:
            progress(f"{addon.name}: {before.describe()} — not kubelab's to remove")
        else:
            progress(f"{addon.name}: not installed")
        results.append(status(addon, session.kube, session.flavour))
    session.capabilities.forget()
    return results
