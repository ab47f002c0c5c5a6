"""`log`: a line in the logs of a Pod (or of any Pod matching a selector)."""

from __future__ import annotations

import re

from pydantic import model_validator

from kubelab.expect.base import CheckContext, Expectation, Outcome, names
from kubelab.lab.fields import Strict, check_regex


class LogSpec(Strict):
    pod: str | None = None
    selector: str | None = None
    namespace: str | None = None
    container: str | None = None
    contains: str | None = None
    regex: str | None = None

    @model_validator(mode="after")
    def _one(self) -> LogSpec:
        if (self.pod is None) == (self.selector is None):
            raise ValueError("give exactly one of 'pod' or 'selector'")
        if (self.contains is None) == (self.regex is None):
            raise ValueError("give exactly one of 'contains' or 'regex'")
        if self.regex is not None:
            check_regex(self.regex)
        return self

    def found_in(self, text: str) -> bool:
        if self.contains is not None:
            return self.contains in text
        return re.search(self.regex or "", text, re.MULTILINE) is not None


class Log(Expectation):
    KIND = "log"
    IMPLIES = ("containers",)
    log: LogSpec

    def describe(self) -> str:
        who = self.log.pod or f"-l {self.log.selector}"
        what = repr(self.log.contains) if self.log.contains is not None else f"/{self.log.regex}/"
        return f"logs of pod {who} contain {what}"

    def evaluate(self, ctx: CheckContext) -> Outcome:
        spec = self.log
        kube = ctx.kube_as(self.as_)
        ns = spec.namespace or ctx.namespace
        pods = [spec.pod] if spec.pod else names(kube.list("v1", "Pod", ns, spec.selector))
        if not pods:
            return Outcome(False, self.describe(), f"no pod matches -l {spec.selector}")
        for name in pods:
            if spec.found_in(kube.pod_logs(name, ns, spec.container)):
                return Outcome(True, self.describe())
        return Outcome(False, self.describe(), f"not in the logs of {', '.join(pods)}", None,
                       [("Pod", n, ns, None) for n in pods[:3]])  # fmt: skip


EXPECTATION = Log
