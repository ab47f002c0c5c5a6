"""Loading lab.yaml: the course's labs are valid, and bad files fail with file:line: field."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import jsonschema
import pytest
import yaml

from kubelab.errors import LabFileError
from kubelab.lab import model
from kubelab.lab.loader import labs_root, load_all, load_lab

MINIMAL = """\
apiVersion: kubelab.dev/v1beta1
kind: Lab
metadata:
  name: demo
  title: Demo
spec:
  steps:
    - id: one
      title: Apply
      run: kubectl apply -f x.yaml
      expect:
        - absent: {apiVersion: v1, kind: Pod, name: x}
"""


def write_lab(tmp_path: Path, text: str, name: str = "demo") -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "lab.yaml").write_text(textwrap.dedent(text))
    return folder


def load_error(tmp_path: Path, text: str) -> str:
    with pytest.raises(LabFileError) as info:
        load_lab(write_lab(tmp_path, text))
    return str(info.value)


def test_every_course_lab_loads_and_validates_against_the_exported_schema():
    schema = model.json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    labs = load_all()
    assert labs, "the course has no labs"
    for loaded in labs:
        data = yaml.safe_load(loaded.file.read_text())
        jsonschema.validate(data, schema)


def test_first_lab_is_rich_enough():
    lab = load_lab("probe-test-app").lab
    assert len(lab.steps) >= 10
    for step in lab.steps:
        declares = any(not isinstance(c, str) for c in step.run)
        assert step.expect or step.automated or declares, f"{step.id} verifies nothing"
        if step.interactive:
            assert step.automated is not None


def test_minimal_lab_loads_and_run_string_becomes_a_list(tmp_path):
    lab = load_lab(write_lab(tmp_path, MINIMAL)).lab
    assert lab.steps[0].run == ["kubectl apply -f x.yaml"]
    assert lab.timeout_of(lab.steps[0]) == 60.0


@pytest.mark.parametrize(
    ("change", "line", "field", "words"),
    [
        (("      run: kubectl", "      runn: kubectl"), 10, "spec.steps[0].runn", "unknown field"),
        (("- absent:", "- abscent:"), 12, "spec.steps[0].expect[0]", "exactly one of the keys"),
        (("  title: Demo\n", ""), 3, "metadata.title", "required field is missing"),
        (("kind: Lab", "kind: Test"), 2, "kind", "'Lab'"),
        (
            ("name: x}", "name: x, selector: a=b}"),
            12,
            "spec.steps[0].expect[0].absent",
            "exactly one of 'name' or 'selector'",
        ),
        (("- id: one", "- id: One_1"), 8, "spec.steps[0].id", "pattern"),
    ],
)
def test_bad_lab_names_file_line_and_field(tmp_path, change, line, field, words):
    text = MINIMAL.replace(*change)
    message = load_error(tmp_path, text)
    assert f"lab.yaml:{line}: {field}:" in message, message
    assert words in message


def test_bad_duration_says_how_to_write_one(tmp_path):
    message = load_error(tmp_path, MINIMAL.replace("      run:", "      timeout: soon\n      run:"))
    assert "spec.steps[0].timeout" in message and "'90s'" in message


def test_duplicate_key_is_an_error_not_a_silent_overwrite(tmp_path):
    message = load_error(
        tmp_path, MINIMAL.replace("  title: Demo", "  title: Demo\n  title: Again")
    )
    assert "lab.yaml:6: metadata.title: the key appears twice" in message


def test_yaml_syntax_error_has_a_line(tmp_path):
    message = load_error(tmp_path, MINIMAL.replace("title: Apply", "title: [Apply"))
    assert "lab.yaml:" in message and "not valid YAML" in message


def test_interactive_step_needs_an_automated_equivalent(tmp_path):
    text = MINIMAL.replace("      run: kubectl", "      interactive: true\n      run: kubectl")
    message = load_error(tmp_path, text)
    assert "spec.steps[0]" in message and "automated" in message


def test_step_ids_are_unique(tmp_path):
    step = MINIMAL[MINIMAL.index("    - id: one") :]
    message = load_error(tmp_path, MINIMAL + step)
    assert "step id 'one' is used twice" in message


def test_folder_and_name_must_agree(tmp_path):
    with pytest.raises(LabFileError, match="the folder is 'other'"):
        load_lab(write_lab(tmp_path, MINIMAL, name="other"))


def test_unknown_requirement_is_rejected(tmp_path):
    text = MINIMAL.replace("spec:\n", "spec:\n  requires: [gpu]\n")
    assert "spec.requires[0]" in load_error(tmp_path, text)


def test_http_and_log_steps_imply_a_container_runtime():
    lab = load_lab("probe-test-app").lab
    assert "containers" in lab.step("port-forward").effective_requires([])
    assert "containers" in lab.step("liveness").effective_requires([])
    assert lab.step("deployment").effective_requires([]) == []


def test_schema_command_prints_the_schema(kubelab_cli):
    proc = kubelab_cli("schema")
    assert proc.returncode == 0
    assert json.loads(proc.stdout)["title"] == "kubelab lab.yaml"


def test_cli_reports_a_bad_lab_without_traceback(tmp_path, kubelab_cli):
    write_lab(tmp_path, MINIMAL.replace("- absent:", "- abscent:"))
    proc = kubelab_cli("show", "demo", env={"KUBELAB_LABS": str(tmp_path)})
    assert proc.returncode == 2
    assert "lab.yaml:12: spec.steps[0].expect[0]:" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_unknown_lab_lists_the_known_ones(kubelab_cli):
    proc = kubelab_cli("show", "no-such-lab")
    assert proc.returncode == 2
    assert "there is no lab 'no-such-lab'" in proc.stderr
    assert "probe-test-app" in proc.stderr


def test_labs_root_is_found_from_the_checkout():
    assert (labs_root() / "probe-test-app" / "lab.yaml").is_file()
