"""What a person needs to see when an expectation does not hold: the live fields, the recent
events of the objects involved (by UID, so an older object of the same name does not confuse)
and, where containers run, their last log lines."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kubelab.expect import Outcome
from kubelab.run.results import Failure

if TYPE_CHECKING:
    from kubelab.kube.client import Kube

LOG_LINES = 20


def diagnose(outcome: Outcome, kube: Kube, containers: bool) -> Failure:
    failure = Failure(outcome.summary, outcome.detail, outcome.live)
    for kind, name, namespace, uid in outcome.related:
        try:
            failure.events += kube.events_for(namespace, name, uid)
            if kind == "Pod" and containers:
                failure.logs[name] = kube.pod_logs(name, namespace, tail=LOG_LINES)
        except Exception as exc:  # diagnostics never hide the failure they explain
            failure.logs.setdefault(name, f"(could not collect: {exc})")
    return failure
