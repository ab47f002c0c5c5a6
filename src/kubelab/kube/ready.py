"""The one answer to "is it Ready?" for objects as the API returns them (plain dicts)."""

from __future__ import annotations

from typing import Any


def condition_status(obj: dict[str, Any] | None, type_: str) -> str | None:
    """The status ("True", "False", "Unknown") of the object's condition of that type, or None
    when it has no such condition (or no status yet)."""
    status = (obj or {}).get("status")
    conditions = status.get("conditions") if isinstance(status, dict) else None
    for condition in conditions if isinstance(conditions, list) else []:
        if isinstance(condition, dict) and condition.get("type") == type_:
            value = condition.get("status")
            return str(value) if value is not None else None
    return None


def condition_true(obj: dict[str, Any] | None, type_: str) -> bool:
    return condition_status(obj, type_) == "True"


def node_ready(obj: dict[str, Any] | None) -> bool:
    """A node the scheduler can use: Ready=True (a cordoned node is still Ready)."""
    return condition_true(obj, "Ready")


def pod_ready(obj: dict[str, Any] | None) -> bool:
    """A Pod that receives Service traffic: Running with Ready=True (a finished Pod's Ready
    condition is False, so Succeeded Pods are not ready either)."""
    status = (obj or {}).get("status") or {}
    return status.get("phase") == "Running" and condition_true(obj, "Ready")
