"""The lab format (apiVersion kubelab.dev/v1beta1): what a lab.yaml may say, validated strictly.

A lab is a list of steps. A step is what the lesson tells the learner to type (verbatim), run in
one shell session for the whole lab, each command optionally declaring what it must do; then
expectations that must become true within their timeouts; then values captured for later steps.
Expectation kinds live in `kubelab.expect`, one module each. docs/writing-labs.md documents it
all with examples.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from kubelab import expect
from kubelab.lab.fields import (
    DNS_LABEL,
    Duration,
    HttpTarget,
    OutputRules,
    Strict,
    Target,
    check_binding_name,
    check_regex,
)
from kubelab.requirements import REQUIREMENT_HELP, REQUIREMENT_PATTERN

API_VERSION = "kubelab.dev/v1beta1"
# Older formats this kubelab can name (and say what to change) but no longer reads.
OLD_API_VERSIONS = {
    "kubelab.dev/v1alpha1": "the 'output' expectation became rules on each command "
    "(run: [{cmd: ..., exit: ..., contains: [...]}]) and the commands of a lab now run in one "
    "shell session; see docs/writing-labs.md, 'From v1alpha1'",
}

Requirement = Annotated[
    str,
    Field(
        pattern=REQUIREMENT_PATTERN,
        description="; ".join(f"{k}: {v}" for k, v in REQUIREMENT_HELP.items()),
    ),
]


# --- commands, captures and actions ------------------------------------------------------------


class Run(OutputRules):
    """A command with what it must do. A plain string is a command that must exit 0."""

    cmd: str = Field(description="the command, verbatim as the lesson shows it")
    capture: dict[str, str] | None = Field(
        None,
        description="NAME: regex; the first group (or the whole match) of the command's output "
        "becomes ${NAME} in expectations and $NAME in later commands",
    )

    @model_validator(mode="after")
    def _captures(self) -> Run:
        for name, pattern in (self.capture or {}).items():
            check_binding_name(name)
            check_regex(pattern, f"capture {name}: the regex")
        return self


Command = str | Run


def as_run(command: Command) -> Run:
    return command if isinstance(command, Run) else Run(cmd=command)


class ObjectCapture(Target):
    """A value read from the cluster once the step's expectations hold."""

    path: str = Field(
        description="JMESPath on the object (by name) or on {items: [...]} (by selector), "
        "e.g. metadata.name or items[0].metadata.name"
    )

    @model_validator(mode="after")
    def _path_compiles(self) -> ObjectCapture:
        import jmespath
        from jmespath.exceptions import JMESPathError

        try:
            jmespath.compile(self.path)
        except JMESPathError as exc:
            raise ValueError(f"'path' is not JMESPath: {str(exc).splitlines()[0]}") from None
        return self


class HttpAction(Strict):
    """An HTTP request the runner sends itself (e.g. what a learner clicks in a browser)."""

    http: HttpTarget


Action = str | Run | HttpAction
Expectation = expect.union()

# --- steps and labs -------------------------------------------------------------------------


class Step(Strict):
    id: str = Field(pattern=DNS_LABEL, description="short unique id, used by --step/--from/--upto")
    title: str
    explain: str | None = Field(None, description="one or two sentences: why this step")
    hint: str | None = Field(None, description="what to look at when `kubelab check` fails")
    run: list[Command] = Field(
        default_factory=list,
        description="the commands the lesson tells the learner to type, verbatim; the lab's "
        "commands run in order in one shell session, starting in the lab's folder",
    )
    interactive: bool = Field(
        False, description="the commands need a person (a browser, exec -it, a watch, an editor)"
    )
    automated: list[Action] | None = Field(
        None, description="what the runner does instead of 'run' for an interactive step"
    )
    expect: list[Expectation] = Field(default_factory=list)  # type: ignore[valid-type]
    capture: dict[str, ObjectCapture] = Field(
        default_factory=dict, description="NAME: a value read from the cluster after 'expect'"
    )
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
        for name in self.capture:
            check_binding_name(name)
        return self

    def actions(self) -> list[Action]:
        """What the runner executes: the verbatim commands, or the automated equivalent."""
        return list(self.automated or []) if self.interactive else list(self.run)

    def captured_names(self) -> list[str]:
        names = [n for a in self.actions() if isinstance(a, Run) for n in (a.capture or {})]
        return [*names, *self.capture]

    def effective_requires(self, lab_requires: list[str]) -> list[str]:
        """The lab's and the step's requirements, plus those implied by what the step does."""
        needs = [*lab_requires, *self.requires]
        needs += [r for e in self.expect for r in e.requirements()]
        if any(isinstance(a, HttpAction) for a in self.actions()):
            needs.append("containers")
        return list(dict.fromkeys(needs))


class Cleanup(Strict):
    run: list[str] = Field(
        default_factory=list,
        description="idempotent commands that undo the lab (each may fail: all are run)",
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
    api_version: Literal["kubelab.dev/v1beta1"] = Field(alias="apiVersion")
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

    def requirements(self) -> list[str]:
        """Every requirement of any step (for `kubelab labs`)."""
        return sorted({r for s in self.steps for r in s.effective_requires(self.spec.requires)})


def json_schema() -> dict[str, Any]:
    schema = Lab.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://kubelab.dev/schema/lab-v1beta1.json"
    schema["title"] = "kubelab lab.yaml"
    return schema
