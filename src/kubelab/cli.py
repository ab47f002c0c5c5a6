"""The `kubelab` command."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Annotated

import typer

from kubelab.errors import KubelabError

# Plain (click) help and usage messages: typer's rich help pulls in a markdown parser and
# doubles the start-up time of every command (benchmarks/cli_startup.py).
PLAIN = {"rich_markup_mode": None, "add_completion": False}
app = typer.Typer(
    help="A hands-on Kubernetes course that checks itself: run, check and reset its labs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    **PLAIN,
)
cluster_app = typer.Typer(
    help="The embedded training cluster (real control plane, kwok nodes).", **PLAIN
)
images_app = typer.Typer(
    help="Build the course's images and make them available to the cluster.", **PLAIN
)
app.add_typer(cluster_app, name="cluster")
app.add_typer(images_app, name="images")


class _LazyConsole:
    """A Rich console made on first use: importing Rich costs as much as the rest of the start-up,
    and `--help` or a usage error need none of it."""

    def __init__(self, **options: object) -> None:
        self._options = options
        self._console = None

    def __getattr__(self, name: str):
        if self._console is None:
            from rich.console import Console

            self._console = Console(**self._options)  # type: ignore[arg-type]
        return getattr(self._console, name)


def escape(text: str) -> str:
    from rich.markup import escape as rich_escape

    return rich_escape(text)


console = _LazyConsole(highlight=False)
err = _LazyConsole(stderr=True, highlight=False)

AllowOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--allow-context",
        metavar="NAME",
        help="Also act on this context (exact name) although it is not a known local cluster.",
    ),
]
NameOpt = Annotated[
    str,
    typer.Option("--name", envvar="KUBELAB_CLUSTER", help="The embedded cluster's name."),
]
StepOpt = Annotated[
    str | None, typer.Option("--step", metavar="ID", help="Only this step (its id).")
]
LabArg = Annotated[str, typer.Argument(metavar="LAB", help="The lab's name (`kubelab labs`).")]


# The lab format (pydantic models) is imported only by the commands that read labs, so that
# `kubelab --help` and the cluster commands start fast.
def load_lab(name: str):
    from kubelab.lab.loader import load_lab as load

    return load(name)


def load_all():
    from kubelab.lab.loader import load_all as load

    return load()


def _session(allow: list[str] | None):
    from kubelab.session import Session

    session = Session.open(allow)
    if session.note:
        console.print(f"[yellow]{escape(session.note)}[/]")
    console.print(
        f"[dim]context:[/] [bold]{escape(session.context.name)}[/] "
        f"[dim]({session.flavour.title}, {escape(session.context.server)})[/]"
    )
    return session


def _install_missing_addons(session, lab) -> None:
    """`run --install-addons`: install the add-ons the lab requires that are not ready yet."""
    from kubelab.addons.manage import install

    wanted = {
        r.partition(":")[2]: r
        for r in lab.requirements()
        if r.startswith(("addon:", "addon-release:"))
    }
    missing = [n for n, req in wanted.items() if not session.capabilities.check(req)[0]]
    if missing:
        console.print(f"installing the add-ons {', '.join(missing)} first (they outlive the lab)")
        with console.status("") as line:
            install(missing, session, _addon_progress(line.update))


# --- the course ---------------------------------------------------------------------------------


@app.command()
def labs(
    names_only: Annotated[
        bool,
        typer.Option("--names", help="Only the labs' names, one a line, in course order."),
    ] = False,
) -> None:
    """List the labs, their requirements, and how many of their steps can run here."""
    from rich.table import Table

    from kubelab.session import Session

    if names_only:  # for scripts: `for lab in $(kubelab labs --names); do …`; no cluster needed
        from kubelab.lab.loader import lab_names

        sys.stdout.write("".join(f"{name}\n" for name in lab_names()))
        return
    loaded = load_all()
    session = None
    try:
        session = Session.open()
        console.print(f"[dim]cluster: {session.context.name} ({session.flavour.title})[/]")
    except KubelabError as exc:
        console.print(f"[dim]no cluster checked: {escape(exc.message)}[/]")
    table = Table("lab", "title", "steps", "requires", "runnable here", "unmet here")
    try:
        for item in loaded:
            lab = item.lab
            runnable, unmet = "?", "?"
            if session is not None:
                reasons = [session.capabilities.unmet(s.effective_requires(lab.spec.requires))
                           for s in lab.steps]  # fmt: skip
                runnable = f"{sum(1 for r in reasons if not r)}/{len(lab.steps)}"
                unmet = "; ".join(sorted({x for r in reasons for x in r})) or "-"
            reqs = ", ".join(lab.requirements()) or "-"
            table.add_row(lab.name, lab.title, str(len(lab.steps)), reqs, runnable, unmet)
    finally:
        if session is not None:
            session.close()
    console.print(table)


@app.command()
def show(lab: LabArg) -> None:
    """Show a lab's steps: commands, expectations, captures, interactive marks."""
    from kubelab.lab import model as m

    loaded = load_lab(lab)
    spec = loaded.lab.spec
    console.print(
        f"[bold]{escape(loaded.lab.title)}[/] [dim]({loaded.lab.name}, {loaded.folder})[/]"
    )
    if spec.requires:
        console.print(f"requires: {', '.join(spec.requires)}")
    for i, step in enumerate(loaded.lab.steps, 1):
        mark = " [magenta](interactive)[/]" if step.interactive else ""
        console.print(f"\n[bold]{i}. {escape(step.title)}[/] [dim]{step.id}[/]{mark}")
        for command in step.run:
            run_ = m.as_run(command)
            rules = run_.describe()
            said = "" if rules == "succeeds" else f" [dim]({escape(rules)})[/]"
            console.print(f"   [cyan]$[/] {escape(run_.cmd)}{said}")
        if step.interactive:
            for action in step.automated or []:
                text = action.http.describe() if isinstance(action, m.HttpAction) else (
                    m.as_run(action).cmd)  # fmt: skip
                console.print(f"   [dim]automated:[/] {escape(text)}")
        for expectation in step.expect:
            console.print(f"   [green]expect[/] {escape(expectation.describe())}")
        for name in step.captured_names():
            console.print(f"   [dim]captures ${{{name}}}[/]")
        needs = step.effective_requires(spec.requires)
        if needs:
            console.print(f"   [dim]requires: {', '.join(needs)}[/]")


@app.command()
def run(
    lab: LabArg,
    step: StepOpt = None,
    from_: Annotated[
        str | None, typer.Option("--from", metavar="ID", help="Start at this step.")
    ] = None,
    keep: Annotated[
        bool, typer.Option("--keep", help="Leave the lab's objects for a look.")
    ] = False,
    report: Annotated[
        Path | None,
        typer.Option("--report", metavar="FILE", help="Write FILE.json or FILE.xml (JUnit)."),
    ] = None,
    install_addons: Annotated[
        bool,
        typer.Option("--install-addons", help="First install the add-ons the lab requires."),
    ] = False,
    allow_context: AllowOpt = None,
) -> None:
    """Run a lab's steps as you would type them (they run as you, in one shell), waiting for
    each step's expectations; then clean up. Ctrl-C stops and cleans up; twice skips cleanup."""
    from kubelab.output import reports
    from kubelab.output.terminal import ConsoleProgress, show_summary
    from kubelab.run.interrupt import stop_signals
    from kubelab.run.orchestrate import Runner

    if step and from_:
        raise KubelabError("use either --step or --from, not both")
    if report is not None and report.suffix not in (".json", ".xml"):
        raise KubelabError(f"cannot write a report to {report}", "name it *.json or *.xml (JUnit)")
    loaded = load_lab(lab)
    for step_id in (step, from_):
        if step_id:
            _known_step(loaded, step_id)
    with stop_signals(), _session(allow_context) as session:
        if install_addons:
            _install_missing_addons(session, loaded.lab)
        result = Runner(session, loaded, ConsoleProgress(console)).run(step, from_, keep)
    show_summary(console, result)
    if report is not None:
        reports.write(result, report)
        console.print(f"[dim]report: {report}[/]")
    if result.interrupted:
        raise typer.Exit(128 + signal.Signals[result.interrupted].value)
    raise typer.Exit(0 if result.passed else 1)


@app.command()
def check(
    lab: LabArg,
    step: StepOpt = None,
    upto: Annotated[
        str | None,
        typer.Option(
            "--upto",
            metavar="ID",
            help="Check the steps in order up to this one; stop at a failure.",
        ),
    ] = None,
    allow_context: AllowOpt = None,
) -> None:
    """Check my work: verify the expectations against the cluster as it is now (no commands
    are typed for you, except `command` expectations, which run as you)."""
    from kubelab.output.terminal import ConsoleProgress, show_step
    from kubelab.run.interrupt import stop_signals
    from kubelab.run.orchestrate import Runner

    if step and upto:
        raise KubelabError("use either --step or --upto, not both")
    loaded = load_lab(lab)
    for step_id in (step, upto):
        if step_id:
            _known_step(loaded, step_id)
    with stop_signals(), _session(allow_context) as session:
        result = Runner(session, loaded, ConsoleProgress(console)).check(step, upto)
    for item in result.steps:
        console.print(f"\n[bold]{escape(item.title)}[/] [dim]({item.id})[/]")
        show_step(console, item)
    raise typer.Exit(0 if result.passed else 1)


@app.command()
def reset(lab: LabArg, allow_context: AllowOpt = None) -> None:
    """Undo a lab: run its cleanup and remove its work folder (safe to run again)."""
    from kubelab.output.terminal import ConsoleProgress, show_step
    from kubelab.run.interrupt import stop_signals
    from kubelab.run.lock import RunLock
    from kubelab.run.orchestrate import Runner

    loaded = load_lab(lab)
    with stop_signals(), _session(allow_context) as session, RunLock(session.kube, lab):
        result = Runner(session, loaded, ConsoleProgress(console)).reset()
    show_step(console, result)
    raise typer.Exit(0 if result.status != "failed" else 1)


@app.command()
def lint(
    labs: Annotated[list[str] | None, typer.Argument(help="Lab names; default: every lab.")] = None,
) -> None:
    """Check labs without a cluster: schema, lesson and lab.yaml in step, files, no fixed
    sleeps, captures, and steps that need real containers. Exit 1 on any finding."""
    from kubelab.lab.lint import lint as lint_lab
    from kubelab.lab.loader import lab_names

    names = labs or lab_names()
    findings = [f for name in names for f in lint_lab(name)]
    for finding in findings:
        colour = "red" if finding.severity == "error" else "yellow"
        console.print(f"[{colour}]{escape(str(finding))}[/]", soft_wrap=True)
    console.print(f"{len(names)} lab(s) linted: {len(findings)} finding(s)")
    raise typer.Exit(1 if findings else 0)


@app.command()
def schema() -> None:
    """Print the JSON Schema of lab.yaml."""
    import json

    from kubelab.lab.model import json_schema

    sys.stdout.write(json.dumps(json_schema(), indent=2) + "\n")


@app.command()
def doctor(allow_context: AllowOpt = None) -> None:
    """Check this machine and the current cluster for the labs."""
    from kubelab.doctor import diagnose

    ok = diagnose(console, allow_context)
    raise typer.Exit(0 if ok else 1)


@app.command()
def up(
    lab: Annotated[str, typer.Argument(help="The lab to run first.")] = "probe-test-app",
    name: NameOpt = "kubelab",
    allow_context: AllowOpt = None,
) -> None:
    """The main job: check the machine, use the current local cluster (or start the embedded
    one when there is none) and run the first lab."""
    from kubelab.doctor import pick_cluster
    from kubelab.images import prepare_for_lab
    from kubelab.run.interrupt import stop_signals

    with stop_signals():  # a SIGTERM while the cluster starts rolls it back, like Ctrl-C
        pick_cluster(console, name, allow_context)
        loaded = load_lab(lab)
        with _session(allow_context) as session:
            prepare_for_lab(console, session.flavour, session.context.name, loaded.folder)
    run(lab, allow_context=allow_context)


def _known_step(loaded, step_id: str) -> None:
    try:
        loaded.lab.step(step_id)
    except KeyError as exc:
        raise KubelabError(str(exc.args[0]), f"see `kubelab show {loaded.lab.name}`") from None


# --- the embedded cluster -----------------------------------------------------------------------


@cluster_app.command("up")
def cluster_up(
    nodes: Annotated[
        int,
        typer.Option(
            "--nodes",
            min=0,
            max=50,
            help="simulated (kwok) nodes; on a running cluster, adds nodes up to this number",
        ),
    ] = 1,
    name: NameOpt = "kubelab",
    real_node: Annotated[
        bool,
        typer.Option(
            "--real-node",
            help="Also run a real node (kubelet + containerd; Linux and root): containers "
            "really run. Simulated nodes are then tainted so that Pods land on the real node.",
        ),
    ] = False,
) -> None:
    """Start the embedded cluster and make it the current context (like kind does)."""
    from kubelab.embedded import cluster
    from kubelab.output.terminal import dim_printer
    from kubelab.run.interrupt import stop_signals

    with stop_signals():  # SIGTERM/SIGHUP roll a half-started cluster back, like Ctrl-C
        result = cluster.up(
            nodes=nodes, name=name, progress=dim_printer(console), real_node=real_node
        )
    real = f", real node [bold]{result.real_node}[/]" if result.real_node else ""
    console.print(
        f"[green]embedded cluster up[/]: context [bold]{result.context}[/]{real} in "
        f"{result.seconds:.1f}s"
    )


@cluster_app.command("down")
def cluster_down(name: NameOpt = "kubelab") -> None:
    """Stop the embedded cluster and remove its context: no process or port is left behind."""
    from kubelab.embedded import cluster
    from kubelab.output.terminal import dim_printer

    cluster.down(name=name, progress=dim_printer(console))
    console.print("[green]embedded cluster down[/]")


@cluster_app.command("status")
def cluster_status(name: NameOpt = "kubelab") -> None:
    """Exit 0 only when the API answers and every node is Ready."""
    from kubelab.embedded import cluster

    state = cluster.status(name=name)
    real = cluster.real_node_name(name)
    for node_name, ready in state.nodes:
        kind = "real" if node_name == real else "simulated"
        console.print(
            f"  node {node_name} ({kind}): {'[green]Ready[/]' if ready else '[red]NotReady[/]'}"
        )
    console.print(state.message)
    ok = state.api_ok and bool(state.nodes) and all(r for _, r in state.nodes)
    raise typer.Exit(0 if ok else 1)


# --- images -----------------------------------------------------------------------------------


@images_app.command("build")
def images_build(
    app_name: Annotated[str | None, typer.Argument(metavar="[APP]")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the commands only.")] = False,
) -> None:
    """Build the apps' images with the local Docker, tagged as the lab manifests use them."""
    from kubelab.images import build_commands, execute

    execute(console, build_commands(app_name), dry_run)


@images_app.command("load")
def images_load(
    app_name: Annotated[str | None, typer.Argument(metavar="[APP]")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the commands only.")] = False,
    allow_context: AllowOpt = None,
) -> None:
    """Make the built images available to the current cluster when its flavour needs it."""
    from kubelab.images import execute, load_commands

    with _session(allow_context) as session:
        commands = load_commands(session.flavour, session.context.name, app_name)
    if not commands:
        console.print(
            f"nothing to do: {session.flavour.title} {escape(session.flavour.images_note)}"
        )
        return
    execute(console, commands, dry_run)


# --- add-ons ------------------------------------------------------------------------------------
# Kept at the end, in one section: `kubelab addons list | status | install NAME… | uninstall NAME…`

addons_app = typer.Typer(
    help="Cluster add-ons the labs need (metrics-server…): pinned Helm charts that outlive labs.",
    no_args_is_help=True,
    **PLAIN,
)
app.add_typer(addons_app, name="addons")
AddonNames = Annotated[list[str], typer.Argument(metavar="NAME...", help="Add-on names.")]


def _addon_progress(update):
    """One live line on a terminal; elsewhere (CI logs) a printed line per change of state."""
    if console.is_terminal:
        return lambda msg: update(escape(msg))
    import re

    last = [""]

    def say(msg: str) -> None:
        state = re.sub(r"\(\d+s\)", "", msg)  # the elapsed time alone is no news
        if state != last[0]:
            last[0] = state
            console.print(f"[dim]{escape(msg)}[/]")

    return say


@addons_app.command("list")
def addons_list(
    names_only: Annotated[
        bool, typer.Option("--names", help="Only the add-ons' names, one a line.")
    ] = False,
) -> None:
    """The add-ons kubelab can install: pinned chart, app version, where they go, what they need."""
    from kubelab import addons

    if names_only:  # for scripts: `kubelab addons list --names | xargs kubelab addons install`
        sys.stdout.write("".join(f"{name}\n" for name in addons.names()))
        return
    for name in addons.names():
        a = addons.get(name)
        console.print(f"[bold]{a.name}[/] — {escape(a.summary)}")
        console.print(f"  chart: {escape(a.chart.describe())} (app {a.app_version})")
        console.print(f"  release: {a.namespace}/{a.release}")
        console.print(f"  needs: {', '.join(a.needs) or '-'}")
        if a.local is not None:
            console.print("  embedded cluster: runs as a host process (no containers needed)")
        if a.provided_by:
            console.print(f"  provided by: {', '.join(a.provided_by)} (nothing to install there)")


@addons_app.command("status")
def addons_status(
    names: Annotated[list[str] | None, typer.Argument(metavar="[NAME]...")] = None,
    allow_context: AllowOpt = None,
) -> None:
    """Which add-ons are installed on the current cluster, and ready. Exit 0 when all asked are."""
    from rich.table import Table

    from kubelab.addons.manage import statuses

    with _session(allow_context) as session:
        found = statuses(session, names)
    table = Table("add-on", "status")
    for st in found:
        colour = "green" if st.ready else "yellow" if st.installed else "dim"
        table.add_row(st.addon, f"[{colour}]{escape(st.describe())}[/]")
    console.print(table)
    raise typer.Exit(0 if all(st.ready for st in found) else 1)


DryRunOpt = Annotated[
    bool,
    typer.Option(
        "--dry-run",
        help="Print what would be done (the exact helm and kubectl commands, the values file, "
        "or the host processes on the embedded cluster); change nothing.",
    ),
]


def _show_plans(names: list[str], action: str, allow_context: list[str] | None) -> None:
    from kubelab.addons.manage import plans

    with _session(allow_context) as session:
        found = plans(names, session, action)
    for plan in found:
        for line in plan.lines():
            console.print(escape(line), soft_wrap=True)
    console.print(f"[dim]dry run: nothing was {action}ed, nothing changed[/]")


@addons_app.command("install")
def addons_install(
    names: AddonNames,
    timeout: Annotated[
        float | None,
        typer.Option("--timeout", min=1, help="Seconds to wait for each to be ready."),
    ] = None,
    dry_run: DryRunOpt = False,
    allow_context: AllowOpt = None,
) -> None:
    """Install (or upgrade to the pinned chart) and wait until ready. Safe to repeat: an add-on
    already installed as pinned and ready is left alone, and the output says so."""
    from kubelab import addons
    from kubelab.addons.manage import install

    for name in names:
        addons.get(name)  # an unknown name fails before any cluster work
    if dry_run:
        _show_plans(names, "install", allow_context)
        return
    with _session(allow_context) as session, console.status("") as line:
        results = install(names, session, _addon_progress(line.update), timeout)
    for st in results:
        mark = "[green]✔[/]" if st.ready else "[yellow]![/]"
        same = " [bold]nothing changed[/] —" if st.changed is False else ""
        console.print(f"{mark} {st.addon}:{same} {escape(st.describe())}")


@addons_app.command("uninstall")
def addons_uninstall(
    names: AddonNames, dry_run: DryRunOpt = False, allow_context: AllowOpt = None
) -> None:
    """Remove add-ons kubelab installed, with the namespace and CRDs their install created
    (never one the cluster itself provides). Safe to repeat."""
    from kubelab import addons
    from kubelab.addons.manage import uninstall

    for name in names:
        addons.get(name)
    if dry_run:
        _show_plans(names, "uninstall", allow_context)
        return
    with _session(allow_context) as session:
        results = uninstall(names, session, lambda msg: console.print(f"[dim]{escape(msg)}[/]"))
    for st in results:
        console.print(f"{st.addon}: {escape(st.describe())}")


def _usage_error_types() -> tuple[type[BaseException], ...]:
    """Click's exception base as the installed typer raises it: typer >= 0.2x vendors click as
    typer._click, older ones use click itself."""
    found: list[type[BaseException]] = []
    for module in ("typer._click.exceptions", "click.exceptions"):
        try:
            found.append(__import__(module, fromlist=["ClickException"]).ClickException)
        except (ImportError, AttributeError):
            continue
    return tuple(found)


def main() -> None:
    import os

    command = typer.main.get_command(app)
    invoke = command.invoke

    def invoke_marking_interrupts(ctx):  # typer turns Ctrl-C into a silent Exit(130)
        try:
            return invoke(ctx)
        except KeyboardInterrupt:
            raise _Interrupted() from None

    command.invoke = invoke_marking_interrupts  # type: ignore[method-assign]
    try:
        code = command.main(prog_name="kubelab", standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except KubelabError as exc:
        err.print(f"[red]error:[/] {escape(exc.message)}")
        if exc.hint:
            err.print(f"  → {escape(exc.hint)}")
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt, _Interrupted):
        err.print("interrupted")
        sys.exit(130)
    except BaseException as exc:
        from kubelab.run.interrupt import Interrupted

        if isinstance(exc, Interrupted):  # a stop signal before the runner took over
            err.print(f"interrupted by {exc.name}")
            sys.exit(exc.exit_code)
        if not isinstance(exc, Exception):  # SystemExit and the like
            raise
        if isinstance(exc, _usage_error_types()):
            exc.show()  # type: ignore[attr-defined]  # click's usage line, "Try … --help"
            sys.exit(getattr(exc, "exit_code", 2))
        if os.environ.get("KUBELAB_DEBUG") == "1":
            import traceback

            traceback.print_exc()
        reason = str(exc).splitlines()[0] if str(exc) else ""
        err.print(f"[red]error:[/] {type(exc).__name__}: {escape(reason)}")
        err.print(
            "  → this is a bug: please report it with the command you ran"
            + ("" if os.environ.get("KUBELAB_DEBUG") == "1" else " (KUBELAB_DEBUG=1 shows details)")
        )
        sys.exit(70)  # EX_SOFTWARE


class _Interrupted(Exception):
    """Ctrl-C inside a command (kept apart from typer's Exit(130) so it can be named)."""
