"""A lesson and its lab.yaml never disagree: the lesson's commands are the steps' commands."""

from __future__ import annotations

import textwrap

import pytest

from kubelab.lab.lesson import lesson_commands
from kubelab.lab.loader import load_all

LABS = load_all()


@pytest.mark.parametrize("loaded", LABS, ids=[x.lab.name for x in LABS])
def test_lesson_and_lab_have_the_same_commands(loaded):
    readme = loaded.folder / "README.md"
    assert readme.is_file(), f"{loaded.folder.name} has no lesson (README.md)"
    in_lesson = {command: line for line, command in lesson_commands(readme)}
    in_lab = {command for step in loaded.lab.steps for command in step.run}
    only_lesson = [f"README.md:{in_lesson[c]}: {c}" for c in in_lesson if c not in in_lab]
    only_lab = sorted(in_lab - set(in_lesson))
    assert not only_lesson, f"commands in the lesson but in no step: {only_lesson}"
    assert not only_lab, f"step commands missing from the lesson: {only_lab}"


@pytest.mark.parametrize("loaded", LABS, ids=[x.lab.name for x in LABS])
def test_lesson_names_every_step_id(loaded):
    text = (loaded.folder / "README.md").read_text()
    missing = [s.id for s in loaded.lab.steps if f"[{s.id}]" not in text]
    assert not missing, f"the lesson has no section marked [id] for: {missing}"


def test_extraction_reads_only_shell_blocks_and_joins_continuations(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(
        textwrap.dedent(
            """\
            ```yaml
            kind: Pod
            ```
            ```sh
            # a comment
            kubectl apply \\
              -f a.yaml

            kubelab check x
            ```
            ```text
            kubectl not-a-command
            ```
            ~~~bash
            kubectl get pods
            ~~~
            """
        )
    )
    assert lesson_commands(readme) == [(6, "kubectl apply -f a.yaml"), (15, "kubectl get pods")]
