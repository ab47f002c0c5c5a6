"""The guard: kubelab acts only on local training clusters, judged by context name AND server.

Decided before any network I/O, from the kubeconfig's text and this machine's own tables:

1. A context allowed by exact name (--allow-context NAME, KUBELAB_ALLOW_CONTEXTS=a,b) is acted
   on whatever its server: the learner said so. No wildcards, on purpose: a pattern typed for
   one throw-away cluster must not also let in a production context that happens to match.
2. Otherwise the name must be one a local cluster tool writes (kind-*, k3d-*, minikube, …) AND its
   server must be on this machine or on a VM/container network this machine hosts, by that
   flavour's rules (kubelab.flavours). `kind-prod` pointing at https://10.20.30.40:6443 is refused.
3. A context that is neither, but whose server is exactly the server of a training context in the
   same kubeconfig, is a lab user of that training cluster (an RBAC lab's `jane@kind-x`): the
   session observes as the training context, and says so.
"""

from __future__ import annotations

import os
import urllib.parse
from dataclasses import dataclass

from kubelab.errors import ContextRefusedError
from kubelab.flavours import FLAVOURS, by_context
from kubelab.flavours.network import HostNetworks, host_networks
from kubelab.kube.context import Context

# Context name patterns of the local cluster tools (kind, k3d and kwokctl prefix the cluster name)
TRAINING_CONTEXTS: dict[str, str] = {
    pattern: flavour.name for flavour in FLAVOURS.values() for pattern in flavour.context_patterns
}

_SWITCH_HINT = (
    "switch to a local cluster (`kubectl config use-context docker-desktop`, kind-…, k3d-…, "
    "minikube, rancher-desktop, orbstack) or start one with `kubelab cluster up`"
)


def flavour_of_context(name: str) -> str | None:
    """The local cluster flavour a context name stands for, or None if it is not a training one."""
    flavour = by_context(name)
    return flavour.name if flavour else None


def allowed_contexts(extra: list[str] | None = None) -> set[str]:
    """Exact context names allowed by --allow-context and KUBELAB_ALLOW_CONTEXTS (comma list)."""
    env = os.environ.get("KUBELAB_ALLOW_CONTEXTS", "")
    return {c.strip() for c in env.split(",") if c.strip()} | set(extra or [])


def server_host(server: str) -> str | None:
    """The host of a server URL (no brackets), or None when it has none."""
    try:
        host = urllib.parse.urlsplit(server.strip()).hostname
    except ValueError:
        return None
    return host or None


def _allow_hint(name: str) -> str:
    return (
        f"{_SWITCH_HINT}; if this really is a throw-away cluster, allow it by its exact name: "
        f"--allow-context {name} (or KUBELAB_ALLOW_CONTEXTS={name})"
    )


def guard(
    context: Context, allow: list[str] | None = None, networks: HostNetworks | None = None
) -> str:
    """The flavour name to act on `context` with ('unknown' for an allowed unrecognised one);
    raises ContextRefusedError otherwise. Reads no network: only names, addresses and tables."""
    name_flavour = by_context(context.name)
    if context.name in allowed_contexts(allow):
        return name_flavour.name if name_flavour else "unknown"
    server = context.server or "?"
    if name_flavour is None:
        raise ContextRefusedError(
            f"refusing to act on context {context.name!r} (server {server}): "
            "it is not a local training cluster",
            _allow_hint(context.name),
        )
    host = server_host(context.server)
    local = host is not None and name_flavour.server_is_local(
        host, context.name, networks if networks is not None else host_networks()
    )
    if not local:
        raise ContextRefusedError(
            f"refusing to act on context {context.name!r}: its name says {name_flavour.title}, "
            f"a local training cluster, but its server {server} is not on this machine or on a "
            "local VM/container network",
            _allow_hint(context.name),
        )
    return name_flavour.name


def guard_proxy(
    context: Context,
    proxy_url: str | None,
    allow: list[str] | None = None,
    networks: HostNetworks | None = None,
) -> None:
    """A cluster's proxy-url carries every request: a loopback server behind a remote proxy is
    the proxy's own loopback, i.e. someone else's machine. So the proxy must be local too."""
    if not proxy_url or context.name in allowed_contexts(allow):
        return
    flavour = by_context(context.name)
    host = server_host(proxy_url)
    nets = networks if networks is not None else host_networks()
    if (
        flavour is not None
        and host is not None
        and flavour.server_is_local(host, context.name, nets)
    ):
        return
    raise ContextRefusedError(
        f"refusing to act on context {context.name!r}: its requests go through the proxy "
        f"{proxy_url}, which is not on this machine",
        _allow_hint(context.name),
    )


def same_server(a: str, b: str) -> bool:
    """Whether two server URLs name the same endpoint (case, default port and a trailing slash
    aside)."""

    def key(url: str) -> tuple[str, str, int | None, str] | None:
        try:
            parts = urllib.parse.urlsplit(url.strip())
            port = parts.port or {"https": 443, "http": 80}.get(parts.scheme.lower())
        except ValueError:
            return None
        if not parts.hostname:
            return None
        return parts.scheme.lower(), parts.hostname.lower(), port, parts.path.rstrip("/")

    return key(a) is not None and key(a) == key(b)


@dataclass(frozen=True)
class Choice:
    """The context a session acts and observes with, and why (None: the current one, as is)."""

    context: Context
    flavour: str
    current: Context  # the kubeconfig's current context (a lab user's, maybe)
    note: str | None = None


def choose(
    current: Context,
    contexts: list[Context],
    allow: list[str] | None = None,
    networks: HostNetworks | None = None,
) -> Choice:
    """Guard the current context; when it is a lab user of a training cluster in the same
    kubeconfig (same server), guard and choose that training context instead."""
    if current.name in allowed_contexts(allow) or by_context(current.name) is not None:
        return Choice(current, guard(current, allow, networks), current)
    trainers = [
        c
        for c in contexts
        if c.name != current.name
        and by_context(c.name) is not None
        and same_server(c.server, current.server)
    ]
    if not trainers:
        guard(current, allow, networks)  # raises: not a training context
    # prefer the context that shares the cluster entry, then the first by name (stable)
    trainers.sort(key=lambda c: (c.cluster != current.cluster, c.name))
    trainer = trainers[0]
    flavour = guard(trainer, allow, networks)
    note = (
        f"current context {current.name} is a user of training cluster {trainer.name}; "
        f"checking as {trainer.name}"
    )
    return Choice(trainer, flavour, current, note)
