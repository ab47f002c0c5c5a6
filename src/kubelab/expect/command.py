"""`command`: a check command, run until it exits and prints as declared. It runs in a shell of
its own (not the lab's session), from the lab's folder, with the lab's environment."""

from __future__ import annotations

import re

from pydantic import Field

from kubelab.expect.base import CheckContext, Expectation, Outcome
from kubelab.lab.fields import OutputRules

# Commands whose result depends on a container really running.
_CONTAINER_COMMANDS = re.compile(r"\bkubectl\b.*\s(exec|logs|port-forward|cp|attach|top)(\s|$)")


def container_command(command: str) -> str | None:
    """Why a shell command needs a running container (`kubectl exec`, `logs`...), or None."""
    m = _CONTAINER_COMMANDS.search(command)
    return f"`kubectl {m.group(1)}` needs a running container" if m else None


CHECK_TIMEOUT_S = 30


class CommandSpec(OutputRules):
    run: str = Field(description="a shell command (bash), run from the lab's folder")


class Command(Expectation):
    KIND = "command"
    command: CommandSpec

    def describe(self) -> str:
        who = f" as {self.as_}" if self.as_ else ""
        return f"`{self.command.run}`{who} {self.command.describe()}"

    def evaluate(self, ctx: CheckContext) -> Outcome:
        from kubelab.run.shell import run_once

        env = ctx.env
        if self.as_:
            ctx.kube_as(self.as_)  # the identity must point at this training cluster
            env = {**env, "KUBECONFIG": str(ctx.kubeconfig_of(self.as_))}
        env = {**env, **ctx.bindings}
        result = run_once(self.command.run, cwd=ctx.cwd, env=env, timeout=CHECK_TIMEOUT_S)
        problems = self.command.problems(result.exit_code, result.output)
        if result.timed_out:
            problems.insert(0, f"did not finish within {CHECK_TIMEOUT_S}s")
        return Outcome(not problems, self.describe(), "; ".join(problems), result.output[-2000:])

    def container_dependency(self) -> str | None:
        return container_command(self.command.run)


EXPECTATION = Command
