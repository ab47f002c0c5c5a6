"""Local cluster flavours, one module each; this registry recognises them.

Adding a flavour is adding a module here that defines FLAVOUR, and naming it in _MODULES (the
order is the order in which nodes are matched: the most specific signs first).
"""

from __future__ import annotations

import importlib
from typing import Any

from kubelab.flavours.base import Flavour

_MODULES = (
    "embedded",
    "docker_desktop",
    "kind",
    "minikube",
    "rancher_desktop",
    "orbstack",
    "k3d",
    "unknown",
)

FLAVOURS: dict[str, Flavour] = {}
for _module in _MODULES:
    _flavour: Flavour = importlib.import_module(f"kubelab.flavours.{_module}").FLAVOUR
    FLAVOURS[_flavour.name] = _flavour
UNKNOWN = FLAVOURS["unknown"]


def by_context(context: str) -> Flavour | None:
    """The training flavour a context name stands for, or None when it is not a training name."""
    return next((f for f in FLAVOURS.values() if f.matches_context(context)), None)


def detect(context: str, nodes: list[dict[str, Any]]) -> Flavour:
    """The flavour from the nodes (the surest sign), else from the context name; resolved
    against the live nodes (the embedded cluster runs containers once a real node is Ready)."""
    found = next((f for f in FLAVOURS.values() if any(f.owns_node(n) for n in nodes)), None)
    flavour = found or by_context(context) or UNKNOWN
    return flavour.for_nodes(nodes)


__all__ = ["FLAVOURS", "UNKNOWN", "Flavour", "by_context", "detect"]
