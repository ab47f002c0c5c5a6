"""`count`: how many objects match a selector (optionally only those containing a partial
object), between bounds."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from kubelab.expect.base import CheckContext, Expectation, Outcome, names, objects, related
from kubelab.expect.match import container_fields
from kubelab.expect.matching import leaves, mismatches, operator_errors
from kubelab.lab.fields import Target


class CountSpec(Target):
    equals: int | None = Field(None, ge=0)
    min: int | None = Field(None, ge=0)
    max: int | None = Field(None, ge=0)
    where: dict[str, Any] | None = Field(
        None, description="a partial object (operators allowed); only objects matching it count"
    )

    @model_validator(mode="after")
    def _bounds(self) -> CountSpec:
        if self.equals is None and self.min is None and self.max is None:
            raise ValueError("a 'count' needs 'equals', 'min' or 'max'")
        if self.equals is not None and (self.min is not None or self.max is not None):
            raise ValueError("use either 'equals' or 'min'/'max', not both")
        if self.where and (errors := operator_errors(self.where)):
            raise ValueError("; ".join(errors))
        return self


class Count(Expectation):
    KIND = "count"
    count: CountSpec

    def describe(self) -> str:
        c = self.count
        if c.equals is not None:
            bound = f"exactly {c.equals}"
        else:
            parts = [f"at least {c.min}" if c.min is not None else "",
                     f"at most {c.max}" if c.max is not None else ""]  # fmt: skip
            bound = " and ".join(p for p in parts if p)
        where = f" with {', '.join(leaves(c.where))}" if c.where else ""
        return f"{bound} {c.kind}(s) -l {c.selector or c.name}{where}"

    def evaluate(self, ctx: CheckContext) -> Outcome:
        c = self.count
        objs = objects(ctx.kube_as(self.as_), c, ctx.namespace)
        counted = [o for o in objs if not c.where or not mismatches(c.where, o)]
        n = len(counted)
        ok = (
            (c.equals is None or n == c.equals)
            and (c.min is None or n >= c.min)
            and (c.max is None or n <= c.max)
        )
        detail = f"found {n}: {', '.join(names(counted)) or '(none)'}"
        if c.where and len(objs) != n:
            others = [o for o in objs if o not in counted]
            why = "; ".join(
                f"{o['metadata']['name']}: {mismatches(c.where, o)[0]}" for o in others[:3]
            )
            detail += f" (not counted: {why})"
        ns = c.namespace or ctx.namespace
        return Outcome(ok, self.describe(), "" if ok else detail, names(counted),
                       related(c.kind, objs, ns))  # fmt: skip

    def container_dependency(self) -> str | None:
        found = container_fields(self.count.where or {})
        return f"it counts by {found[0].split('=')[0]}" if found else None


EXPECTATION = Count
