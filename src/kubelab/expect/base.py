"""What every expectation kind shares: its options, the context it observes through, and the
outcome of one observation. A kind is one module in this package defining a subclass of
`Expectation` and naming it `EXPECTATION`; the registry finds it there."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from kubelab.lab.fields import BINDING_REF, Duration, Strict, Target

if TYPE_CHECKING:
    from kubelab.kube.client import Kube

Related = tuple[str, str, str, str | None]  # kind, name, namespace, uid: what to diagnose


@dataclass
class Outcome:
    ok: bool
    summary: str  # what is expected, in words
    detail: str = ""  # why it does not hold (yet)
    live: Any = None  # the live values of the fields the expectation looks at
    related: list[Related] = field(default_factory=list)


class IdentityError(Exception):
    """An `as:` kubeconfig that is missing, unreadable or points at another cluster."""


@dataclass
class CheckContext:
    """What an observation may use: the cluster (as the admin of the training cluster, or as a
    lab user), the lab's namespace, the commands' environment and the captured values."""

    kube: Kube
    namespace: str
    env: dict[str, str]
    cwd: Path
    server: str  # the training cluster's API server: `as:` identities must point at it
    bindings: dict[str, str] = field(default_factory=dict)
    _as: dict[str, Kube] = field(default_factory=dict)

    def kubeconfig_of(self, identity: str) -> Path:
        """The kubeconfig file of a lab user: a path, relative to the lab's work folder."""
        text = os.path.expandvars(self.substitute(identity))
        base = Path(self.env.get("KUBELAB_WORK") or self.cwd)
        return (base / os.path.expanduser(text)).resolve()

    def kube_as(self, identity: str | None) -> Kube:
        if identity is None:
            return self.kube
        if identity not in self._as:
            from kubelab.kube.client import Kube
            from kubelab.kube.context import current_context
            from kubelab.kube.guard import same_server

            path = self.kubeconfig_of(identity)
            if not path.is_file():
                raise IdentityError(f"as {identity}: no kubeconfig at {path} (yet)")
            context = current_context(str(path))
            if not same_server(context.server, self.server):
                raise IdentityError(
                    f"as {identity}: its server {context.server} is not this training cluster's "
                    f"({self.server}); kubelab observes only the cluster it checked"
                )
            self._as[identity] = Kube(path, context.name)
        return self._as[identity]

    def substitute(self, text: str) -> str:
        """${NAME} -> the captured value (KUBELAB_WORK and other environment names too)."""

        def value(m: Any) -> str:
            name = m.group(1)
            if name in self.bindings:
                return self.bindings[name]
            if name in self.env:
                return self.env[name]
            raise UnboundError(name)

        return BINDING_REF.sub(value, text)


class UnboundError(Exception):
    """${NAME} names a value no step has captured (yet)."""


def substitute_tree(data: Any, ctx: CheckContext) -> Any:
    if isinstance(data, str):
        return ctx.substitute(data)
    if isinstance(data, list):
        return [substitute_tree(x, ctx) for x in data]
    if isinstance(data, dict):
        return {k: substitute_tree(v, ctx) for k, v in data.items()}
    return data


class Expectation(Strict):
    """The options every kind has, beside its own key."""

    KIND: ClassVar[str]
    # requirements that evaluating this kind implies (e.g. HTTP into a Pod needs containers)
    IMPLIES: ClassVar[tuple[str, ...]] = ()

    timeout: Duration | None = Field(None, description="how long it may take; default: the step's")
    as_: str | None = Field(
        None,
        alias="as",
        description="observe as a lab user: the path of a kubeconfig the lab made, relative to "
        "the lab's work folder ($KUBELAB_WORK)",
    )

    def spec(self) -> Any:
        return getattr(self, self.KIND)

    def describe(self) -> str:
        raise NotImplementedError

    def evaluate(self, ctx: CheckContext) -> Outcome:
        raise NotImplementedError

    def requirements(self) -> list[str]:
        return list(self.IMPLIES)

    def container_dependency(self) -> str | None:
        """Why the outcome depends on a container really running, or None. `kubelab lint` warns
        when such an expectation sits in a step that does not require `containers`."""
        return None

    def bound(self, ctx: CheckContext) -> Expectation:
        """This expectation with ${NAME} references replaced by captured values."""
        data = self.model_dump(by_alias=True, exclude_none=True, exclude_defaults=True)
        if "${" not in json.dumps(data, default=str):
            return self
        return type(self).model_validate(substitute_tree(data, ctx))


def objects(kube: Kube, target: Target, namespace: str) -> list[dict]:
    """The objects a target names: one by name (or none), or all matching its selector."""
    ns = target.namespace or namespace
    if target.name:
        obj = kube.get(target.api_version, target.kind, target.name, ns)
        return [obj] if obj else []
    return kube.list(target.api_version, target.kind, ns, target.selector)


def names(objs: list[dict]) -> list[str]:
    return [o["metadata"]["name"] for o in objs]


def related(kind: str, objs: list[dict], namespace: str, limit: int = 3) -> list[Related]:
    return [
        (kind, o["metadata"]["name"], o["metadata"].get("namespace") or namespace,
         o["metadata"].get("uid"))
        for o in objs[:limit]
    ]  # fmt: skip
