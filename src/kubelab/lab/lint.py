"""`kubelab lint`: is a lab well formed, honest and in step with its lesson?

- the schema (every problem with file, line and field);
- lesson ↔ lab.yaml: each step has a section marked [id], in the same order, whose commands are
  the step's commands, verbatim and in order; no command sits in a section without a step;
- files a command names (`-f`, `-k`) exist in the lab's folder;
- no fixed sleeps: wait for a condition instead;
- ${NAME} in an expectation is captured by an earlier step;
- honesty on simulated nodes: an expectation whose outcome depends on a container really running
  sits in a step that requires `containers`;
- the lab is listed in the course index (the README's table of labs), when the course has one.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from kubelab.errors import LabFileError
from kubelab.expect.command import container_command
from kubelab.lab import model as m
from kubelab.lab.fields import BINDING_REF
from kubelab.lab.lesson import Section, lesson_sections
from kubelab.lab.loader import LoadedLab, course_index, load_lab

_SLEEP = re.compile(r"(^|[;&|(`\s])sleep\s+[0-9]")
_FILE_FLAGS = {"-f", "--filename", "-k", "--kustomize"}
ENV_NAMES = {"KUBELAB_WORK", "KUBELAB_LAB"}


@dataclass(frozen=True)
class Finding:
    where: str  # file:line
    severity: str  # error | warning
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.severity}: {self.message}"


def lint(name_or_folder: str | Path) -> list[Finding]:
    try:
        loaded = load_lab(name_or_folder)
    except LabFileError as exc:
        return [_from_error(line) for line in str(exc.message).splitlines()]
    findings = _lesson(loaded)
    findings += _commands(loaded)
    findings += _bindings(loaded)
    findings += _containers(loaded)
    findings += _indexed(loaded)
    return findings


def _indexed(loaded: LoadedLab) -> list[Finding]:
    """A lab of a course with an index (the README's table of labs) is listed in it."""
    index = course_index(loaded.folder.parent)
    if not index or loaded.folder.name in index:
        return []
    readme = loaded.folder.parent.parent / "README.md"
    return [Finding(str(readme), "error",
                    f"the lab is not in the course index: add a row linking "
                    f"labs/{loaded.folder.name}/README.md to the table of labs")]  # fmt: skip


def _from_error(line: str) -> Finding:
    where, _, message = line.partition(": ")
    if ":" in where and message:
        return Finding(where, "error", message)
    return Finding("lab.yaml", "error", line)


def _at(loaded: LoadedLab, *path: str | int) -> str:
    for i in range(len(path), -1, -1):
        if (line := loaded.lines.get(tuple(path[:i]))) is not None:
            return f"{loaded.file}:{line}"
    return str(loaded.file)


def _step_at(loaded: LoadedLab, index: int, *rest: str | int) -> str:
    return _at(loaded, "spec", "steps", index, *rest)


# --- lesson ↔ lab.yaml -------------------------------------------------------------------------


def _lesson(loaded: LoadedLab) -> list[Finding]:
    readme = loaded.folder / "README.md"
    if not readme.is_file():
        return [Finding(str(loaded.folder), "error", "the lab has no lesson (README.md)")]
    if not readme.resolve().is_relative_to(loaded.folder.resolve()):
        why = "a link to a file outside the lab's folder; make it a file of the lab"
        return [Finding(str(readme), "error", why)]
    try:
        sections = lesson_sections(readme)
    except UnicodeDecodeError as exc:
        why = f"not UTF-8 (byte {exc.start}); save the lesson as UTF-8"
        return [Finding(str(readme), "error", why)]
    by_id: dict[str, Section] = {}
    findings = []
    for section in sections:
        if section.step_id is None:
            for line, cmd in section.commands:
                why = f"`{cmd}` is in a section with no [step-id]: mark it or move the command"
                findings.append(Finding(f"{readme}:{line}", "error", why))
        elif section.step_id in by_id:
            where = f"{readme}:{section.line}"
            findings.append(Finding(where, "error", f"[{section.step_id}] marks two sections"))
        else:
            by_id[section.step_id] = section
    step_ids = [s.id for s in loaded.lab.steps]
    for section in by_id.values():
        if section.step_id not in step_ids:
            findings.append(Finding(f"{readme}:{section.line}", "error",
                                    f"[{section.step_id}] is not a step of lab.yaml"))  # fmt: skip
    in_lesson = [i for i in by_id if i in step_ids]
    if in_lesson != [i for i in step_ids if i in by_id]:
        findings.append(
            Finding(str(readme), "error",
                    f"the sections are in another order than the steps: {', '.join(in_lesson)}")
        )  # fmt: skip
    for index, step in enumerate(loaded.lab.steps):
        section = by_id.get(step.id)
        if section is None:
            findings.append(Finding(_step_at(loaded, index), "error",
                                    f"step {step.id}: the lesson has no section marked [{step.id}]"))  # fmt: skip  # noqa: E501
            continue
        findings += _same_commands(loaded, index, step, section, readme)
    return findings


def _same_commands(
    loaded: LoadedLab, index: int, step: m.Step, section: Section, readme: Path
) -> list[Finding]:
    lab_cmds = [m.as_run(c).cmd.strip() for c in step.run]
    lesson = [cmd for _, cmd in section.commands]
    if lab_cmds == lesson:
        return []
    for i, (ours, theirs) in enumerate(zip(lab_cmds, lesson, strict=False)):
        if ours != theirs:
            line = section.commands[i][0]
            return [Finding(f"{readme}:{line}", "error",
                            f"step {step.id}: the lesson says `{theirs}` where lab.yaml says "
                            f"`{ours}`")]  # fmt: skip
    if len(lab_cmds) > len(lesson):
        missing = lab_cmds[len(lesson)]
        return [Finding(_step_at(loaded, index, "run", len(lesson)), "error",
                        f"step {step.id}: `{missing}` is not in the lesson's section "
                        f"[{step.id}]")]  # fmt: skip
    line, extra = section.commands[len(lab_cmds)]
    return [Finding(f"{readme}:{line}", "error",
                    f"step {step.id}: `{extra}` is in the lesson but not in lab.yaml")]  # fmt: skip


# --- commands ----------------------------------------------------------------------------------


def _all_commands(loaded: LoadedLab) -> list[tuple[str, str]]:
    """(where, command) of every command kubelab may run, in the order a run meets them."""
    out = []
    for index, step in enumerate(loaded.lab.steps):
        for j, action in enumerate(step.actions()):
            if not isinstance(action, m.HttpAction):
                key = "automated" if step.interactive else "run"
                out.append((_step_at(loaded, index, key, j), m.as_run(action).cmd))
        for j, e in enumerate(step.expect):
            if e.KIND == "command":
                out.append((_step_at(loaded, index, "expect", j), e.command.run))
    for j, cmd in enumerate(loaded.lab.spec.cleanup.run):
        out.append((_at(loaded, "spec", "cleanup", "run", j), cmd))
    return out


def _commands(loaded: LoadedLab) -> list[Finding]:
    findings = []
    moved = False  # after a `cd`, relative paths are no longer the lab folder's
    for where, cmd in _all_commands(loaded):
        if _SLEEP.search(cmd):
            findings.append(Finding(where, "error",
                                    f"`{cmd}`: a fixed sleep; wait for what you need instead (an "
                                    "expectation, `kubectl wait`, `kubectl rollout status`)"))  # fmt: skip  # noqa: E501
        moved = moved or bool(re.search(r"(^|[;&|]\s*)cd\s", cmd))
        if not moved:
            findings += [
                Finding(where, "error", f"`{cmd}` names {path}, which is not in the lab's folder")
                for path in _named_files(cmd)
                if not (loaded.folder / path).exists()
            ]
    return findings


def _named_files(cmd: str) -> list[str]:
    try:
        words = shlex.split(cmd, comments=True)
    except ValueError:
        return []
    found = []
    for i, word in enumerate(words):
        value = None
        if word in _FILE_FLAGS and i + 1 < len(words):
            value = words[i + 1]
        elif word.startswith(("--filename=", "--kustomize=")):
            value = word.split("=", 1)[1]
        if value and value != "-" and "$" not in value and "://" not in value:
            found.append(value)
    return found


# --- bindings and honesty ----------------------------------------------------------------------


def _bindings(loaded: LoadedLab) -> list[Finding]:
    known = set(ENV_NAMES)
    findings = []
    for index, step in enumerate(loaded.lab.steps):
        known |= {n for a in step.actions() if isinstance(a, m.Run) for n in (a.capture or {})}
        for j, e in enumerate(step.expect):
            text = e.model_dump_json(by_alias=True)
            for name in BINDING_REF.findall(text):
                if name not in known:
                    findings.append(Finding(_step_at(loaded, index, "expect", j), "error",
                                            f"${{{name}}} is captured by no earlier step"))  # fmt: skip  # noqa: E501
        known |= set(step.capture)
    return findings


def _containers(loaded: LoadedLab) -> list[Finding]:
    findings = []
    for index, step in enumerate(loaded.lab.steps):
        if "containers" in step.effective_requires(loaded.lab.spec.requires):
            continue
        for j, e in enumerate(step.expect):
            if why := e.container_dependency():
                findings.append(Finding(_step_at(loaded, index, "expect", j), "warning",
                                        f"step {step.id}: `{e.describe()}` depends on a container "
                                        f"really running ({why}); add `requires: [containers]` "
                                        "so a simulated node skips it"))  # fmt: skip
        for j, action in enumerate(step.actions()):
            if isinstance(action, m.HttpAction):
                continue
            cmd = m.as_run(action).cmd
            if why := container_command(cmd):
                key = "automated" if step.interactive else "run"
                findings.append(Finding(_step_at(loaded, index, key, j), "warning",
                                        f"step {step.id}: `{cmd}`: {why}; add "
                                        "`requires: [containers]`"))  # fmt: skip
    return findings
