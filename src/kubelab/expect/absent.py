"""`absent`: no object of that name (or selector) exists; a kind the cluster no longer serves
counts as absent (its CRD was deleted)."""

from __future__ import annotations

from kubelab.expect.base import CheckContext, Expectation, Outcome, names, objects, related
from kubelab.kube.client import UnknownKind
from kubelab.lab.fields import Target


class Absent(Expectation):
    KIND = "absent"
    absent: Target

    def describe(self) -> str:
        return f"{self.absent.describe()} is gone"

    def evaluate(self, ctx: CheckContext) -> Outcome:
        try:
            objs = objects(ctx.kube_as(self.as_), self.absent, ctx.namespace)
        except UnknownKind:
            objs = []
        if not objs:
            return Outcome(True, self.describe())
        ns = self.absent.namespace or ctx.namespace
        return Outcome(
            False,
            self.describe(),
            f"still there: {', '.join(names(objs))}",
            names(objs),
            related(self.absent.kind, objs, ns),
        )


EXPECTATION = Absent
