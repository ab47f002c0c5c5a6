"""The lab format: what a lab.yaml may say, validated strictly.

A lab is a list of steps. A step is what the lesson tells the learner to type (verbatim), plus
expectations that must become true within the step's timeout. Expectations are declarative and
modelled on kuttl/chainsaw assertions: a partial object, absence, a count by selector, a
condition, the step's own output, a check command, an HTTP answer through the API server's
proxy, a log line.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    WithJsonSchema,
    model_validator,
)

API_VERSION = "kubelab.dev/v1alpha1"

_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?$")


MAX_DURATION = 24 * 3600.0  # a lab waits minutes; anything longer is a typo or an attack


def parse_duration(value: Any) -> float:
    """'90s', '2m', '1m30s', '1h' or a number of seconds -> seconds (finite, > 0, <= 24h)."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string like '90s', '2m', '1m30s'")
    if isinstance(value, int | float):
        if isinstance(value, int) and value > MAX_DURATION:  # before float(): 10**400 overflows
            raise ValueError(f"a duration may be at most {MAX_DURATION / 3600:.0f}h")
        seconds = float(value)
    elif isinstance(value, str) and len(value) < 64 and (m := _DURATION.match(value.strip())):
        hours, minutes, secs = m.groups()
        seconds = int(hours or 0) * 3600 + int(minutes or 0) * 60 + float(secs or 0)
    else:
        raise ValueError(
            f"{value!r:.60} is not a duration: write seconds (30) or a string like '90s', '2m', "
            "'1m30s'"
        )
    if math.isnan(seconds) or math.isinf(seconds):
        raise ValueError(f"{value!r} is not a duration: write a number of seconds, such as 30")
    if seconds <= 0:
        raise ValueError("a duration must be greater than zero")
    if seconds > MAX_DURATION:
        raise ValueError(f"a duration may be at most {MAX_DURATION / 3600:.0f}h")
    return seconds


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "exclusiveMinimum": 0},
                {"type": "string", "pattern": _DURATION.pattern},
            ],
            "description": "seconds, or a string such as '90s', '2m', '1m30s'",
        }
    ),
]

# What a lab or step may need from the cluster. Unmet requirements skip the step, with the reason.
ADDONS = (
    "prometheus",
    "keda",
    "ingress",
    "gateway-api",
    "istio",
    "argocd",
    "argo-rollouts",
    "gatekeeper",
    "metrics-server",
)
REQUIREMENT_PATTERN = (
    r"^(containers|loadbalancer|metrics-api|default-storageclass|csr-signing|helm"
    r"|nodes>=[1-9][0-9]?|addon:(" + "|".join(ADDONS) + r"))$"
)
REQUIREMENT_HELP = {
    "containers": "a container runtime that really runs containers (logs, exec, probes, HTTP)",
    "loadbalancer": "LoadBalancer Services reachable on localhost",
    "metrics-api": "the metrics API (metrics-server) for kubectl top and the HPA",
    "default-storageclass": "a default StorageClass that provisions volumes",
    "csr-signing": "the CertificateSigningRequest API issues client certificates",
    "helm": "the helm command",
    "nodes>=N": "at least N nodes",
    "addon:NAME": "an add-on installed by an earlier lab: " + ", ".join(ADDONS),
}
Requirement = Annotated[
    str,
    Field(
        pattern=REQUIREMENT_PATTERN,
        description="; ".join(f"{k}: {v}" for k, v in REQUIREMENT_HELP.items()),
    ),
]

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# --- what expectations and actions point at -------------------------------------------------


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


# --- expectations ------------------------------------------------------------------------------


class MatchExpectation(Strict):
    match: dict[str, Any] = Field(
        description="a partial object: apiVersion, kind, metadata.name and any fields the live "
        "object must contain (maps are matched by key, lists element by element)"
    )

    @model_validator(mode="after")
    def _identifies_object(self) -> MatchExpectation:
        meta = self.match.get("metadata")
        if not self.match.get("apiVersion") or not self.match.get("kind"):
            raise ValueError("a 'match' object needs 'apiVersion' and 'kind'")
        if not isinstance(meta, dict) or not isinstance(meta.get("name"), str):
            raise ValueError("a 'match' object needs 'metadata.name'")
        return self


class AbsentExpectation(Strict):
    absent: Target


class CountExpectation(Strict):
    class Spec(Target):
        equals: int | None = Field(None, ge=0)
        min: int | None = Field(None, ge=0)
        max: int | None = Field(None, ge=0)
        where: dict[str, Any] | None = Field(
            None, description="a partial object; only objects containing it are counted"
        )

        @model_validator(mode="after")
        def _bounds(self) -> CountExpectation.Spec:
            if self.equals is None and self.min is None and self.max is None:
                raise ValueError("a 'count' needs 'equals', 'min' or 'max'")
            if self.equals is not None and (self.min is not None or self.max is not None):
                raise ValueError("use either 'equals' or 'min'/'max', not both")
            return self

    count: Spec


class ConditionExpectation(Strict):
    class Spec(Target):
        type: str = Field(description="e.g. Ready, Available, Complete, Established")
        status: Literal["True", "False", "Unknown"] = "True"

    condition: Spec


class OutputExpectation(Strict):
    """About the step's own commands: their exit code and what they printed (stdout+stderr)."""

    class Spec(Strict):
        exit_code: int | Literal["nonzero"] | None = Field(0, alias="exitCode")
        contains: list[str] = Field(default_factory=list)
        not_contains: list[str] = Field(default_factory=list, alias="notContains")
        regex: str | None = None

        @model_validator(mode="after")
        def _regex_compiles(self) -> OutputExpectation.Spec:
            if self.regex is not None:
                try:
                    re.compile(self.regex)
                except re.error as exc:
                    raise ValueError(f"'regex' does not compile: {exc}") from None
            return self

    output: Spec


class CommandExpectation(Strict):
    """A check command, run until its exit code and output are as expected."""

    class Spec(OutputExpectation.Spec):
        run: str

    command: Spec


class HttpExpectation(Strict):
    class Spec(HttpTarget):
        status: int = 200
        contains: list[str] = Field(default_factory=list)
        json_: dict[str, Any] | None = Field(
            None, alias="json", description="a partial JSON object the body must contain"
        )

    http: Spec


class LogExpectation(Strict):
    class Spec(Strict):
        pod: str | None = None
        selector: str | None = None
        namespace: str | None = None
        container: str | None = None
        contains: str

        @model_validator(mode="after")
        def _one(self) -> LogExpectation.Spec:
            if (self.pod is None) == (self.selector is None):
                raise ValueError("give exactly one of 'pod' or 'selector'")
            return self

    log: Spec


_EXPECTATIONS: dict[str, type[Strict]] = {
    "match": MatchExpectation,
    "absent": AbsentExpectation,
    "count": CountExpectation,
    "condition": ConditionExpectation,
    "output": OutputExpectation,
    "command": CommandExpectation,
    "http": HttpExpectation,
    "log": LogExpectation,
}


def _single_key(kinds: dict[str, type[Strict]]):
    def pick(value: Any) -> str | None:
        if isinstance(value, BaseModel):
            return next((k for k, cls in kinds.items() if isinstance(value, cls)), None)
        if isinstance(value, dict) and len(value) == 1:
            key = next(iter(value))
            return key if key in kinds else None
        return None

    return pick


def _tagged_union(kinds: dict[str, type[Strict]], what: str) -> Any:
    choices = tuple(Annotated[cls, Tag(key)] for key, cls in kinds.items())
    return Annotated[
        Union[choices],  # noqa: UP007 - built from a tuple at run time
        Discriminator(
            _single_key(kinds),
            custom_error_type=f"unknown_{what}",
            custom_error_message=f"an {what} is a map with exactly one of the keys: "
            + ", ".join(kinds),
            custom_error_context={"allowed": ", ".join(kinds)},
        ),
    ]


Expectation = _tagged_union(_EXPECTATIONS, "expectation")


class HttpAction(Strict):
    """An HTTP request the runner sends itself (e.g. what a learner clicks in a browser)."""

    http: HttpTarget


# An automated action is a shell command (string) or an HTTP request.
Action = str | HttpAction

# --- steps and labs -------------------------------------------------------------------------


class Step(Strict):
    id: str = Field(pattern=DNS_LABEL, description="short unique id, used by --step/--from")
    title: str
    explain: str | None = Field(None, description="one or two sentences: why this step")
    run: list[str] = Field(
        default_factory=list,
        description="the commands the lesson tells the learner to type, verbatim, run in order "
        "from the lab's folder",
    )
    interactive: bool = Field(
        False, description="the commands need a person (a browser, exec -it, a watch, an editor)"
    )
    automated: list[Action] | None = Field(
        None, description="what the runner does instead of 'run' for an interactive step"
    )
    expect: list[Expectation] = Field(default_factory=list)  # type: ignore[valid-type]
    requires: list[Requirement] = Field(default_factory=list)
    timeout: Duration | None = Field(None, description="defaults to the lab's timeout")

    @model_validator(mode="before")
    @classmethod
    def _run_may_be_a_string(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("run"), str):
            data = {**data, "run": [data["run"]]}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Step:
        if self.interactive and self.automated is None:
            raise ValueError(
                "an interactive step needs 'automated': the commands the runner uses instead "
                "(use [] when the expectations alone verify it)"
            )
        if not self.interactive and self.automated is not None:
            raise ValueError("'automated' is only for interactive steps; set 'interactive: true'")
        if not self.run and not self.expect and not self.automated:
            raise ValueError("a step needs commands ('run') or expectations ('expect')")
        if self.interactive and not self.expect and not self.automated:
            raise ValueError("an interactive step needs 'automated' actions or expectations")
        if any(isinstance(e, OutputExpectation) for e in self.expect) and (
            self.interactive or not self.run
        ):
            raise ValueError(
                "an 'output' expectation checks the step's own commands: it needs 'run' and "
                "a step that is not interactive (use a 'command' expectation otherwise)"
            )
        return self

    def actions(self) -> list[Action]:
        """What the runner executes: the verbatim commands, or the automated equivalent."""
        return list(self.automated or []) if self.interactive else list(self.run)

    def effective_requires(self, lab_requires: list[str]) -> list[str]:
        """The lab's and the step's requirements, plus those implied by what the step does."""
        needs = [*lab_requires, *self.requires]
        uses_containers = any(isinstance(e, HttpExpectation | LogExpectation) for e in self.expect)
        uses_containers |= any(isinstance(a, HttpAction) for a in self.actions())
        if uses_containers:
            needs.append("containers")
        return list(dict.fromkeys(needs))


class Cleanup(Strict):
    run: list[str] = Field(
        default_factory=list, description="idempotent commands that undo the lab"
    )
    expect: list[Expectation] = Field(  # type: ignore[valid-type]
        default_factory=list, description="what must hold once cleaned up (usually 'absent')"
    )
    timeout: Duration = 120.0


class Metadata(Strict):
    name: str = Field(pattern=DNS_LABEL, description="the lab's folder name")
    title: str
    description: str | None = None


class LabSpec(Strict):
    namespace: str = Field("default", pattern=DNS_LABEL)
    requires: list[Requirement] = Field(default_factory=list)
    timeout: Duration = Field(60.0, description="default time each step's expectations may take")
    steps: list[Step] = Field(min_length=1)
    cleanup: Cleanup = Field(default_factory=Cleanup)

    @model_validator(mode="after")
    def _unique_ids(self) -> LabSpec:
        seen: set[str] = set()
        for step in self.steps:
            if step.id in seen:
                raise ValueError(f"step id {step.id!r} is used twice; ids must be unique")
            seen.add(step.id)
        return self


class Lab(Strict):
    api_version: Literal["kubelab.dev/v1alpha1"] = Field(alias="apiVersion")
    kind: Literal["Lab"]
    metadata: Metadata
    spec: LabSpec

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def title(self) -> str:
        return self.metadata.title

    @property
    def steps(self) -> list[Step]:
        return self.spec.steps

    def step(self, step_id: str) -> Step:
        for step in self.spec.steps:
            if step.id == step_id:
                return step
        ids = ", ".join(s.id for s in self.spec.steps)
        raise KeyError(f"lab {self.name!r} has no step {step_id!r}; its steps are: {ids}")

    def timeout_of(self, step: Step) -> float:
        return step.timeout if step.timeout is not None else self.spec.timeout


def json_schema() -> dict[str, Any]:
    schema = Lab.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://kubelab.dev/schema/lab-v1alpha1.json"
    schema["title"] = "kubelab lab.yaml"
    return schema
