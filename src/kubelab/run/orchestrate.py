"""Run a lab's steps as a learner would type them, wait for what must then be true, and clean up.

`run` types the commands (one shell session for the whole lab), waits for the expectations and
captures values; `check` only observes the cluster as the learner left it; `reset` runs the
cleanup. Runs hold the cluster's run lock; a stop signal ends the step and runs the cleanup.
"""

from __future__ import annotations

import shutil
import time
from typing import Any, Protocol

from kubelab import paths
from kubelab.expect import CheckContext, Expectation, Outcome, evaluate
from kubelab.lab import model as m
from kubelab.lab.loader import LoadedLab
from kubelab.run import actions
from kubelab.run.diagnose import diagnose
from kubelab.run.interrupt import Interrupted
from kubelab.run.lock import RunLock
from kubelab.run.results import RunReport, Status, StepReport
from kubelab.run.shell import ShellSession, run_once
from kubelab.session import Session

POLL_SECONDS = 0.5


class Progress(Protocol):
    """What the runner tells the person watching (the CLI draws it; tests may record it)."""

    def step_started(self, index: int, total: int, step: m.Step) -> None: ...
    def command_started(self, command: str) -> None: ...
    def waiting(self, what: str, elapsed: float, timeout: float) -> None: ...
    def step_finished(self, report: StepReport) -> None: ...
    def cleanup_started(self) -> None: ...
    def note(self, message: str) -> None: ...


class Runner:
    def __init__(self, session: Session, loaded: LoadedLab, progress: Progress) -> None:
        self.session = session
        self.loaded = loaded
        self.lab = loaded.lab
        self.progress = progress
        self.work = paths.work_dir(self.lab.name)
        self.env = {**session.env, "KUBELAB_WORK": str(self.work), "KUBELAB_LAB": self.lab.name}
        self.bindings: dict[str, str] = {}
        self._shell: ShellSession | None = None

    def _ctx(self) -> CheckContext:
        return CheckContext(
            kube=self.session.kube,
            namespace=self.lab.spec.namespace,
            env=self.env,
            cwd=self.loaded.folder,
            server=self.session.context.server,
            bindings=self.bindings,
        )

    def _report(self) -> RunReport:
        return RunReport(self.lab.name, self.session.context.name, self.session.flavour.name)

    def _unmet(self, step: m.Step) -> list[str]:
        return self.session.capabilities.unmet(step.effective_requires(self.lab.spec.requires))

    @property
    def shell(self) -> ShellSession:
        if self._shell is None:
            self.work.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._shell = ShellSession(self.loaded.folder, self.env)
        return self._shell

    def _close_shell(self) -> None:
        if self._shell is not None:
            self._shell.close()
            self._shell = None

    # --- run --------------------------------------------------------------------------------------

    def run(
        self, only: str | None = None, start: str | None = None, keep: bool = False
    ) -> RunReport:
        steps = self.lab.steps
        if only:
            steps = [self.lab.step(only)]
        elif start:
            steps = steps[steps.index(self.lab.step(start)) :]
        report = self._report()
        with RunLock(self.session.kube, self.lab.name):
            try:
                if not only and not start:
                    self.reset(quiet=True)  # leftovers of an earlier attempt would make steps lie
                for index, step in enumerate(steps, 1):
                    self.progress.step_started(index, len(steps), step)
                    result = self.run_step(step)
                    report.steps.append(result)
                    self.progress.step_finished(result)
                if not keep:
                    report.cleanup = self.reset()
            except Interrupted as first:
                self._close_shell()  # stops the step's commands: their process group is killed
                report.interrupted = first.name
                self._after_interrupt(first, report, keep)
            finally:
                self._close_shell()
        return report

    def _after_interrupt(self, signal: Interrupted, report: RunReport, keep: bool) -> None:
        if keep or signal.again:
            self.progress.note(f"{signal.name}: stopped; the lab's objects are left as they are")
            return
        self.progress.note(f"{signal.name}: stopped; cleaning up (send it again to skip)")
        try:
            report.cleanup = self.reset()
        except Interrupted as again:
            self.progress.note(f"{again.name} again: cleanup skipped (`kubelab reset` finishes it)")
            report.cleanup = StepReport("cleanup", "Clean up", "skipped", "interrupted again")

    def run_step(self, step: m.Step) -> StepReport:
        start = time.monotonic()
        if unmet := self._unmet(step):
            return StepReport(step.id, step.title, "skipped", "; ".join(unmet))
        timeout = self.lab.timeout_of(step)
        report = StepReport(step.id, step.title, "passed")
        for action in step.actions():
            error = self._act(action, report, timeout)
            if error:
                return self._fail(report, start, error)
        outcomes = self.wait(step.expect, timeout)
        failing = [o for o in outcomes if not o.ok]
        if failing:
            report.failures = [self._diagnose(o) for o in failing]
            report.hint = self._hint(step)
            first = step.expect[outcomes.index(failing[0])]
            waited = first.timeout or timeout
            return self._fail(report, start, f"not true after {waited:.0f}s: {failing[0].summary}")
        if error := self._capture_objects(step, report, timeout - (time.monotonic() - start)):
            return self._fail(report, start, error)
        report.seconds = time.monotonic() - start
        return report

    def _act(self, action: m.Action, report: StepReport, timeout: float) -> str:
        """Do one action; the reason the step stops here, or ""."""
        if isinstance(action, m.HttpAction):
            self.progress.command_started(f"(automated) {action.http.describe()}")
            result, error = actions.send_http(action, self._ctx(), timeout, self.progress.waiting)
            if result is not None:
                report.commands.append(result)
            return error
        run = m.as_run(action)
        self.progress.command_started(run.cmd)
        result = self.shell.run(run.cmd, timeout)
        report.commands.append(result)
        if result.timed_out:
            return f"`{run.cmd}` did not finish within {timeout:.0f}s"
        if problems := run.problems(result.exit_code, result.output):
            return f"`{run.cmd}` {'; '.join(problems)}"
        values, error = actions.capture_output(run, result.output)
        for name, value in values.items():
            self._bind(name, value, report)
        return error

    def _bind(self, name: str, value: str, report: StepReport) -> None:
        self.bindings[name] = value
        report.captured[name] = value
        self.shell.export(name, value)

    def _capture_objects(self, step: m.Step, report: StepReport, timeout: float) -> str:
        deadline = time.monotonic() + max(timeout, POLL_SECONDS)
        for name, capture in step.capture.items():
            while (value := actions.capture_object(capture, self._ctx())) is None:
                if time.monotonic() >= deadline:
                    return f"capture {name}: {capture.describe()} has no {capture.path}"
                time.sleep(POLL_SECONDS)
            self._bind(name, value, report)
        return ""

    def _fail(self, report: StepReport, start: float, reason: str) -> StepReport:
        report.status = "failed"
        report.reason = reason
        report.seconds = time.monotonic() - start
        return report

    def wait(self, expectations: list[Any], timeout: float) -> list[Outcome]:
        """Observe until every expectation holds, or one of them is past its own deadline; the
        last outcome of each. An expectation that held is not observed again."""
        ctx = self._ctx()
        start = time.monotonic()
        pending: dict[int, Expectation] = dict(enumerate(expectations))
        outcomes: dict[int, Outcome] = {}
        while True:
            for i, e in list(pending.items()):
                outcomes[i] = evaluate(e, ctx)
                if outcomes[i].ok:
                    del pending[i]
            elapsed = time.monotonic() - start
            late = [i for i, e in pending.items() if elapsed >= (e.timeout or timeout)]
            if not pending or late:
                return [outcomes[i] for i in range(len(expectations))]
            first = outcomes[min(pending)]
            own = pending[min(pending)].timeout or timeout
            text = first.summary + (f" — {first.detail}" if first.detail else "")
            self.progress.waiting(text, elapsed, own)
            time.sleep(POLL_SECONDS)

    def _diagnose(self, outcome: Outcome) -> Any:
        containers, _ = self.session.capabilities.check("containers")
        return diagnose(outcome, self.session.kube, containers)

    def _hint(self, step: m.Step) -> str:
        commands = [m.as_run(c).cmd for c in step.run]
        typed = "\n".join(f"    {c}" for c in commands)
        lines = [step.hint] if step.hint else []
        if commands:
            lines.append(
                f"step {step.id!r} ({step.title}): from labs/{self.lab.name}/ run\n{typed}"
            )
        return "\n".join(lines)

    # --- check and reset --------------------------------------------------------------------------

    def check(self, only: str | None = None, upto: str | None = None) -> RunReport:
        """Observe the cluster as the learner left it: no commands, no waiting. With `upto`, the
        steps in order up to that one, stopping at the first that fails."""
        report = self._report()
        if only:
            steps = [self.lab.step(only)]
        elif upto:
            steps = self.lab.steps[: self.lab.steps.index(self.lab.step(upto)) + 1]
        else:
            steps = self.lab.steps
        ctx = self._ctx()
        for step in steps:
            result = self._check_step(step, ctx)
            report.steps.append(result)
            if upto and result.status == "failed":
                break
        return report

    def _check_step(self, step: m.Step, ctx: CheckContext) -> StepReport:
        if unmet := self._unmet(step):
            return StepReport(step.id, step.title, "skipped", "; ".join(unmet))
        if not step.expect:
            why = "nothing to observe: this step is verified by its commands when `kubelab run`"
            return StepReport(step.id, step.title, "skipped", why)
        outcomes = [evaluate(e, ctx) for e in step.expect]
        failing = [o for o in outcomes if not o.ok]
        unbound = [o for o in failing if o.detail.endswith("has no value yet")]
        if unbound and len(unbound) == len(failing):
            why = f"{unbound[0].detail}: it is captured from a command's output; run the step"
            return StepReport(step.id, step.title, "skipped", why)
        status: Status = "failed" if failing else "passed"
        result = StepReport(step.id, step.title, status)
        if failing:
            result.reason = failing[0].summary + (
                f" — {failing[0].detail}" if failing[0].detail else ""
            )
            result.failures = [self._diagnose(o) for o in failing]
            result.hint = self._hint(step)
        else:
            for name, capture in step.capture.items():
                if (value := actions.capture_object(capture, ctx)) is not None:
                    self.bindings[name] = value
        return result

    def reset(self, quiet: bool = False) -> StepReport:
        """Run every cleanup command (idempotent; one failing does not stop the others), wait
        until the cleanup expectations hold, remove the lab's work folder."""
        cleanup = self.lab.spec.cleanup
        start = time.monotonic()
        report = StepReport("cleanup", "Clean up", "passed")
        if not quiet:
            self.progress.cleanup_started()
        env = {**self.env, **self.bindings}
        for command in cleanup.run:
            if not quiet:
                self.progress.command_started(command)
            result = run_once(command, self.loaded.folder, env, cleanup.timeout)
            report.commands.append(result)
            if result.exit_code != 0 and report.status != "failed":
                report.status, report.reason = "failed", f"`{command}` exited {result.exit_code}"
        failing = [o for o in self.wait(cleanup.expect, cleanup.timeout) if not o.ok]
        if failing:
            report.status = "failed"
            report.reason = f"left behind: {failing[0].summary} — {failing[0].detail}"
            report.failures = [self._diagnose(o) for o in failing]
        shutil.rmtree(self.work, ignore_errors=True)
        report.seconds = time.monotonic() - start
        return report
