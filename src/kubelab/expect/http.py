"""`http`: a Service or Pod answers through the API server's proxy (works on every flavour)."""

from __future__ import annotations

import json
from typing import Any

from pydantic import Field, model_validator

from kubelab.expect.base import CheckContext, Expectation, Outcome, names
from kubelab.expect.matching import mismatches, operator_errors
from kubelab.kube.client import HttpAnswer
from kubelab.kube.ready import pod_ready
from kubelab.lab.fields import HttpTarget


class HttpSpec(HttpTarget):
    status: int = 200
    contains: list[str] = Field(default_factory=list)
    json_: dict[str, Any] | None = Field(
        None, alias="json", description="a partial JSON object the body must match"
    )

    @model_validator(mode="after")
    def _operators(self) -> HttpSpec:
        if self.json_ and (errors := operator_errors(self.json_)):
            raise ValueError("; ".join(errors))
        return self


def request(
    h: HttpTarget, ctx: CheckContext, identity: str | None = None
) -> tuple[str | None, HttpAnswer | None]:
    """Send the request through the API server's proxy: (error, answer)."""
    kube = ctx.kube_as(identity)
    ns = h.namespace or ctx.namespace
    if h.service:
        kind, name = "service", h.service
    elif h.pod:
        kind, name = "pod", h.pod
    else:
        ready = sorted(names([p for p in kube.list("v1", "Pod", ns, h.selector) if pod_ready(p)]))
        if not ready:
            return f"no Ready pod matches -l {h.selector}", None
        kind, name = "pod", ready[0]
    return None, kube.proxy(kind, name, h.port, h.path, ns, h.method, h.form)


class Http(Expectation):
    KIND = "http"
    IMPLIES = ("containers",)
    http: HttpSpec

    def describe(self) -> str:
        h = self.http
        said = f" containing {', '.join(map(repr, h.contains))}" if h.contains else ""
        return f"{h.describe()} answers {h.status}{said}"

    def evaluate(self, ctx: CheckContext) -> Outcome:
        h = self.http
        error, answer = request(h, ctx, self.as_)
        if error or answer is None:
            return Outcome(False, self.describe(), error or "no answer")
        problems = []
        if answer.status != h.status:
            problems.append(f"answered {answer.status}, expected {h.status}")
        problems += [f"body does not contain {s!r}" for s in h.contains if s not in answer.body]
        if h.json_ is not None:
            try:
                problems += mismatches(h.json_, json.loads(answer.body))
            except ValueError:
                problems.append("body is not JSON")
        ns = h.namespace or ctx.namespace
        kind = "Service" if h.service else "Pod"
        rel = [(kind, h.service or h.pod or "", ns, None)] if (h.service or h.pod) else []
        live = {"status": answer.status, "body": answer.body[:500]}
        return Outcome(not problems, self.describe(), "; ".join(problems), live, rel)


EXPECTATION = Http
