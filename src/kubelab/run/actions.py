"""What a step does besides typing commands: an HTTP request the runner sends itself (what a
learner clicks in a browser), and values captured from command output or from the cluster."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import jmespath

from kubelab.expect import CheckContext
from kubelab.expect.base import objects
from kubelab.expect.http import request
from kubelab.lab import model as m
from kubelab.run.shell import CommandResult

POLL_SECONDS = 0.5
Waiting = Callable[[str, float, float], None]


def send_http(
    action: m.HttpAction, ctx: CheckContext, timeout: float, waiting: Waiting
) -> tuple[CommandResult | None, str]:
    """Send the request until it is answered below 400 or the deadline passes:
    (what it answered, "") or (None, why not)."""
    h = action.http
    start = time.monotonic()
    while True:
        error, answer = request(h, ctx)
        if not error and answer is not None and answer.status < 400:
            text = f"HTTP {answer.status}\n{answer.body[:300]}"
            return CommandResult(h.describe(), 0, text, time.monotonic() - start), ""
        if time.monotonic() - start >= timeout:
            if answer is not None:
                return None, f"{h.describe()} answered {answer.status}: {answer.body[:200]}"
            return None, error or f"{h.describe()} did not answer"
        waiting(f"{h.describe()} to answer", time.monotonic() - start, timeout)
        time.sleep(POLL_SECONDS)


def capture_output(run: m.Run, output: str) -> tuple[dict[str, str], str]:
    """The values a command's `capture` asks for: (values, "") or ({}, why not)."""
    values = {}
    for name, pattern in (run.capture or {}).items():
        found = re.search(pattern, output, re.MULTILINE)
        if not found:
            return {}, f"capture {name}: /{pattern}/ is not in the output of `{run.cmd}`"
        values[name] = (found.group(1) if found.groups() else found.group(0)).strip()
    return values, ""


def capture_object(capture: m.ObjectCapture, ctx: CheckContext) -> str | None:
    """The value at `path` of the object (by name) or of {items: [...]} (by selector)."""
    found = objects(ctx.kube, capture, ctx.namespace)
    data: Any = found[0] if capture.name and found else {"items": found}
    if capture.name and not found:
        return None
    value = jmespath.search(capture.path, data)
    if value is None or isinstance(value, dict | list):
        return None
    return str(value)
