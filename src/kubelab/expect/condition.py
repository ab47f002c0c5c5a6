"""`condition`: objects report a status condition (Ready, Available, Complete, Established...)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from kubelab.expect.base import CheckContext, Expectation, Outcome, objects, related
from kubelab.kube.ready import condition
from kubelab.lab.fields import Target

# Conditions only a real container can bring about: a simulated node completes every Job at once.
_CONTAINER_CONDITIONS = {("Job", "Complete"), ("Job", "Failed"), ("Job", "SuccessCriteriaMet"),
                         ("Job", "FailureTarget"), ("Pod", "Initialized")}  # fmt: skip


class ConditionSpec(Target):
    type: str = Field(description="e.g. Ready, Available, Complete, Established")
    status: Literal["True", "False", "Unknown"] = "True"


class Condition(Expectation):
    KIND = "condition"
    condition: ConditionSpec

    def describe(self) -> str:
        c = self.condition
        return f"{c.describe()} has condition {c.type}={c.status}"

    def evaluate(self, ctx: CheckContext) -> Outcome:
        c = self.condition
        objs = objects(ctx.kube_as(self.as_), c, ctx.namespace)
        ns = c.namespace or ctx.namespace
        if not objs:
            return Outcome(False, self.describe(), f"no {c.describe()} found")
        missing = []
        live = {}
        for obj in objs:
            found = condition(obj, c.type)
            live[obj["metadata"]["name"]] = found
            if not found or found.get("status") != c.status:
                state = (
                    f"{found.get('status')} ({found.get('reason') or ''} "
                    f"{found.get('message') or ''})"
                    if found
                    else "not reported"
                )
                missing.append(f"{obj['metadata']['name']}: {c.type} is {state.strip()}")
        return Outcome(not missing, self.describe(), "; ".join(missing), live,
                       related(c.kind, objs, ns))  # fmt: skip

    def container_dependency(self) -> str | None:
        c = self.condition
        if (c.kind, c.type) in _CONTAINER_CONDITIONS:
            return f"a simulated node fakes {c.kind} {c.type}"
        if c.kind == "Pod" and c.type in ("Ready", "ContainersReady") and c.status != "True":
            return "only a real container fails its readiness probe"
        return None


EXPECTATION = Condition
