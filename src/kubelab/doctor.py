"""`kubelab doctor` and `kubelab up`: is this machine and cluster ready for the labs?"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

from rich.console import Console
from rich.markup import escape

from kubelab.addons.manage import statuses
from kubelab.errors import KubelabError
from kubelab.flavours.embedded import is_fake
from kubelab.output.terminal import dim_printer
from kubelab.requirements import REQUIREMENT_HELP

OK, WARN, FAIL = "[green]✔[/]", "[yellow]![/]", "[red]✘[/]"


def _tool_version(argv: list[str], path: str) -> tuple[str | None, str]:
    exe = shutil.which(argv[0], path=path)
    if exe is None:
        return None, ""
    try:
        # a version needs no cluster, but helm reads $KUBECONFIG anyway and blocks for ever on
        # a FIFO or /dev/zero: give it an empty one
        env = {**os.environ, "KUBECONFIG": os.devnull}
        proc = subprocess.run([exe, *argv[1:]], capture_output=True, text=True, timeout=10, env=env)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return exe, f"(did not answer: {exc})"
    return exe, proc.stdout.strip() or proc.stderr.strip()


def _minor(version: str) -> int | None:
    m = re.match(r"v?(\d+)\.(\d+)", version or "")
    return int(m.group(2)) if m else None


def diagnose(console: Console, allow: list[str] | None = None) -> bool:
    from kubelab.kube.context import current_context
    from kubelab.session import Session, tool_path

    ok = True
    try:
        path = tool_path(current_context().name)
    except KubelabError:  # no usable kubeconfig: said below, after the tools
        path = tool_path()
    kubectl, out = _tool_version(["kubectl", "version", "--client", "-o", "json"], path)
    client_version = ""
    if kubectl is None:
        console.print(
            f"{FAIL} kubectl: not found — install it (README: prerequisites) or `make tools`"
        )
        ok = False
    else:
        try:
            client_version = json.loads(out)["clientVersion"]["gitVersion"]
        except (ValueError, KeyError):
            client_version = out.splitlines()[0] if out else "?"
        console.print(f"{OK} kubectl {client_version} [dim]({kubectl})[/]")
    helm, out = _tool_version(["helm", "version", "--short"], path)
    if helm is None:
        console.print(
            f"{FAIL} helm: not found — the Helm and operator labs need it "
            "(README: prerequisites, or `make tools`)"
        )
        ok = False
    else:
        console.print(f"{OK} helm {escape(out)} [dim]({helm})[/]")
    if kubectl is None:
        return False
    try:
        session = Session.open(allow)
    except KubelabError as exc:
        console.print(f"{FAIL} {escape(exc.message)}")
        if exc.hint:
            console.print(f"    → {escape(exc.hint)}")
        return False
    with session:
        if session.note:
            console.print(f"{WARN} {escape(session.note)}")
        console.print(
            f"{OK} context [bold]{escape(session.context.name)}[/] "
            f"[dim]({escape(session.context.server)})[/]"
        )
        server = session.kube.version()["gitVersion"]
        skew = None
        if _minor(server) is not None and _minor(client_version) is not None:
            skew = abs(_minor(server) - _minor(client_version))  # type: ignore[operator]
        mark = OK if skew is not None and skew <= 1 else WARN
        skew_note = (
            ""
            if skew is not None and skew <= 1
            else " — kubectl should be within one minor version of the server"
        )
        console.print(f"{mark} cluster reachable: Kubernetes {server}{skew_note}")
        flavour = session.flavour
        console.print(
            f"{OK} flavour: {flavour.title}"
            + (f" [dim]({flavour.notes})[/]" if flavour.notes else "")
        )
        caps = session.capabilities
        for req in (
            "containers",
            "loadbalancer",
            "default-storageclass",
            "metrics-api",
            "csr-signing",
        ):
            met, _ = caps.check(req)
            console.print(
                f"  {'[green]can[/]' if met else '[yellow]cannot[/]'}: {REQUIREMENT_HELP[req]}"
            )
        nodes = session.kube.nodes()
        simulated = [n["metadata"]["name"] for n in nodes if is_fake(n)]
        real = [n["metadata"]["name"] for n in nodes if not is_fake(n)]
        console.print(
            f"  nodes: {caps.node_count}"
            + (f"; running containers: {', '.join(real)}" if real and simulated else "")
            + (f"; simulated (kwok): {', '.join(simulated)}" if simulated else "")
        )
        console.print(f"  images: {escape(flavour.images_note)}")
        for st in statuses(session):
            mark = OK if st.ready else "[dim]-[/]"
            console.print(f"  {mark} add-on {st.addon}: {escape(st.describe())}")
        not_ready = session.kube.nodes_not_ready()
        if not_ready:
            console.print(f"{FAIL} nodes not Ready: {', '.join(not_ready)}")
            ok = False
    return ok


def pick_cluster(console: Console, name: str, allow: list[str] | None = None) -> None:
    """Use the current context when it is a reachable training cluster; else start ours."""
    from kubelab.session import Session

    try:
        with Session.open(allow) as session:
            if session.note:
                console.print(escape(session.note))
            console.print(
                f"using the current cluster: {session.context.name} ({session.flavour.title})"
            )
            return
    except KubelabError as exc:
        console.print(f"[yellow]{escape(exc.message)}[/]")
    console.print(
        "starting the embedded training cluster instead (`kubelab cluster down` stops it)"
    )
    from kubelab.embedded import build, cluster

    if build.missing():
        console.print("building its binaries first (once; see the README for how long it takes)")
        build.ensure_built(progress=dim_printer(console))
    result = cluster.up(name=name, progress=dim_printer(console))
    console.print(f"[green]embedded cluster up[/] in {result.seconds:.1f}s: {result.context}")
