"""`match`: a live object contains a partial object (maps by key, lists as written, operators)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from kubelab.expect.base import CheckContext, Expectation, Outcome, related
from kubelab.expect.matching import leaves, mismatches, operator_errors, pick

# Fields whose value only a running container produces (a simulated node fakes or never sets
# them): `kubelab lint` asks for `requires: [containers]` where an expectation names them.
CONTAINER_FIELDS = ("restartCount", "initContainerStatuses", "lastState", "terminated")


def container_fields(partial: Any) -> list[str]:
    return [f for f in leaves(partial) if any(c in f for c in CONTAINER_FIELDS)]


class Match(Expectation):
    KIND = "match"
    match: dict[str, Any] = Field(
        description="a partial object: apiVersion, kind, metadata.name and any fields the live "
        "object must contain; lists are matched as written unless an operator ($some, "
        "$includes, ...) says otherwise"
    )

    @model_validator(mode="after")
    def _identifies_object(self) -> Match:
        meta = self.match.get("metadata")
        if not self.match.get("apiVersion") or not self.match.get("kind"):
            raise ValueError("a 'match' object needs 'apiVersion' and 'kind'")
        if not isinstance(meta, dict) or not isinstance(meta.get("name"), str):
            raise ValueError("a 'match' object needs 'metadata.name'")
        if errors := operator_errors(self.match):
            raise ValueError("; ".join(errors))
        return self

    def describe(self) -> str:
        meta = self.match["metadata"]
        rest = {k: v for k, v in self.match.items() if k not in ("apiVersion", "kind")}
        fields = [
            f for f in leaves(rest) if not f.startswith(("metadata.name=", "metadata.namespace="))
        ]
        shown = ", ".join(fields[:3]) + (" …" if len(fields) > 3 else "")
        return f"{self.match['kind']} {meta['name']}" + (f" with {shown}" if shown else " exists")

    def evaluate(self, ctx: CheckContext) -> Outcome:
        meta = self.match["metadata"]
        ns = meta.get("namespace") or ctx.namespace
        kind = self.match["kind"]
        obj = ctx.kube_as(self.as_).get(self.match["apiVersion"], kind, meta["name"], ns)
        if obj is None:
            return Outcome(False, self.describe(), f"{kind} {meta['name']} not found", None,
                           [(kind, meta["name"], ns, None)])  # fmt: skip
        problems = mismatches(self.match, obj)
        return Outcome(
            not problems,
            self.describe(),
            "; ".join(problems),
            pick(self.match, obj),
            related(kind, [obj], ns),
        )

    def container_dependency(self) -> str | None:
        found = container_fields(self.match)
        return f"it looks at {found[0].split('=')[0]}" if found else None


EXPECTATION = Match
