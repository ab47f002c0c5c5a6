"""Install, uninstall and inspect add-ons with helm, and wait for them to be ready.

Installs are `helm upgrade --install` (idempotent), then a bounded wait on the add-on's own ready
checks with a progress line. Add-ons are not lab objects: no lab's cleanup removes them, only
`kubelab addons uninstall`. An add-on the cluster already serves (k3d's metrics-server,
minikube's addon) is reported as such and never installed twice nor uninstalled.

Installing again changes nothing: when kubelab's release is deployed from the pinned chart
version with the same values and is ready, helm is not run at all (no new revision) and the
result says so. What an install creates beside the release — its namespace when there was none,
CRDs from the chart's `crds/` folder, which helm never deletes — is labelled
`kubelab.dev/addon=NAME`, and uninstall removes it, so that nothing of the add-on is left.

`--dry-run` builds the same plan as a real run and prints it instead: the exact helm and kubectl
command lines, the values file, what it would wait for. It only reads the cluster.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import gzip
import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

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
KUBECTL_TIMEOUT = 180.0  # a kubectl label/delete (deletes wait for finalizers, bounded below)
# on what an install created beside its release (namespace, CRDs): uninstall removes it
OWNER_LABEL = "kubelab.dev/addon"
# never deleted, whatever label they carry
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


@dataclass(frozen=True)
class Status:
    addon: str
    source: Source | None  # who installed it; None: nobody
    ready: bool
    detail: str  # what was seen, for people
    revision: int | None = None  # our helm release's revision
    changed: bool | None = None  # after an install: did it change the cluster? (None: not asked)

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
    chart_version: str | None = None  # from helm's stored record of the release
    values: dict[str, Any] | None = None  # the values it was installed with (helm's "config")

    @property
    def pending(self) -> bool:
        return self.state.startswith("pending")


def _release_record(secret: dict) -> dict[str, Any] | None:
    """helm's stored release: the Secret's `release` is base64 of gzipped JSON (helm 3 and 4)."""
    raw = (secret.get("data") or {}).get("release")
    if not raw:
        return None
    try:
        data = base64.b64decode(base64.b64decode(raw))
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        record = json.loads(data)
    except (binascii.Error, OSError, ValueError, EOFError):
        return None
    return record if isinstance(record, dict) else None


def helm_release(kube: Kube, addon: AddOn) -> Release | None:
    """Our release as helm recorded it (its release Secrets; no helm binary needed): the
    deployed revision, else the latest one (failed, or pending when a helm run was cut short)."""
    from kubelab.kube.client import UnknownKind

    try:
        secrets = kube.list("v1", "Secret", addon.namespace, f"owner=helm,name={addon.release}")
    except UnknownKind:
        return None
    found: list[tuple[int, str, dict]] = []
    for secret in secrets:
        labels = secret["metadata"].get("labels") or {}
        try:
            found.append((int(labels.get("version", "")), labels.get("status", ""), secret))
        except ValueError:
            continue
    deployed = [f for f in found if f[1] == "deployed"]
    chosen = max(deployed or found, key=lambda f: f[0], default=None)
    if chosen is None:
        return None
    revision, state, secret = chosen
    record = _release_record(secret)
    if record is None:  # unreadable: never taken for "the same as pinned"
        return Release(revision, state)
    chart = (record.get("chart") or {}).get("metadata") or {}
    values = record.get("config") or {}  # helm stores no values as null
    return Release(
        revision, state, chart.get("version"), values if isinstance(values, dict) else None
    )


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


# --- command lines ------------------------------------------------------------------------------


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


def values_text(values: dict[str, Any]) -> str:
    """The values file exactly as kubelab writes it for helm (YAML)."""
    import yaml

    return yaml.safe_dump(values, sort_keys=False, default_flow_style=False) if values else "{}\n"


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    """Values as helm stores them (JSON types), to compare with a release's."""
    return json.loads(json.dumps(values))


def _helm(session: Session) -> str:
    helm = shutil.which("helm", path=session.env.get("PATH"))
    if helm is None:
        raise MissingToolError(
            "helm is not on PATH; add-ons are installed with it",
            "install helm 3 (README: prerequisites) or build the cached one: `make tools`",
        )
    return helm


def _target(session: Session, tool: str) -> list[str]:
    """The flags that point helm or kubectl at the session's guarded context."""
    context_flag = "--kube-context" if tool == "helm" else "--context"
    return ["--kubeconfig", str(session.kubeconfig), context_flag, session.context.name]


def _shown(cmd: list[str], session: Session) -> str:
    """A command line for people: the program's name (not its path) and the context it acts on
    (the private kubeconfig copy it is given is left out: it is gone after the command)."""
    tool = Path(cmd[0]).name
    context_flag = "--kube-context" if tool == "helm" else "--context"
    return shlex.join([tool, *cmd[1:], context_flag, session.context.name])


def _run(session: Session, cmd: list[str], timeout: float) -> str:
    tool = Path(cmd[0]).name
    full = [*cmd, *_target(session, tool)]
    shown = shlex.join([tool, *cmd[1:]])
    try:
        proc = subprocess.run(
            full, env=session.env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise KubelabError(
            f"`{shown}` did not finish within {timeout:.0f}s",
            "is the cluster (or the chart repository) reachable? `kubelab doctor`",
        ) from None
    if proc.returncode != 0:
        output = (proc.stderr.strip() or proc.stdout.strip())[-2000:]
        raise KubelabError(f"`{shown}` failed:\n{output}", f"see {tool}'s message above")
    return proc.stdout


def _kubectl(session: Session) -> str:
    return shutil.which("kubectl", path=session.env.get("PATH")) or "kubectl"


# --- what an install created beside its release -----------------------------------------------


def _names(kube: Kube, api_version: str, kind: str, selector: str | None = None) -> set[str]:
    from kubelab.kube.client import UnknownKind

    try:
        return {o["metadata"]["name"] for o in kube.list(api_version, kind, None, selector)}
    except UnknownKind:
        return set()


def _crds(kube: Kube, selector: str | None = None) -> set[str]:
    return _names(kube, "apiextensions.k8s.io/v1", "CustomResourceDefinition", selector)


def _namespace_exists(kube: Kube, name: str) -> bool:
    return kube.get("v1", "Namespace", name, None) is not None


def _leftovers(addon: AddOn, kube: Kube) -> tuple[list[str], str | None]:
    """What uninstall removes beside the release: the CRDs labelled for this add-on, and its
    namespace when an add-on's install made it (labelled for this one or another sharing it)
    and no helm release but this one's lives there."""
    crds = sorted(_crds(kube, f"{OWNER_LABEL}={addon.name}"))
    namespace = None
    ns = None if addon.namespace in SYSTEM_NAMESPACES else (
        kube.get("v1", "Namespace", addon.namespace, None))  # fmt: skip
    if ns is not None and OWNER_LABEL in ((ns.get("metadata") or {}).get("labels") or {}):
        others = {
            (s["metadata"].get("labels") or {}).get("name")
            for s in kube.list("v1", "Secret", addon.namespace, "owner=helm")
        } - {addon.release}
        if not others:
            namespace = addon.namespace
    return crds, namespace


# --- plans: what install and uninstall do (printed by --dry-run, executed otherwise) ----------


@dataclass
class Plan:
    """What installing or uninstalling one add-on does on this cluster, decided from what is
    there now. `commands` are exact command lines; `files` what they read; `then` the rest."""

    addon: str
    action: str  # one line: what happens (or why nothing does)
    commands: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)  # name -> content
    does: list[str] = field(default_factory=list)  # what host processes do, in order
    then: list[str] = field(default_factory=list)
    changes: bool = True  # False: the cluster stays exactly as it is

    def lines(self) -> list[str]:
        out = [f"{self.addon}: {self.action}"]
        out += [f"  $ {c}" for c in self.commands]
        out += [f"  - {d}" for d in self.does]
        for name, text in self.files.items():
            out.append(f"  {name}:")
            out += [f"    {line}" for line in text.rstrip("\n").splitlines()]
        out += [f"  then {t}" for t in self.then]
        return out


def _checks_text(checks: tuple) -> str:
    return "; ".join(_check_text(c) for c in checks) or "nothing"


def _check_text(check: object) -> str:
    from kubelab.addons import base

    if isinstance(check, base.DeploymentAvailable):
        return f"deployment {check.namespace}/{check.name} available"
    if isinstance(check, base.APIServiceAvailable):
        return f"APIService {check.name} Available"
    if isinstance(check, base.CRDEstablished):
        return f"CRD {check.name} Established"
    from kubelab.addons.host import HTTPReady

    if isinstance(check, HTTPReady):
        return f"{check.program.program} answers 200 on {check.path} (127.0.0.1)"
    name = type(check).__name__
    doc = (type(check).__doc__ or "").strip().splitlines()
    if doc and not doc[0].startswith(f"{name}("):  # not the signature dataclass() writes
        return doc[0].rstrip(".")
    return re.sub(r"(?<!^)(?=[A-Z])", " ", name).lower()  # WebhookConfigured: webhook configured


def _local_plan(addon: AddOn, session: Session, action: str) -> list[str]:
    """What an add-on's host processes would do: the add-on says so when it can
    (`Local.plan(kube, "install" | "uninstall") -> list[str]`), else a general description."""
    plan = getattr(addon.local, "plan", None)
    if callable(plan):
        return list(plan(session.kube, action))
    from kubelab.embedded.cluster import CONTEXT_PREFIX, cluster_dir

    folder = cluster_dir(session.context.name.removeprefix(CONTEXT_PREFIX)) / "addons" / addon.name
    if action == "install":
        return [f"start {addon.name}'s host processes beside the API server (pid files and logs in "
                f"{folder}) and apply the objects they need"]  # fmt: skip
    return [f"stop {addon.name}'s host processes ({folder}) and delete the objects it applied"]


def plan_install(addon: AddOn, session: Session, timeout: float | None = None) -> Plan:
    """Decide what installing `addon` does here (read-only). Raises KubelabError where the
    install would be refused (the cluster cannot run it, a half-done helm run)."""
    flavour, kube = session.flavour, session.kube
    limit = timeout if timeout is not None else addon.timeout
    _refuse_unavailable(addon, flavour)
    if addon.local is not None and flavour.name == "embedded":
        if addon.local.installed(kube):
            ready, detail = _evaluate(kube, addon.local_ready)
            if ready:
                return Plan(addon.name, f"already running, ready ({detail}): nothing to change",
                            changes=False)  # fmt: skip
            return Plan(addon.name, f"running, not ready yet ({detail})", then=[
                f"wait up to {limit:.0f}s until: {_checks_text(addon.local_ready)}"])  # fmt: skip
        return Plan(
            addon.name,
            "would run as host processes beside the embedded API server (no helm release)",
            does=_local_plan(addon, session, "install"),
            then=[f"wait up to {limit:.0f}s until: {_checks_text(addon.local_ready)}"],
        )
    before = status(addon, kube, flavour)
    if before.source == "other":  # someone else's copy serves it: a second one would collide
        return Plan(addon.name, f"{before.describe()} — nothing to install", changes=False)
    unmet = session.capabilities.unmet(list(addon.needs))
    if unmet:
        raise KubelabError(
            f"cannot install {addon.name} on {flavour.title}: {'; '.join(unmet)}",
            "use a cluster that runs containers (Docker Desktop, kind, k3d, minikube…)",
        )
    if before.source == "cluster":
        return Plan(addon.name, f"{flavour.title} provides it itself ({before.detail})",
                    changes=False)  # fmt: skip
    release = helm_release(kube, addon)
    if release is not None and release.pending:  # helm refuses to touch it until it is cleared
        raise KubelabError(
            f"cannot install {addon.name}: {before.detail}",
            f"remove it with `kubelab addons uninstall {addon.name}`, then install it again",
        )
    values = addon.values_for(flavour.name)
    if (
        release is not None
        and release.state == "deployed"
        and release.chart_version == addon.chart.version
        and release.values == _plain(values)
        and before.ready
    ):
        return Plan(
            addon.name,
            f"already installed: {addon.chart.describe()} with the same values "
            f"(helm revision {release.revision}), ready: nothing to change",
            changes=False,
        )
    verb = "upgrade" if release is not None else "install"
    values_file = f"{addon.name}.values.yaml"
    label = f"{OWNER_LABEL}={addon.name}"
    then = []
    if not _namespace_exists(kube, addon.namespace):
        then.append(f"label the namespace {addon.namespace} it creates {label}")
    then += [
        f"label the CRDs it creates {label} (helm never deletes a chart's CRDs; uninstall does)",
        f"wait up to {limit:.0f}s until: {_checks_text(addon.ready)}",
    ]
    return Plan(
        addon.name,
        f"would {verb} {addon.chart.describe()} (app {addon.app_version}) as release "
        f"{addon.namespace}/{addon.release}",
        commands=[
            *(_shown(_apply_manifest_command(url), session) for url in addon.manifests),
            _shown(install_command(addon, Path(values_file)), session),
        ],
        files={values_file: values_text(values)},
        then=then,
    )


def plan_uninstall(addon: AddOn, session: Session) -> Plan:
    """Decide what uninstalling `addon` does here (read-only)."""
    kube = session.kube
    if addon.local is not None and session.flavour.name == "embedded":
        running = addon.local.installed(kube)
        return Plan(
            addon.name,
            "would stop its host processes and remove what they applied"
            if running
            else "not running; would remove anything it left",
            does=_local_plan(addon, session, "uninstall"),
        )
    before = status(addon, kube, session.flavour)
    if before.source in ("cluster", "other"):
        return Plan(addon.name, f"{before.describe()} — not kubelab's to remove", changes=False)
    commands = []
    if before.source == "kubelab":
        commands.append(_shown(uninstall_command(addon), session))
        commands += [_shown(_delete_manifest_command(u), session) for u in addon.manifests[::-1]]
    crds, namespace = _leftovers(addon, kube)
    if crds:
        commands.append(_shown(_delete_crds_command(crds), session))
    if namespace:
        commands.append(_shown(_delete_namespace_command(namespace), session))
    if not commands:
        return Plan(addon.name, "not installed", changes=False)
    what = f"release {addon.namespace}/{addon.release}" if before.source else "what it left"
    return Plan(addon.name, f"would remove {what}", commands=commands)


def _delete_crds_command(crds: list[str], kubectl: str = "kubectl") -> list[str]:
    return [kubectl, "delete", "customresourcedefinition", *crds, "--ignore-not-found",
            "--wait=true", "--timeout=120s"]  # fmt: skip


def _delete_namespace_command(namespace: str, kubectl: str = "kubectl") -> list[str]:
    return [kubectl, "delete", "namespace", namespace, "--ignore-not-found", "--wait=true",
            "--timeout=120s"]  # fmt: skip


def _refuse_unavailable(addon: AddOn, flavour: Flavour) -> None:
    reason = addon.unavailable.get(flavour.name)
    if reason:
        raise KubelabError(
            f"cannot install {addon.name} on {flavour.title}: {reason}",
            "use a cluster that runs containers and reaches the internet (Docker Desktop, kind…)",
        )


def _apply_manifest_command(url: str, kubectl: str = "kubectl") -> list[str]:
    return [kubectl, "apply", "--server-side", "--force-conflicts", "-f", url]


def _delete_manifest_command(url: str, kubectl: str = "kubectl") -> list[str]:
    return [kubectl, "delete", "--ignore-not-found", "--wait=true", "-f", url]


def plans(names: list[str], session: Session, action: str) -> list[Plan]:
    """--dry-run: the plans of `install` or `uninstall` for these add-ons, changing nothing."""
    chosen = [addons.get(n) for n in dict.fromkeys(names)]
    if action == "install":
        return [plan_install(a, session) for a in chosen]
    return [plan_uninstall(a, session) for a in chosen]


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

    Idempotent: an add-on already installed as pinned and ready is left alone (Status.changed
    is False). Skips what the cluster already serves. Raises KubelabError naming the add-on when
    the cluster cannot run it, helm fails or it is not ready by the deadline (`timeout`, else
    the add-on's own).
    """
    chosen = [addons.get(n) for n in dict.fromkeys(names)]
    try:
        return [_install_one(addon, session, progress, timeout, wait) for addon in chosen]
    finally:
        session.capabilities.forget()  # requirements are asked again, of the changed cluster


def _install_one(
    addon: AddOn, session: Session, progress: Progress, timeout: float | None, wait: bool
) -> Status:
    import dataclasses

    plan = plan_install(addon, session, timeout)
    if not plan.changes:
        progress(f"{addon.name}: {plan.action}")
        return dataclasses.replace(status(addon, session.kube, session.flavour), changed=False)
    local = addon.local is not None and session.flavour.name == "embedded"
    if local:
        assert addon.local is not None
        if not addon.local.installed(session.kube):
            progress(f"{addon.name}: starting it as a host process beside the embedded API server")
            addon.local.install(session.kube, progress)
        checks = addon.local_ready
    else:
        _helm_install(addon, session, progress)
        checks = addon.ready
    if wait:
        ready, detail = wait_ready(addon, session.kube, progress, timeout, checks)
        if not ready:
            limit = timeout if timeout is not None else addon.timeout
            if local:
                raise KubelabError(
                    f"{addon.name} was started but is not ready after {limit:.0f}s: {detail}",
                    f"`kubelab addons uninstall {addon.name}`, then install it again",
                )
            raise KubelabError(
                f"{addon.name} was installed but is not ready after {limit:.0f}s: {detail}",
                f"look at it: `kubectl -n {addon.namespace} get pods,events`; "
                f"`kubelab addons status` tells when it is",
            )
    after = dataclasses.replace(status(addon, session.kube, session.flavour), changed=True)
    progress(f"{addon.name}: {after.describe()}")
    return after


def _helm_install(addon: AddOn, session: Session, progress: Progress) -> None:
    kube = session.kube
    helm = _helm(session)
    new_namespace = not _namespace_exists(kube, addon.namespace)
    crds_before = _crds(kube)
    fd, name = tempfile.mkstemp(prefix=f"kubelab-{addon.name}-", suffix=".values.yaml")
    values_file = Path(name)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(values_text(addon.values_for(session.flavour.name)))
        verb = "upgrading" if helm_release(kube, addon) is not None else "installing"
        for url in addon.manifests:
            progress(f"{addon.name}: applying {url}")
            _run(session, _apply_manifest_command(url, _kubectl(session)), HELM_TIMEOUT)
        progress(f"{addon.name}: {verb} {addon.chart.describe()} (app {addon.app_version})")
        _run(session, install_command(addon, values_file, helm), HELM_TIMEOUT)
    except BaseException:
        # whatever a failed run made is still the add-on's: mark it, but report helm's error
        with contextlib.suppress(KubelabError):
            _label_created(addon, session, new_namespace, crds_before)
        raise
    finally:
        values_file.unlink(missing_ok=True)
    _label_created(addon, session, new_namespace, crds_before)


def _label_created(
    addon: AddOn, session: Session, new_namespace: bool, crds_before: set[str]
) -> None:
    """Mark what this install created beside the release, for uninstall to remove."""
    kube, label = session.kube, f"{OWNER_LABEL}={addon.name}"
    created = sorted(_crds(kube) - crds_before)
    kubectl = _kubectl(session)
    if created:
        _run(session, [kubectl, "label", "--overwrite", "customresourcedefinition", *created,
                       label], KUBECTL_TIMEOUT)  # fmt: skip
    if new_namespace and _namespace_exists(kube, addon.namespace):
        _run(session, [kubectl, "label", "--overwrite", "namespace", addon.namespace, label],
             KUBECTL_TIMEOUT)  # fmt: skip


def uninstall(names: list[str], session: Session, progress: Progress) -> list[Status]:
    """Remove what kubelab installed, and what the install created beside it (its namespace,
    the chart's CRDs); leave alone what the cluster or someone else provides."""
    chosen = [addons.get(n) for n in dict.fromkeys(names)]
    results = []
    for addon in chosen:
        plan = plan_uninstall(addon, session)
        if addon.local is not None and session.flavour.name == "embedded":
            addon.local.uninstall(session.kube, progress)
        elif not plan.changes:
            progress(f"{addon.name}: {plan.action}")
        else:
            _helm_uninstall(addon, session, progress)
        results.append(status(addon, session.kube, session.flavour))
    session.capabilities.forget()
    return results


def _helm_uninstall(addon: AddOn, session: Session, progress: Progress) -> None:
    kube = session.kube
    if status(addon, kube, session.flavour).source == "kubelab":
        progress(f"{addon.name}: uninstalling release {addon.namespace}/{addon.release}")
        _run(session, uninstall_command(addon, _helm(session)), HELM_TIMEOUT)
        for url in reversed(addon.manifests):
            progress(f"{addon.name}: deleting what {url} made")
            _run(session, _delete_manifest_command(url, _kubectl(session)), HELM_TIMEOUT)
    # looked at after helm: the namespace goes only when no other release is left in it
    crds, namespace = _leftovers(addon, kube)
    kubectl = _kubectl(session)
    if crds:
        progress(f"{addon.name}: deleting the CRDs it installed: {', '.join(crds)}")
        _run(session, _delete_crds_command(crds, kubectl), KUBECTL_TIMEOUT)
    if namespace:
        progress(f"{addon.name}: deleting the namespace made for it: {namespace}")
        _run(session, _delete_namespace_command(namespace, kubectl), KUBECTL_TIMEOUT)
    progress(f"{addon.name}: removed")
