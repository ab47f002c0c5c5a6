"""Expectations: what must become true after a step. One module per kind (each defines
`EXPECTATION`, a subclass of `base.Expectation`); this registry finds them, and from it come the
tagged union of lab.yaml, the JSON Schema and `kubelab lint`'s knowledge. Adding a kind is adding
a module here."""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache
from typing import Annotated, Any, Union

from pydantic import BaseModel, Discriminator, Tag

from kubelab.expect.base import (
    CheckContext,
    Expectation,
    IdentityError,
    Outcome,
    UnboundError,
)
from kubelab.kube.client import UnknownKind

_NOT_KINDS = {"base", "matching"}
OPTIONS = ("timeout", "as")  # keys an expectation may carry beside its kind


@cache
def kinds() -> dict[str, type[Expectation]]:
    found: dict[str, type[Expectation]] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name in _NOT_KINDS:
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        cls = getattr(module, "EXPECTATION", None)
        if cls is not None:
            found[cls.KIND] = cls
    return found


def _kind_of(value: Any) -> str | None:
    if isinstance(value, BaseModel):
        return getattr(value, "KIND", None)
    if isinstance(value, dict):
        keys = [k for k in value if k in kinds()]
        return keys[0] if len(keys) == 1 else None
    return None


def union() -> Any:
    """The pydantic type of one expectation: a map with exactly one kind key (plus options)."""
    choices = tuple(Annotated[cls, Tag(key)] for key, cls in kinds().items())
    allowed = ", ".join(kinds())
    return Annotated[
        Union[choices],  # noqa: UP007 - built from a tuple at run time
        Discriminator(
            _kind_of,
            custom_error_type="unknown_expectation",
            custom_error_message=f"an expectation is a map with exactly one of the keys: "
            f"{allowed} (and optionally {', '.join(OPTIONS)})",
            custom_error_context={"allowed": allowed},
        ),
    ]


def evaluate(expectation: Expectation, ctx: CheckContext) -> Outcome:
    """One observation. Missing kinds, unbound names and bad identities are outcomes (not yet
    true), so a wait goes on and a failure says why."""
    try:
        return expectation.bound(ctx).evaluate(ctx)
    except UnboundError as exc:
        return Outcome(False, expectation.describe(), f"${{{exc.args[0]}}} has no value yet")
    except (UnknownKind, IdentityError) as exc:
        return Outcome(False, expectation.describe(), str(exc))


__all__ = ["CheckContext", "Expectation", "Outcome", "evaluate", "kinds", "union"]
