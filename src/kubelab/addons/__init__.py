"""Add-ons: one module each (a pinned chart, values per flavour, readiness), and this registry.

Adding an add-on is adding a module that defines ADDON and naming it in _MODULES. Installs and
status live in kubelab.addons.manage (imported on use: this registry stays cheap to import,
since the lab format asks it for the add-on names).
"""

from __future__ import annotations

import importlib

from kubelab.addons.base import AddOn
from kubelab.errors import KubelabError

_MODULES = (
    "argo_cd",
    "argo_rollouts",
    "gatekeeper",
    "istio_base",
    "istio",
    "keda",
    "kiali",
    "kube_prometheus_stack",
    "metrics_server",
    "traefik",
)

ADDONS: dict[str, AddOn] = {}
for _module in _MODULES:
    _addon: AddOn = importlib.import_module(f"kubelab.addons.{_module}").ADDON
    ADDONS[_addon.name] = _addon


def names() -> tuple[str, ...]:
    return tuple(sorted(ADDONS))


def get(name: str) -> AddOn:
    try:
        return ADDONS[name]
    except KeyError:
        raise KubelabError(
            f"there is no add-on {name!r}",
            f"the add-ons are: {', '.join(names())} (`kubelab addons list`)",
        ) from None


def register(addon: AddOn) -> None:
    """Add (or replace) an add-on at run time: tests use it for their local test chart."""
    ADDONS[addon.name] = addon


def unregister(name: str) -> None:
    ADDONS.pop(name, None)


__all__ = ["ADDONS", "AddOn", "get", "names", "register", "unregister"]
