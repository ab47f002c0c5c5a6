"""The commands a lesson (README.md) tells the learner to type: its ```sh code blocks, section by
section. A section whose heading ends with `[id]` is that step's; `kubelab lint` checks that each
step's commands are its section's, in order.

Continuation lines (a trailing backslash) are joined with a space; a heredoc (`<<EOF` ... `EOF`)
stays one command with its lines. kubelab's own commands (`kubelab check ...`) are not steps.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

SHELL_FENCES = {"sh", "bash", "shell"}
_FENCE = re.compile(r"^(```+|~~~+)\s*([\w+-]*)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*$")
_STEP_ID = re.compile(r"\[([a-z0-9]([-a-z0-9]*[a-z0-9])?)\]\s*$")
_HEREDOC = re.compile(r"<<-?\s*(['\"]?)([A-Za-z_][A-Za-z0-9_]*)\1")


@dataclass
class Section:
    line: int
    title: str
    step_id: str | None
    commands: list[tuple[int, str]] = field(default_factory=list)


def lesson_sections(readme: Path) -> list[Section]:
    """The lesson's sections (the text before the first heading is one too), with commands."""
    sections = [Section(1, "(top)", None)]
    fence: str | None = None
    shell = False
    pending = ""
    heredoc: str | None = None
    start = 0
    for number, line in enumerate(readme.read_text(encoding="utf-8").splitlines(), 1):
        stripped = line.strip()
        if fence is None:
            if m := _FENCE.match(stripped):
                fence, shell = m.group(1), m.group(2).lower() in SHELL_FENCES
            elif m := _HEADING.match(line):
                step = _STEP_ID.search(m.group(2))
                sections.append(Section(number, m.group(2), step.group(1) if step else None))
            continue
        if heredoc is None and stripped.startswith(fence):
            fence = None
            continue
        if not shell:
            continue
        if heredoc is not None:  # inside a heredoc: lines are kept as written
            pending += "\n" + line
            if stripped == heredoc:
                heredoc = None
                _add(sections[-1], start, pending)
                pending = ""
            continue
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending += stripped[:-1].rstrip() + " "
            continue
        pending += stripped
        if m := _HEREDOC.search(pending):
            heredoc = m.group(2)
            continue
        _add(sections[-1], start, pending)
        pending = ""
    return sections


def _add(section: Section, line: int, command: str) -> None:
    command = command.strip()
    if not command.startswith("kubelab "):
        section.commands.append((line, command))


def lesson_commands(readme: Path) -> list[tuple[int, str]]:
    """(line number, command) for each command in the shell code blocks, in order."""
    return [c for s in lesson_sections(readme) for c in s.commands]
