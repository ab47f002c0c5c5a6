"""The report model of a run or a check: what each step did and why it passed, failed or was
skipped. The runner fills it; output/ shows it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from kubelab.run.shell import CommandResult

Status = Literal["passed", "failed", "skipped"]
STATUSES: tuple[Status, ...] = ("passed", "failed", "skipped")


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
    captured: dict[str, str] = field(default_factory=dict)


@dataclass
class RunReport:
    lab: str
    context: str
    flavour: str
    steps: list[StepReport] = field(default_factory=list)
    cleanup: StepReport | None = None
    interrupted: str = ""  # the signal that stopped the run, if one did

    @property
    def counts(self) -> dict[Status, int]:
        return {s: sum(1 for step in self.steps if step.status == s) for s in STATUSES}

    @property
    def passed(self) -> bool:
        steps_ok = all(s.status != "failed" for s in self.steps)
        cleanup_ok = self.cleanup is None or self.cleanup.status != "failed"
        return steps_ok and cleanup_ok and not self.interrupted
