"""`kubelab lint`: the course's labs are clean, and each kind of mistake gives one clear finding.

Lesson parsing is tested here too: the lint compares the lesson's shell blocks, section by
section, with the steps of lab.yaml."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from kubelab.lab.lesson import lesson_commands, lesson_sections
from kubelab.lab.lint import lint
from kubelab.lab.loader import lab_names

LAB = """\
apiVersion: kubelab.dev/v1beta1
kind: Lab
metadata: {name: demo, title: Demo}
spec:
  steps:
    - id: apply
      title: Apply
      run:
        - kubectl apply -f pod.yaml
        - cmd: kubectl get pods -n other
          exit: nonzero
          contains: [forbidden]
      expect:
        - condition: {apiVersion: v1, kind: Pod, name: web, type: Ready}
    - id: look
      title: Look
      run: kubectl get pods
      expect:
        - match: {apiVersion: v1, kind: Pod, metadata: {name: web}, status: {phase: Running}}
"""
LESSON = """\
# Demo

## 1. Apply it [apply]

```sh
kubectl apply -f pod.yaml
kubectl get pods -n other
```

## 2. Look [look]

```sh
kubectl get pods
```
"""


def make(tmp_path: Path, lab: str = LAB, lesson: str = LESSON) -> Path:
    folder = tmp_path / "demo"
    folder.mkdir(parents=True)
    (folder / "lab.yaml").write_text(lab)
    (folder / "README.md").write_text(lesson)
    (folder / "pod.yaml").write_text("kind: Pod\n")
    return folder


def messages(folder: Path) -> list[str]:
    return [str(f) for f in lint(folder)]


@pytest.mark.parametrize("name", lab_names())
def test_every_course_lab_is_clean(name):
    assert messages(Path("labs") / name if Path("labs", name).is_dir() else name) == []


def test_a_good_lab_is_clean(tmp_path):
    assert messages(make(tmp_path)) == []


def test_an_unknown_field_is_one_finding_with_its_line(tmp_path):
    lab = LAB.replace("      title: Look", "      title: Look\n      explian: x")
    found = messages(make(tmp_path, lab))
    assert len(found) == 1, found
    assert "lab.yaml:17: error: spec.steps[1].explian: unknown field" in found[0]


def test_a_lesson_command_missing_from_lab_yaml_is_one_finding(tmp_path):
    lesson = LESSON.replace("kubectl get pods\n```\n", "kubectl get pods\nkubectl get svc\n```\n")
    found = messages(make(tmp_path, lesson=lesson))
    assert len(found) == 1, found
    assert "README.md:14: error: step look: `kubectl get svc` is in the lesson but not" in found[0]


def test_a_command_that_differs_names_both_versions(tmp_path):
    found = messages(make(tmp_path, lesson=LESSON.replace("get pods -n other", "get po -n other")))
    assert found == [
        f"{tmp_path}/demo/README.md:7: error: step apply: the lesson says `kubectl get po -n "
        "other` where lab.yaml says `kubectl get pods -n other`"
    ]


def test_a_fixed_sleep_is_one_finding(tmp_path):
    lab = LAB.replace("      run: kubectl get pods\n", "      run: sleep 30 && kubectl get pods\n")
    lesson = LESSON.replace("```sh\nkubectl get pods\n", "```sh\nsleep 30 && kubectl get pods\n")
    found = messages(make(tmp_path, lab, lesson))
    assert len(found) == 1, found
    assert "error: `sleep 30 && kubectl get pods`: a fixed sleep" in found[0]


def test_sections_out_of_order_and_unmarked_commands(tmp_path):
    lesson = LESSON.replace("[apply]", "[look]", 1).replace("[look]\n\n```sh\nkubectl get pods\n",
                                                            "[apply]\n\n```sh\nkubectl get pods\n")  # fmt: skip  # noqa: E501
    found = messages(make(tmp_path, lesson="```sh\nkubectl version\n```\n" + lesson))
    assert any("`kubectl version` is in a section with no [step-id]" in f for f in found), found
    assert any("another order than the steps" in f for f in found), found


def test_a_missing_file_is_named(tmp_path):
    folder = make(tmp_path)
    (folder / "pod.yaml").unlink()
    assert messages(folder) == [
        f"{folder}/lab.yaml:9: error: `kubectl apply -f pod.yaml` names pod.yaml, which is not "
        "in the lab's folder"
    ]


def test_container_dependent_expectations_need_the_containers_requirement(tmp_path):
    lab = LAB.replace(
        "status: {phase: Running}}",
        "status: {containerStatuses: {$some: {restartCount: 1}}}}",
    )
    lab += "        - condition: {apiVersion: batch/v1, kind: Job, name: pi, type: Complete}\n"
    found = messages(make(tmp_path, lab))
    assert len(found) == 2, found
    logs = LAB.replace("      run: kubectl get pods\n", "      run: kubectl logs pod/web\n")
    lesson = LESSON.replace("```sh\nkubectl get pods\n", "```sh\nkubectl logs pod/web\n")
    said = messages(make(tmp_path / "logs", logs, lesson))
    assert len(said) == 1 and "`kubectl logs` needs a running container" in said[0], said
    assert "warning: step look: `Pod web with status.containerStatuses $some" in found[0]
    assert "restartCount" in found[0] and "requires: [containers]" in found[0]
    assert "a simulated node fakes Job Complete" in found[1]
    ok = lab.replace("      run: kubectl get pods\n", "      run: kubectl get pods\n"
                     "      requires: [containers]\n")  # fmt: skip
    assert messages(make(tmp_path / "ok", ok)) == []


def test_a_binding_must_be_captured_by_an_earlier_step(tmp_path):
    lab = LAB.replace("metadata: {name: web}, status", "metadata: {name: '${POD}'}, status")
    found = messages(make(tmp_path, lab))
    assert len(found) == 1 and "${POD} is captured by no earlier step" in found[0], found
    captured = lab.replace(
        "          contains: [forbidden]\n",
        "          contains: [forbidden]\n      capture:\n"
        "        POD: {apiVersion: v1, kind: Pod, selector: app=web,\n"
        "              path: 'items[0].metadata.name'}\n",
    )
    assert messages(make(tmp_path / "ok", captured)) == []


def test_extraction_reads_only_shell_blocks_joins_continuations_and_keeps_heredocs(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(
        textwrap.dedent(
            """\
            ```yaml
            kind: Pod
            ```
            ## Step [one]
            ```sh
            # a comment
            kubectl apply \\
              -f a.yaml

            kubelab check x
            cat <<'EOF' > pod.yaml
            kind: Pod
              name: x
            EOF
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
    assert lesson_commands(readme) == [
        (7, "kubectl apply -f a.yaml"),
        (11, "cat <<'EOF' > pod.yaml\nkind: Pod\n  name: x\nEOF"),
        (20, "kubectl get pods"),
    ]
    assert [s.step_id for s in lesson_sections(readme)] == [None, "one"]


def test_a_lesson_that_is_not_utf8_or_links_outside_is_a_finding(tmp_path):
    folder = make(tmp_path)
    (folder / "README.md").write_bytes(LESSON.encode("utf-16"))
    found = messages(folder)
    assert len(found) == 1 and "README.md: error: not UTF-8 (byte 0)" in found[0], found
    (folder / "README.md").unlink()
    outside = tmp_path / "elsewhere.md"
    outside.write_text(LESSON)
    (folder / "README.md").symlink_to(outside)
    found = messages(folder)
    assert len(found) == 1 and "a link to a file outside the lab's folder" in found[0], found


def test_labs_are_listed_in_course_order_and_a_lab_missing_from_the_index_is_found(
    tmp_path: Path,
) -> None:
    labs = tmp_path / "labs"
    labs.mkdir()
    for name in ("alpha", "demo", "zeta"):
        folder = make(tmp_path / name, lab=LAB.replace("name: demo", f"name: {name}"))
        folder.rename(labs / name)
    readme = tmp_path / "README.md"
    readme.write_text(
        "See [demo](labs/demo/README.md) first.\n\n"
        "| # | lab |\n| --- | --- |\n"
        "| 1 | [zeta](labs/zeta/README.md) |\n| 2 | [alpha](labs/alpha/README.md) |\n"
    )
    # the table's order; a lab it does not list comes last (a link outside the table is no row)
    assert lab_names(labs) == ["zeta", "alpha", "demo"]
    findings = [str(f) for f in lint(labs / "demo")]
    assert findings == [
        f"{readme}: error: the lab is not in the course index: add a row linking "
        "labs/demo/README.md to the table of labs"
    ]
    assert lint(labs / "zeta") == []
    readme.unlink()  # a labs folder without an index: sorted by name, nothing to report
    assert lab_names(labs) == ["alpha", "demo", "zeta"]
    assert lint(labs / "demo") == []
