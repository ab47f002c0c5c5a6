"""The building blocks of the lab format that expectations and steps share: strict models,
durations, object and HTTP targets, binding names."""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, model_validator

_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?$")
MAX_DURATION_S = 24 * 3600

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
# Captured values become shell variables: upper case, so they never shadow a learner's own.
BINDING_NAME = r"^[A-Z][A-Z0-9_]*$"
# ${NAME} in an expectation (or a command, by the shell) is replaced by the captured value.
BINDING_REF = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")


def check_regex(pattern: str, what: str = "'regex'") -> None:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"{what} does not compile: {exc}") from None


def check_binding_name(name: str) -> None:
    if not re.match(BINDING_NAME, name):
        raise ValueError(f"capture name {name!r}: use upper case, digits and _ (JOB_NAME)")


def parse_duration(value: Any) -> float:
    """'90s', '2m', '1m30s', '1h' or a number of seconds -> seconds."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string like '90s', '2m', '1m30s'")
    if isinstance(value, int) and abs(value) > MAX_DURATION_S:  # float(10**400) would overflow
        raise ValueError("a duration must be more than 0 and at most 24h")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and 0 < len(value) < 64 and (m := _DURATION.match(value.strip())):
        hours, minutes, secs = m.groups()
        seconds = int(hours or 0) * 3600 + int(minutes or 0) * 60 + float(secs or 0)
    else:
        raise ValueError(
            f"{value!r:.60} is not a duration: write seconds (30) or a string like '90s', '2m', "
            "'1m30s'"
        )
    if not math.isfinite(seconds) or seconds <= 0 or seconds > MAX_DURATION_S:
        raise ValueError("a duration must be more than 0 and at most 24h")
    return seconds


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_DURATION_S},
                {"type": "string", "pattern": _DURATION.pattern},
            ],
            "description": "seconds, or a string such as '90s', '2m', '1m30s'",
        }
    ),
]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Target(Strict):
    """One object by name, or objects by label selector, of a kind."""

    api_version: str = Field(alias="apiVersion", description="e.g. v1, apps/v1")
    kind: str
    name: str | None = None
    selector: str | None = Field(None, description="label selector, as for kubectl -l")
    namespace: str | None = Field(None, description="defaults to the lab's namespace")

    @model_validator(mode="after")
    def _name_or_selector(self) -> Target:
        if (self.name is None) == (self.selector is None):
            raise ValueError("give exactly one of 'name' or 'selector'")
        return self

    def describe(self) -> str:
        what = self.name if self.name else f"-l {self.selector}"
        return f"{self.kind} {what}"


class HttpTarget(Strict):
    """An HTTP request through the API server's service or pod proxy (works on every cluster)."""

    service: str | None = None
    pod: str | None = Field(None, description="a Pod name")
    selector: str | None = Field(None, description="label selector: the first Ready Pod is used")
    port: int | str = Field(description="the Service port (number or name) or the Pod port")
    path: str = "/"
    namespace: str | None = None
    method: Literal["GET", "POST"] = "GET"
    form: dict[str, str] | None = Field(None, description="form fields sent url-encoded (POST)")

    @model_validator(mode="after")
    def _one_target(self) -> HttpTarget:
        given = [x for x in (self.service, self.pod, self.selector) if x is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of 'service', 'pod' or 'selector'")
        if not self.path.startswith("/"):
            raise ValueError("'path' must start with '/'")
        return self

    def describe(self) -> str:
        if self.service:
            where = f"service/{self.service}:{self.port}"
        elif self.pod:
            where = f"pod/{self.pod}:{self.port}"
        else:
            where = f"pod -l {self.selector}:{self.port}"
        return f"{self.method} {where}{self.path}"


class OutputRules(Strict):
    """What a command must do: its exit status and what it prints (stdout and stderr together)."""

    exit: int | Literal["nonzero", "any"] = Field(
        0, description="the exit status: a number (default 0), 'nonzero' or 'any'"
    )
    contains: list[str] = Field(default_factory=list, description="text that must be printed")
    not_contains: list[str] = Field(
        default_factory=list, alias="notContains", description="text that must not be printed"
    )
    regex: str | None = Field(None, description="a regex the output must match (re.search)")

    @model_validator(mode="after")
    def _regex_compiles(self) -> OutputRules:
        if self.regex is not None:
            check_regex(self.regex)
        return self

    def problems(self, exit_code: int, output: str) -> list[str]:
        found = []
        if self.exit == "nonzero" and exit_code == 0:
            found.append("exited 0 but must fail")
        elif isinstance(self.exit, int) and exit_code != self.exit:
            found.append(f"exited {exit_code}, expected {self.exit}")
        found += [f"did not print {s!r}" for s in self.contains if s not in output]
        found += [f"printed {s!r}" for s in self.not_contains if s in output]
        if self.regex and not re.search(self.regex, output, re.MULTILINE):
            found.append(f"output does not match /{self.regex}/")
        return found

    def describe(self) -> str:
        parts = []
        if self.exit == "nonzero":
            parts.append("fails")
        elif isinstance(self.exit, int) and self.exit != 0:
            parts.append(f"exits {self.exit}")
        parts += [f"prints {s!r}" for s in self.contains]
        parts += [f"does not print {s!r}" for s in self.not_contains]
        if self.regex:
            parts.append(f"matches /{self.regex}/")
        return ", ".join(parts) or "succeeds"
