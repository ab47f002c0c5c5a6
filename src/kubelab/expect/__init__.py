"""Evaluate expectations against the live cluster. Each evaluation is one observation; the runner
repeats it until it holds or the step's deadline passes."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubelab.kube.client import Kube, UnknownKind
from kubelab.lab import model as m
from kubelab.run.shell import CommandResult, run_shell

Related = tuple[str, str, str]  # kind, name, namespace: what diagnostics should look at


@dataclass
class Outcome:
    ok: bool
    summary: str  # what is expected, in words
    detail: str = ""  # why it does not hold (yet)
    live: Any = None  # the live values of the fields the expectation looks at
    related: list[Related] = field(default_factory=list)


@dataclass
class CheckContext:
    kube: Kube
    namespace: str
    env: dict[str, str]
    cwd: Path
    step_result: CommandResult | None = None


# --- partial objects ----------------------------------------------------------------------------


def mismatches(expected: Any, actual: Any, path: str = "") -> list[str]:
    """Where `actual` does not contain `expected`: maps by key, lists element by element."""
    here = path or "(object)"
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{here}: expected a map, found {_short(actual)}"]
        out: list[str] = []
        for key, value in expected.items():
            sub = f"{path}.{key}" if path else str(key)
            if key not in actual:
                out.append(f"{sub}: missing (expected {_short(value)})")
            else:
                out.extend(mismatches(value, actual[key], sub))
        return out
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return [f"{here}: expected a list, found {_short(actual)}"]
        if len(expected) != len(actual):
            return [f"{here}: expected {len(expected)} item(s), found {len(actual)}"]
        out = []
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            out.extend(mismatches(e, a, f"{path}[{i}]"))
        return out
    if _scalar_equal(expected, actual):
        return []
    return [f"{here}: expected {_short(expected)}, found {_short(actual)}"]


def _scalar_equal(expected: Any, actual: Any) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(expected) is type(actual) and expected == actual
    return expected == actual


def pick(expected: Any, actual: Any) -> Any:
    """The part of `actual` that `expected` talks about (to show a learner the live values)."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        return {k: pick(v, actual[k]) for k, v in expected.items() if k in actual}
    if isinstance(expected, list) and isinstance(actual, list):
        return [pick(e, a) for e, a in zip(expected, actual, strict=False)] + actual[
            len(expected) :
        ]
    return actual


def leaves(obj: Any, path: str = "") -> list[str]:
    """'a.b=1' strings for the leaves of a partial object (for one-line summaries)."""
    if isinstance(obj, dict):
        return [s for k, v in obj.items() for s in leaves(v, f"{path}.{k}" if path else str(k))]
    if isinstance(obj, list):
        return [s for i, v in enumerate(obj) for s in leaves(v, f"{path}[{i}]")]
    return [f"{path}={obj if isinstance(obj, str) else json.dumps(obj)}"]


def _short(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- evaluators ---------------------------------------------------------------------------------


def evaluate(expectation: Any, ctx: CheckContext) -> Outcome:
    for cls, fn in _EVALUATORS:
        if isinstance(expectation, cls):
            try:
                return fn(expectation, ctx)
            except UnknownKind as exc:
                return Outcome(False, describe(expectation, ctx), str(exc))
    raise TypeError(f"no evaluator for {type(expectation).__name__}")


def describe(expectation: Any, ctx: CheckContext) -> str:
    """One line saying what the expectation waits for."""
    e = expectation
    if isinstance(e, m.MatchExpectation):
        meta = e.match["metadata"]
        fields = [
            f
            for f in leaves({k: v for k, v in e.match.items() if k not in ("apiVersion", "kind")})
            if not f.startswith(("metadata.name=", "metadata.namespace="))
        ]
        shown = ", ".join(fields[:3]) + (" …" if len(fields) > 3 else "")
        return f"{e.match['kind']} {meta['name']}" + (f" with {shown}" if shown else " exists")
    if isinstance(e, m.AbsentExpectation):
        return f"{e.absent.describe()} is gone"
    if isinstance(e, m.CountExpectation):
        c = e.count
        if c.equals is not None:
            bound = f"exactly {c.equals}"
        else:
            bound = " and ".join(
                s
                for s in (
                    f"at least {c.min}" if c.min is not None else "",
                    f"at most {c.max}" if c.max is not None else "",
                )
                if s
            )
        where = f" with {', '.join(leaves(c.where))}" if c.where else ""
        return f"{bound} {c.kind}(s) -l {c.selector or c.name}{where}"
    if isinstance(e, m.ConditionExpectation):
        c = e.condition
        return f"{c.describe()} has condition {c.type}={c.status}"
    if isinstance(e, m.OutputExpectation):
        return _describe_output(e.output, "the step's output")
    if isinstance(e, m.CommandExpectation):
        return _describe_output(e.command, f"`{e.command.run}`")
    if isinstance(e, m.HttpExpectation):
        h = e.http
        return f"{h.describe()} answers {h.status}" + (
            f" containing {', '.join(map(repr, h.contains))}" if h.contains else ""
        )
    if isinstance(e, m.LogExpectation):
        who = e.log.pod or f"-l {e.log.selector}"
        return f"logs of pod {who} contain {e.log.contains!r}"
    return type(e).__name__


def _describe_output(spec: m.OutputExpectation.Spec, what: str) -> str:
    parts = []
    if spec.exit_code == "nonzero":
        parts.append("fails")
    elif spec.exit_code is not None:
        parts.append(f"exits {spec.exit_code}")
    parts += [f"prints {s!r}" for s in spec.contains]
    parts += [f"does not print {s!r}" for s in spec.not_contains]
    if spec.regex:
        parts.append(f"matches /{spec.regex}/")
    return f"{what} " + ", ".join(parts)


def _ns(namespace: str | None, ctx: CheckContext) -> str:
    return namespace or ctx.namespace


def _match(e: m.MatchExpectation, ctx: CheckContext) -> Outcome:
    meta = e.match["metadata"]
    ns = meta.get("namespace") or ctx.namespace
    summary = describe(e, ctx)
    related = [(e.match["kind"], meta["name"], ns)]
    obj = ctx.kube.get(e.match["apiVersion"], e.match["kind"], meta["name"], ns)
    if obj is None:
        return Outcome(False, summary, f"{e.match['kind']} {meta['name']} not found", None, related)
    problems = mismatches(e.match, obj)
    return Outcome(not problems, summary, "; ".join(problems), pick(e.match, obj), related)


def _objects(t: m.Target, ctx: CheckContext) -> list[dict]:
    ns = _ns(t.namespace, ctx)
    if t.name:
        obj = ctx.kube.get(t.api_version, t.kind, t.name, ns)
        return [obj] if obj else []
    return ctx.kube.list(t.api_version, t.kind, ns, t.selector)


def _names(objs: list[dict]) -> list[str]:
    return [o["metadata"]["name"] for o in objs]


def _absent(e: m.AbsentExpectation, ctx: CheckContext) -> Outcome:
    try:
        objs = _objects(e.absent, ctx)
    except UnknownKind:
        objs = []  # the kind itself is gone (e.g. its CRD was deleted): nothing of it exists
    summary = describe(e, ctx)
    if not objs:
        return Outcome(True, summary)
    ns = _ns(e.absent.namespace, ctx)
    return Outcome(
        False,
        summary,
        f"still there: {', '.join(_names(objs))}",
        _names(objs),
        [(e.absent.kind, n, ns) for n in _names(objs)],
    )


def _count(e: m.CountExpectation, ctx: CheckContext) -> Outcome:
    c = e.count
    objs = _objects(c, ctx)
    counted = [o for o in objs if not c.where or not mismatches(c.where, o)]
    n = len(counted)
    ok = (
        (c.equals is None or n == c.equals)
        and (c.min is None or n >= c.min)
        and (c.max is None or n <= c.max)
    )
    detail = f"found {n}: {', '.join(_names(counted)) or '(none)'}"
    if c.where and len(objs) != n:
        others = [o for o in objs if o not in counted]
        why = "; ".join(f"{o['metadata']['name']}: {mismatches(c.where, o)[0]}" for o in others[:3])
        detail += f" (not counted: {why})"
    ns = _ns(c.namespace, ctx)
    return Outcome(
        ok,
        describe(e, ctx),
        "" if ok else detail,
        _names(counted),
        [(c.kind, name, ns) for name in _names(objs)[:3]],
    )


def _condition(e: m.ConditionExpectation, ctx: CheckContext) -> Outcome:
    c = e.condition
    objs = _objects(c, ctx)
    summary = describe(e, ctx)
    ns = _ns(c.namespace, ctx)
    if not objs:
        return Outcome(False, summary, f"no {c.describe()} found")
    missing = []
    live = {}
    for obj in objs:
        conds = (obj.get("status") or {}).get("conditions") or []
        found = next((x for x in conds if x.get("type") == c.type), None)
        live[obj["metadata"]["name"]] = found
        if not found or found.get("status") != c.status:
            state = (
                f"{found.get('status')} ({found.get('reason') or ''} {found.get('message') or ''})"
                if found
                else "not reported"
            )
            missing.append(f"{obj['metadata']['name']}: {c.type} is {state.strip()}")
    related = [(c.kind, n, ns) for n in _names(objs)[:3]]
    return Outcome(not missing, summary, "; ".join(missing), live, related)


def _check_output(spec: m.OutputExpectation.Spec, result: CommandResult) -> list[str]:
    problems = []
    if spec.exit_code == "nonzero":
        if result.exit_code == 0:
            problems.append("exited 0 but was expected to fail")
    elif spec.exit_code is not None and result.exit_code != spec.exit_code:
        problems.append(f"exited {result.exit_code}, expected {spec.exit_code}")
    problems += [f"did not print {s!r}" for s in spec.contains if s not in result.output]
    problems += [f"printed {s!r}" for s in spec.not_contains if s in result.output]
    if spec.regex and not re.search(spec.regex, result.output, re.MULTILINE):
        problems.append(f"did not match /{spec.regex}/")
    return problems


def _output(e: m.OutputExpectation, ctx: CheckContext) -> Outcome:
    result = ctx.step_result
    if result is None:
        return Outcome(False, describe(e, ctx), "the step's commands were not run")
    problems = _check_output(e.output, result)
    return Outcome(not problems, describe(e, ctx), "; ".join(problems), result.output[-2000:])


def _command(e: m.CommandExpectation, ctx: CheckContext) -> Outcome:
    result = run_shell(e.command.run, cwd=ctx.cwd, env=ctx.env, timeout=30)
    problems = _check_output(e.command, result)
    return Outcome(not problems, describe(e, ctx), "; ".join(problems), result.output[-2000:])


def http_request(h: m.HttpTarget, ctx: CheckContext) -> tuple[str | None, Any]:
    """Send the request through the API server's proxy. Returns (error, answer)."""
    ns = _ns(h.namespace, ctx)
    if h.service:
        kind, name = "service", h.service
    elif h.pod:
        kind, name = "pod", h.pod
    else:
        pods = ctx.kube.list("v1", "Pod", ns, h.selector)
        ready = sorted(_names([p for p in pods if _pod_ready(p)]))
        if not ready:
            return f"no Ready pod matches -l {h.selector}", None
        kind, name = "pod", ready[0]
    return None, ctx.kube.proxy(kind, name, h.port, h.path, ns, h.method, h.form)


def _pod_ready(pod: dict) -> bool:
    conds = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds) and not (
        pod["metadata"].get("deletionTimestamp")
    )


def _http(e: m.HttpExpectation, ctx: CheckContext) -> Outcome:
    h = e.http
    summary = describe(e, ctx)
    error, answer = http_request(h, ctx)
    if error:
        return Outcome(False, summary, error)
    problems = []
    if answer.status != h.status:
        problems.append(f"answered {answer.status}, expected {h.status}")
    problems += [f"body does not contain {s!r}" for s in h.contains if s not in answer.body]
    if h.json_ is not None:
        try:
            problems += mismatches(h.json_, json.loads(answer.body))
        except ValueError:
            problems.append("body is not JSON")
    kind = "Service" if h.service else "Pod"
    related = [(kind, h.service or h.pod, _ns(h.namespace, ctx))] if (h.service or h.pod) else []
    return Outcome(
        not problems,
        summary,
        "; ".join(problems),
        {"status": answer.status, "body": answer.body[:500]},
        related,
    )


def _log(e: m.LogExpectation, ctx: CheckContext) -> Outcome:
    spec = e.log
    ns = _ns(spec.namespace, ctx)
    names = [spec.pod] if spec.pod else _names(ctx.kube.list("v1", "Pod", ns, spec.selector))
    summary = describe(e, ctx)
    if not names:
        return Outcome(False, summary, f"no pod matches -l {spec.selector}")
    for name in names:
        if spec.contains in ctx.kube.pod_logs(name, ns, spec.container):
            return Outcome(True, summary)
    return Outcome(
        False,
        summary,
        f"not in the logs of {', '.join(names)}",
        None,
        [("Pod", n, ns) for n in names[:3]],
    )


_EVALUATORS: list[tuple[type, Callable[[Any, CheckContext], Outcome]]] = [
    (m.MatchExpectation, _match),
    (m.AbsentExpectation, _absent),
    (m.CountExpectation, _count),
    (m.ConditionExpectation, _condition),
    (m.OutputExpectation, _output),
    (m.CommandExpectation, _command),
    (m.HttpExpectation, _http),
    (m.LogExpectation, _log),
]
