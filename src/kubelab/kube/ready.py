"""Readiness, read the one way: status conditions of any object, Pods and Nodes (objects as the
API returns them, plain dicts; odd shapes are "not ready", never an exception)."""

from __future__ import annotations

from typing import Any


def condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any] | None:
    """The status condition of that type, or None when the object does not report it."""
    status = (obj or {}).get("status")
    conditions = status.get("conditions") if isinstance(status, dict) else None
    for cond in conditions if isinstance(conditions, list) else []:
        if isinstance(cond, dict) and cond.get("type") == type_:
            return cond
    return None


def condition_status(obj: dict[str, Any] | None, type_: str) -> str | None:
    """ "True", "False" or "Unknown"; None when there is no such condition (or no status yet)."""
    found = condition(obj, type_)
    value = found.get("status") if found else None
    return str(value) if value is not None else None


def condition_true(obj: dict[str, Any] | None, type_: str) -> bool:
    return condition_status(obj, type_) == "True"


def node_ready(node: dict[str, Any] | None) -> bool:
    """A node the scheduler can use: Ready=True (a cordoned node is still Ready)."""
    return condition_true(node, "Ready")


def pod_ready(pod: dict[str, Any] | None) -> bool:
    """A Pod that gets Service traffic: Running, Ready=True and not being deleted (a finished
    Pod is not ready; a terminating one gets no new traffic)."""
    status = (pod or {}).get("status") or {}
    deleting = ((pod or {}).get("metadata") or {}).get("deletionTimestamp")
    return status.get("phase") == "Running" and condition_true(pod, "Ready") and not deleting
