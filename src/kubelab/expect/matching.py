"""Partial objects, as chainsaw/kuttl assert them, plus a few operators.

A plain map matches when every key it names matches (other keys are ignored); a plain list
matches element by element and must have the same length; scalars must be equal. A map key that
starts with `$` is an operator applied to the value at that place (several combine with AND, and
they may sit beside plain keys):

    $some: X          some element of the list matches X (any order, extra elements tolerated)
    $every: X         every element of the list matches X
    $includes: [X, Y] each of X, Y matches a different element, in any order; extras tolerated
    $unordered: [X,Y] the same, and the list has exactly that many elements
    $exists: bool     the key is there (true) or not (false)
    $nonEmpty: true   there, and not null, "", [] or {}
    $gt/$gte/$lt/$lte/$ne: N   numeric comparisons ($ne also compares strings)
    $len: N | {$gte: N, ...}   the length of a list, map or string
    $regex: RE        a string that RE matches (re.search)
    $expr: JMESPATH   a JMESPath expression on the value (`@`) that must be truthy
    $not: X           X must not match
"""

from __future__ import annotations

import json
import re
from typing import Any

import jmespath
from jmespath.exceptions import JMESPathError

_MISSING = object()
NUMERIC = {"$gt", "$gte", "$lt", "$lte"}
OPERATORS = {
    "$some",
    "$every",
    "$includes",
    "$unordered",
    "$exists",
    "$nonEmpty",
    "$ne",
    "$len",
    "$regex",
    "$expr",
    "$not",
    *NUMERIC,
}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def operator_errors(expected: Any, path: str = "") -> list[str]:
    """Problems with the operators in a partial object (checked when a lab is loaded)."""
    if isinstance(expected, list):
        return [e for i, x in enumerate(expected) for e in operator_errors(x, f"{path}[{i}]")]
    if not isinstance(expected, dict):
        return []
    errors: list[str] = []
    for key, value in expected.items():
        if not isinstance(key, str) or not key.startswith("$"):
            errors += operator_errors(value, f"{path}.{key}" if path else str(key))
            continue
        sub = path or "(top)"  # an operator's problem is named by the place it tests
        if key not in OPERATORS:
            known = ", ".join(sorted(OPERATORS))
            errors.append(f"{sub}: unknown operator {key!r}; the operators are: {known}")
        elif key in NUMERIC and not _is_number(value):
            errors.append(f"{sub}: {key} compares numbers; got {_short(value)}")
        elif key in ("$exists", "$nonEmpty") and not isinstance(value, bool):
            errors.append(f"{sub}: {key} takes true or false")
        elif key in ("$includes", "$unordered") and not isinstance(value, list):
            errors.append(f"{sub}: {key} takes a list of partial elements")
        elif key == "$len" and not (
            (isinstance(value, int) and not isinstance(value, bool)) or isinstance(value, dict)
        ):
            errors.append(f"{sub}: $len takes a number or comparisons such as {{$gte: 1}}")
        elif key == "$regex":
            try:
                re.compile(str(value))
            except re.error as exc:
                errors.append(f"{sub}: the regex does not compile: {exc}")
        elif key == "$expr":
            try:
                jmespath.compile(str(value))
            except JMESPathError as exc:
                errors.append(f"{sub}: not a JMESPath expression: {str(exc).splitlines()[0]}")
        else:
            errors += operator_errors(value, sub)
    return errors


def mismatches(expected: Any, actual: Any, path: str = "") -> list[str]:
    """Where `actual` does not match the partial object `expected` (empty: it matches)."""
    here = path or "(object)"
    if isinstance(expected, dict):
        ops = {k: v for k, v in expected.items() if isinstance(k, str) and k.startswith("$")}
        fields = {k: v for k, v in expected.items() if k not in ops}
        out = [p for op, arg in ops.items() for p in _operator(op, arg, actual, here)]
        if not fields:
            return out
        if not isinstance(actual, dict):
            return [*out, f"{here}: expected a map, found {_short(actual)}"]
        for key, value in fields.items():
            sub = f"{path}.{key}" if path else str(key)
            if key in actual:
                out.extend(mismatches(value, actual[key], sub))
            elif _accepts_missing(value):
                continue
            else:
                out.append(f"{sub}: missing (expected {_short(value)})")
        return out
    if actual is _MISSING:
        return [f"{here}: missing (expected {_short(expected)})"]
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return [f"{here}: expected a list, found {_short(actual)}"]
        if len(expected) != len(actual):
            return [
                f"{here}: expected {len(expected)} item(s), found {len(actual)} "
                "(use $some or $includes to match some elements in any order)"
            ]
        return [
            p
            for i, (e, a) in enumerate(zip(expected, actual, strict=True))
            for p in mismatches(e, a, f"{path}[{i}]")
        ]
    if _scalar_equal(expected, actual):
        return []
    return [f"{here}: expected {_short(expected)}, found {_short(actual)}"]


def _accepts_missing(value: Any) -> bool:
    """A missing key is fine for {$exists: false} and for {$not: ...} of something present."""
    return isinstance(value, dict) and not mismatches(value, _MISSING)


def _operator(op: str, arg: Any, actual: Any, here: str) -> list[str]:
    if op == "$exists":
        there = actual is not _MISSING
        return [] if there == arg else [f"{here}: {'missing' if arg else 'should not be there'}"]
    if op == "$not":
        if actual is not _MISSING and not mismatches(arg, actual, here):
            return [f"{here}: matches {_short(arg)} but must not"]
        return []
    if actual is _MISSING:
        return [f"{here}: missing ({op} {_short(arg)})"]
    if op == "$nonEmpty":
        empty = actual is None or actual in ("", [], {})
        return [] if empty != arg else [f"{here}: is {'empty' if empty else 'not empty'}"]
    if op in NUMERIC or (op == "$ne" and _is_number(arg)):
        if not _is_number(actual):
            return [f"{here}: expected a number {op} {arg}, found {_short(actual)}"]
        ok = {
            "$gt": actual > arg,
            "$gte": actual >= arg,
            "$lt": actual < arg,
            "$lte": actual <= arg,
            "$ne": actual != arg,
        }[op]
        return [] if ok else [f"{here}: {_short(actual)} is not {_WORDS[op]} {arg}"]
    if op == "$ne":
        return [] if actual != arg else [f"{here}: is {_short(actual)} but must not be"]
    if op == "$len":
        if not isinstance(actual, list | dict | str):
            return [f"{here}: has no length ({_short(actual)})"]
        want = arg if isinstance(arg, dict) else {"$gte": arg, "$lte": arg}
        return [f"{here} length: {p.split(': ', 1)[-1]}" for p in mismatches(want, len(actual))]
    if op == "$regex":
        if isinstance(actual, str) and re.search(str(arg), actual):
            return []
        return [f"{here}: {_short(actual)} does not match /{arg}/"]
    if op == "$expr":
        try:
            value = jmespath.search(str(arg), actual)
        except JMESPathError as exc:
            return [f"{here}: `{arg}` failed: {exc}"]
        return [] if value not in (None, False, [], {}, "", 0) else [f"{here}: `{arg}` is {value}"]
    if not isinstance(actual, list):
        return [f"{here}: expected a list for {op}, found {_short(actual)}"]
    if op == "$some":
        if any(not mismatches(arg, item) for item in actual):
            return []
        closest = min((mismatches(arg, item, here) for item in actual), key=len, default=[])
        why = f" (closest: {closest[0]})" if closest else ""
        return [f"{here}: no element of {len(actual)} matches {_short(arg)}{why}"]
    if op == "$every":
        bad = [i for i, item in enumerate(actual) if mismatches(arg, item)]
        if not bad:
            return []
        first = mismatches(arg, actual[bad[0]], f"{here}[{bad[0]}]")[0]
        return [f"{here}: {len(bad)} of {len(actual)} element(s) do not match: {first}"]
    # $includes / $unordered: each expected element matches a different actual element
    if op == "$unordered" and len(arg) != len(actual):
        return [f"{here}: expected {len(arg)} item(s) in any order, found {len(actual)}"]
    fits = [[j for j, item in enumerate(actual) if not mismatches(e, item)] for e in arg]
    if _assign(fits, 0, set()):
        return []
    unmatched = [_short(e) for e, f in zip(arg, fits, strict=True) if not f] or [
        "(each alone matches, but not each a different element)"
    ]
    return [f"{here}: no distinct elements match {', '.join(unmatched)}"]


def _assign(fits: list[list[int]], i: int, used: set[int]) -> bool:
    """Backtracking: can expected elements i.. each take a different actual element?"""
    if i == len(fits):
        return True
    return any(j not in used and _assign(fits, i + 1, used | {j}) for j in fits[i])


_WORDS = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<=", "$ne": "!="}


def _scalar_equal(expected: Any, actual: Any) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(expected) is type(actual) and expected == actual
    return expected == actual


def pick(expected: Any, actual: Any) -> Any:
    """The part of `actual` that `expected` talks about (to show a learner the live values)."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        if any(isinstance(k, str) and k.startswith("$") for k in expected):
            return actual
        return {k: pick(v, actual[k]) for k, v in expected.items() if k in actual}
    if isinstance(expected, list) and isinstance(actual, list):
        head = [pick(e, a) for e, a in zip(expected, actual, strict=False)]
        return head + actual[len(expected) :]
    return actual


def leaves(obj: Any, path: str = "") -> list[str]:
    """'a.b=1' strings for the leaves of a partial object (for one-line summaries)."""
    if isinstance(obj, dict):
        out = []
        for k, v in obj.items():
            if isinstance(k, str) and k.startswith("$"):
                out.append(f"{path or '(object)'} {k} {_short(v, 40)}")
            else:
                out += leaves(v, f"{path}.{k}" if path else str(k))
        return out
    if isinstance(obj, list):
        return [s for i, v in enumerate(obj) for s in leaves(v, f"{path}[{i}]")]
    return [f"{path}={obj if isinstance(obj, str) else json.dumps(obj)}"]


def _short(value: Any, limit: int = 80) -> str:
    if value is _MISSING:
        return "(missing)"
    text = json.dumps(value, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
