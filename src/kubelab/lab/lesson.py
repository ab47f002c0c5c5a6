"""The commands a lesson (README.md) tells the learner to type: its ```sh code blocks.

A lesson and its lab.yaml never disagree: every command in the lesson's shell blocks is a step's
command and the reverse. kubelab's own commands (`kubelab check ...`) are not lesson steps.
"""

from __future__ import annotations

import re
from pathlib import Path

SHELL_FENCES = {"sh", "bash", "shell"}
_FENCE = re.compile(r"^(```+|~~~+)\s*([\w+-]*)")


def lesson_commands(readme: Path) -> list[tuple[int, str]]:
    """(line number, command) for each command in the shell code blocks, in order."""
    commands: list[tuple[int, str]] = []
    fence: str | None = None
    shell = False
    pending = ""
    start = 0
    for number, line in enumerate(readme.read_text(encoding="utf-8").splitlines(), 1):
        m = _FENCE.match(line.strip())
        if fence is None:
            if m:
                fence, shell = m.group(1), m.group(2).lower() in SHELL_FENCES
            continue
        if line.strip().startswith(fence):
            fence = None
            continue
        if not shell:
            continue
        text = line.strip()
        if not pending and (not text or text.startswith("#")):
            continue
        if not pending:
            start = number
        if text.endswith("\\"):
            pending += text[:-1].rstrip() + " "
            continue
        command = (pending + text).strip()
        pending = ""
        if not command.startswith("kubelab "):
            commands.append((start, command))
    return commands
