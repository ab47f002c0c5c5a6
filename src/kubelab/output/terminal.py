"""How a run looks in a terminal: a live line saying what it waits for, and readable failures."""

from __future__ import annotations

from collections.abc import Callable

import yaml
from rich.console import Console
from rich.markup import escape
from rich.status import Status

from kubelab.lab import model as m
from kubelab.run.results import RunReport, StepReport

MARK = {
    "passed": "[green]✔ passed[/]",
    "failed": "[red]✘ failed[/]",
    "skipped": "[yellow]∅ skipped[/]",
}


class ConsoleProgress:
    def __init__(self, console: Console) -> None:
        self.console = console
        self.status: Status | None = None

    def step_started(self, index: int, total: int, step: m.Step) -> None:
        self._stop()
        mark = " [dim](interactive: automated equivalent)[/]" if step.interactive else ""
        self.console.print(
            f"\n[bold]{index}/{total} {escape(step.title)}[/] [dim]({step.id})[/]{mark}"
        )

    def command_started(self, command: str) -> None:
        self._stop()
        self.console.print(f"  [cyan]$[/] {escape(command)}")

    def waiting(self, what: str, elapsed: float, timeout: float) -> None:
        text = f"waiting for {escape(what[:150])} [dim]({elapsed:.0f}s/{timeout:.0f}s)[/]"
        if not self.console.is_terminal:
            return  # a log file gets the outcome, not a spinner's frames
        if self.status is None:
            self.status = self.console.status(text)
            self.status.start()
        else:
            self.status.update(text)

    def note(self, message: str) -> None:
        self._stop()
        self.console.print(f"[yellow]{escape(message)}[/]")

    def cleanup_started(self) -> None:
        self._stop()
        self.console.print("\n[bold]Clean up[/]")

    def step_finished(self, report: StepReport) -> None:
        self._stop()
        show_step(self.console, report)

    def _stop(self) -> None:
        if self.status is not None:
            self.status.stop()
            self.status = None


def dim_printer(console: Console) -> Callable[[str], None]:
    """A progress callback that prints each message dimmed (build and cluster chatter)."""
    return lambda message: console.print(f"[dim]{escape(message)}[/]")


def show_step(console: Console, report: StepReport) -> None:
    why = f" — {escape(report.reason)}" if report.reason else ""
    console.print(f"  {MARK[report.status]} [dim]{report.seconds:.1f}s[/]{why}")
    for name, value in report.captured.items():
        console.print(f"  [dim]captured {name}={escape(value)}[/]")
    if report.status != "failed":
        return
    for command in report.commands:
        if command.exit_code != 0 or not report.failures:
            console.print(
                f"  [bold]output of[/] `{escape(command.command)}` (exit {command.exit_code}):"
            )
            for line in command.output.rstrip().splitlines()[-30:]:
                console.print(f"    {escape(line)}", highlight=False)
    for failure in report.failures:
        console.print(f"  [bold]expected:[/] {escape(failure.summary)}")
        if failure.detail:
            console.print(f"  [bold]but:[/] {escape(failure.detail)}")
        if failure.live is not None:
            console.print("  [bold]live:[/]")
            dumped = yaml.safe_dump(failure.live, sort_keys=False, default_flow_style=False)
            for line in dumped.rstrip().splitlines()[:40]:
                console.print(f"    {escape(line)}", highlight=False)
        if failure.events:
            console.print("  [bold]recent events:[/]")
            for e in failure.events:
                console.print(
                    f"    {e['type']:<8} {e['reason']:<18} {e['object']}: {escape(e['message'])}",
                    highlight=False,
                )
        for pod, logs in failure.logs.items():
            console.print(f"  [bold]logs of {pod}:[/]")
            for line in logs.rstrip().splitlines()[-20:]:
                console.print(f"    {escape(line)}", highlight=False)
    if report.hint:
        console.print(f"  [bold]hint:[/] {escape(report.hint)}")


def show_summary(console: Console, report: RunReport) -> None:
    counts = report.counts
    if report.cleanup is not None:
        show_step(console, report.cleanup)
    if report.interrupted:
        console.print(f"[red]interrupted by {report.interrupted}[/]")
    colour = "green" if report.passed else "red"
    console.print(
        f"\n[{colour}]{report.lab}: {counts['passed']} passed, {counts['failed']} failed, "
        f"{counts['skipped']} skipped[/] on {report.context} ({report.flavour})"
    )
