"""Readiness, read the one way: status conditions of any object, Pods and Nodes."""

from __future__ import annotations

from typing import Any


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any] | None:
    """The status condition of that type, or None when the object does not report it."""
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if isinstance(cond, dict) and cond.get("type") == type_:
            return cond
    return None


def condition_status(obj: dict[str, Any], type_: str) -> str | None:
    found = condition(obj, type_)
    return found.get("status") if found else None


def pod_ready(pod: dict[str, Any]) -> bool:
    """Ready and not being deleted (a terminating Pod gets no new traffic)."""
    deleting = (pod.get("metadata") or {}).get("deletionTimestamp")
    return condition_status(pod, "Ready") == "True" and not deleting


def node_ready(node: dict[str, Any]) -> bool:
    return condition_status(node, "Ready") == "True"
