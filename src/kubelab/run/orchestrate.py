"""Run a lab's steps as a learner would type them, and wait for what must then be true."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from kubelab.expect import CheckContext, Outcome, describe, evaluate, http_request
from kubelab.lab import model as m
from kubelab.lab.loader import LoadedLab
from kubelab.run.shell import CommandResult, run_shell
from kubelab.session import Session

POLL_SECONDS = 0.5
Status = Literal["passed", "failed", "skipped"]


@dataclass
class Failure:
    summary: str
    detail: str
    live: Any = None
    events: list[dict] = field(default_factory=list)
    logs: dict[str, str] = field(default_factory=dict)


@dataclass
class StepReport:
    id: str
    title: str
    status: Status
    reason: str = ""
    seconds: float = 0.0
    commands: list[CommandResult] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    hint: str = ""


@dataclass
class RunReport:
    lab: str
    context: str
    flavour: str
    steps: list[StepReport] = field(default_factory=list)
    cleanup: StepReport | None = None

    @property
    def counts(self) -> dict[Status, int]:
        statuses: tuple[Status, ...] = ("passed", "failed", "skipped")
        return {s: sum(1 for step in self.steps if step.status == s) for s in statuses}

    @property
    def passed(self) -> bool:
        steps_ok = all(s.status != "failed" for s in self.steps)
        return steps_ok and (self.cleanup is None or self.cleanup.status != "failed")


class Progress(Protocol):
    """What the runner tells the person watching (the CLI draws it; tests may record it)."""

    def step_started(self, index: int, total: int, step: m.Step) -> None: ...
    def command_started(self, command: str) -> None: ...
    def waiting(self, what: str, elapsed: float, timeout: float) -> None: ...
    def step_finished(self, report: StepReport) -> None: ...
    def cleanup_started(self) -> None: ...


class Runner:
    def __init__(self, session: Session, loaded: LoadedLab, progress: Progress) -> None:
        self.session = session
        self.loaded = loaded
        self.lab = loaded.lab
        self.progress = progress

    def _ctx(self, result: CommandResult | None = None) -> CheckContext:
        return CheckContext(
            kube=self.session.kube,
            namespace=self.lab.spec.namespace,
            env=self.session.env,
            cwd=self.loaded.folder,
            step_result=result,
        )

    def _report(self) -> RunReport:
        return RunReport(self.lab.name, self.session.context.name, self.session.flavour.name)

    # --- run --------------------------------------------------------------------------------------

    def run(
        self, only: str | None = None, start: str | None = None, keep: bool = False
    ) -> RunReport:
        steps = self.lab.steps
        if only:
            steps = [self.lab.step(only)]
        elif start:
            first = self.lab.step(start)
            steps = steps[steps.index(first) :]
        report = self._report()
        if not only and not start:
            self.reset(quiet=True)  # leftovers of an earlier attempt would make steps lie
        for index, step in enumerate(steps, 1):
            self.progress.step_started(index, len(steps), step)
            result = self.run_step(step)
            report.steps.append(result)
            self.progress.step_finished(result)
        if not keep:
            report.cleanup = self.reset()
        return report

    def run_step(self, step: m.Step) -> StepReport:
        start = time.monotonic()
        unmet = self.session.capabilities.unmet(step.effective_requires(self.lab.spec.requires))
        if unmet:
            return StepReport(step.id, step.title, "skipped", "; ".join(unmet))
        timeout = self.lab.timeout_of(step)
        report = StepReport(step.id, step.title, "passed")
        expects_output = any(isinstance(e, m.OutputExpectation) for e in step.expect)
        last: CommandResult | None = None
        for action in step.actions():
            if isinstance(action, m.HttpAction):
                error = self._http_action(action, report, timeout)
                if error:
                    return self._fail(report, start, error)
                continue
            self.progress.command_started(action)
            last = run_shell(action, cwd=self.loaded.folder, env=self.session.env, timeout=timeout)
            report.commands.append(last)
            if last.timed_out:
                return self._fail(report, start, f"`{action}` did not finish within {timeout:.0f}s")
            if last.exit_code != 0 and not expects_output:
                return self._fail(report, start, f"`{action}` exited {last.exit_code}")
        if expects_output and last is not None:
            # the output expectation is about all of the step's commands, as a learner saw them
            last = CommandResult(
                last.command,
                last.exit_code,
                "".join(c.output for c in report.commands),
                sum(c.seconds for c in report.commands),
            )
        outcomes = self.wait(step.expect, timeout, last)
        failing = [o for o in outcomes if not o.ok]
        if failing:
            report.failures = [self._diagnose(o) for o in failing]
            return self._fail(report, start, f"not true after {timeout:.0f}s: {failing[0].summary}")
        report.seconds = time.monotonic() - start
        return report

    def _http_action(self, action: m.HttpAction, report: StepReport, timeout: float) -> str | None:
        h = action.http
        self.progress.command_started(f"(automated) {h.describe()}")
        start = time.monotonic()
        deadline = start + timeout
        while True:
            error, answer = http_request(h, self._ctx())
            if not error and answer.status < 400:
                report.commands.append(
                    CommandResult(h.describe(), 0, f"HTTP {answer.status}\n{answer.body[:300]}", 0)
                )
                return None
            if time.monotonic() >= deadline:
                return error or f"{h.describe()} answered {answer.status}: {answer.body[:200]}"
            self.progress.waiting(f"{h.describe()} to answer", time.monotonic() - start, timeout)
            time.sleep(POLL_SECONDS)

    def _fail(self, report: StepReport, start: float, reason: str) -> StepReport:
        report.status = "failed"
        report.reason = reason
        report.seconds = time.monotonic() - start
        return report

    def wait(
        self, expectations: list[Any], timeout: float, result: CommandResult | None = None
    ) -> list[Outcome]:
        """Observe until every expectation holds or the deadline passes; the last observation."""
        ctx = self._ctx(result)
        start = time.monotonic()
        deadline = start + timeout
        while True:
            outcomes = [evaluate(e, ctx) for e in expectations]
            pending = [o for o in outcomes if not o.ok]
            now = time.monotonic()
            if not pending or now >= deadline:
                return outcomes
            waiting = pending[0].summary + (f" — {pending[0].detail}" if pending[0].detail else "")
            self.progress.waiting(waiting, now - start, timeout)
            time.sleep(min(POLL_SECONDS, max(0.0, deadline - now)))

    def _diagnose(self, outcome: Outcome) -> Failure:
        """What a person needs to see: the live fields, recent events, pod logs."""
        failure = Failure(outcome.summary, outcome.detail, outcome.live)
        kube = self.session.kube
        for kind, name, ns in outcome.related:
            failure.events += kube.events_for(ns, name)
            if kind == "Pod" and self.session.flavour.containers:
                failure.logs[name] = kube.pod_logs(name, ns, tail=20)
        return failure

    # --- check and reset --------------------------------------------------------------------------

    def check(self, only: str | None = None) -> RunReport:
        """Observe the cluster as it is (the learner ran the commands); no waiting, no commands."""
        report = self._report()
        steps = [self.lab.step(only)] if only else self.lab.steps
        for step in steps:
            unmet = self.session.capabilities.unmet(step.effective_requires(self.lab.spec.requires))
            if unmet:
                report.steps.append(StepReport(step.id, step.title, "skipped", "; ".join(unmet)))
                continue
            checkable = [e for e in step.expect if not isinstance(e, m.OutputExpectation)]
            if not checkable:
                report.steps.append(
                    StepReport(
                        step.id,
                        step.title,
                        "skipped",
                        "nothing to observe: this step is verified by its commands' output",
                    )
                )
                continue
            ctx = self._ctx()
            failing = [o for o in (evaluate(e, ctx) for e in checkable) if not o.ok]
            status: Status = "failed" if failing else "passed"
            result = StepReport(step.id, step.title, status)
            if failing:
                result.reason = failing[0].summary + (
                    f" — {failing[0].detail}" if failing[0].detail else ""
                )
                result.failures = [self._diagnose(o) for o in failing]
                result.hint = self._hint(step)
            report.steps.append(result)
        return report

    def _hint(self, step: m.Step) -> str:
        commands = step.run or [describe(e, self._ctx()) for e in step.expect]
        where = f"labs/{self.lab.name}/"
        typed = "\n".join(f"    {c}" for c in commands)
        return f"step {step.id!r} ({step.title}): from {where} run\n{typed}"

    def reset(self, quiet: bool = False) -> StepReport:
        """Run the cleanup commands (idempotent) and wait until the cleanup expectations hold."""
        cleanup = self.lab.spec.cleanup
        start = time.monotonic()
        report = StepReport("cleanup", "Clean up", "passed")
        if not quiet:
            self.progress.cleanup_started()
        for command in cleanup.run:
            if not quiet:
                self.progress.command_started(command)
            result = run_shell(command, self.loaded.folder, self.session.env, cleanup.timeout)
            report.commands.append(result)
            if result.exit_code != 0:
                report.status, report.reason = "failed", f"`{command}` exited {result.exit_code}"
        failing = [o for o in self.wait(cleanup.expect, cleanup.timeout) if not o.ok]
        if failing:
            report.status = "failed"
            report.reason = f"left behind: {failing[0].summary} — {failing[0].detail}"
            report.failures = [self._diagnose(o) for o in failing]
        report.seconds = time.monotonic() - start
        return report
