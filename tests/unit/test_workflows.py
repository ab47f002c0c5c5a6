"""The hosted-CI workflows (.github/workflows/, which cannot run here): linted by the real
actionlint (built from its Go module by `make tools`, group dev), with Debian's shellcheck on
their scripts (`make test-deps`), and held to the README: every kubelab, kind and make command
the course workflow runs is a line of the README's commands, and the README's "whole course on
kind" commands are all in the workflow, so that CI runs exactly what a learner types."""

from __future__ import annotations

import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from kubelab.embedded import build
from kubelab.output import reports
from kubelab.run.results import CommandResult, Failure, RunReport, StepReport

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
COURSE = WORKFLOWS / "course.yml"
README = ROOT / "README.md"
KIND_CONFIG = ROOT / "kind-cluster.yaml"
COURSE_SECTION = "### The whole course on kind (what CI runs)"

# a command of ours: the first word of a line, or after a pipe, `$(`, `;`, `&&`, `do`, `xargs`
OURS = re.compile(r"(?:^|[|;&(]\s*|\bdo\s+|\bxargs\s+)(kubelab|kind|make)(?=\s|$)")
# what CI adds to a README command to keep its output (the command itself stays verbatim)
CAPTURE = re.compile(r"\s*(?:\|\s*tee\s+\S+|>\s*\S+)\s*$")
# README course commands the workflow does differently, and why
NOT_IN_CI = {
    "go install sigs.k8s.io/kind@": "the workflow installs the same module by its pinned version",
    ". .venv/bin/activate": "steps do not share a shell: .venv/bin goes on GITHUB_PATH instead",
    "kind delete cluster": "the hosted runner is thrown away",
}


def workflow_files() -> list[Path]:
    return sorted(WORKFLOWS.glob("*.y*ml"))


@pytest.fixture(scope="module")
def actionlint() -> Path:
    if "actionlint" in build.missing(("dev",)):
        if shutil.which("go") is None:
            pytest.skip("actionlint is not built and there is no Go toolchain; run `make tools`")
        build.ensure_built(groups=("dev",))
    return build.bin_dir() / "actionlint"


def run_actionlint(actionlint: Path, files: list[Path], cwd: Path) -> subprocess.CompletedProcess:
    # shellcheck when Debian's is installed (`make test-deps` installs it); pyflakes never (the
    # workflows have no `shell: python` steps)
    return subprocess.run(
        [str(actionlint), "-no-color", f"-shellcheck={shutil.which('shellcheck') or ''}",
         "-pyflakes=", *map(str, files)],
        cwd=cwd, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def broken_copy(tmp_path: Path, old: str, new: str) -> Path:
    text = COURSE.read_text()
    assert old in text, f"the workflow no longer has {old!r}: update this test"
    folder = tmp_path / ".github" / "workflows"
    folder.mkdir(parents=True)
    (folder / "course.yml").write_text(text.replace(old, new, 1))
    return folder / "course.yml"


# --- actionlint -------------------------------------------------------------------------------


def test_the_course_workflow_exists():
    assert COURSE in workflow_files()


def test_actionlint_finds_nothing_in_any_workflow(actionlint):
    proc = run_actionlint(actionlint, workflow_files(), ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout == ""


@pytest.mark.parametrize(
    ("old", "new", "finding"),
    [
        ("    runs-on: ubuntu-latest", "    run-on: ubuntu-latest", 'unexpected key "run-on"'),
        ("${{ always() }}", "${{ always(github.event) }}", '"always() -> bool" takes 0'),
        ("if: ${{ failure() }}", "if: ${{ steps.nope.outputs.logs }}", 'property "nope"'),
        ("      - uses: actions/setup-go", "      - use: actions/setup-go", 'with "uses" section'),
    ],
    ids=["misspelt-key", "bad-function-call", "unknown-step", "step-without-uses-or-run"],
)
def test_actionlint_fails_on_a_broken_workflow(actionlint, tmp_path, old, new, finding):
    broken = broken_copy(tmp_path, old, new)
    proc = run_actionlint(actionlint, [broken], tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert finding in proc.stdout, proc.stdout
    assert proc.stdout.startswith(f"{broken.relative_to(tmp_path)}:"), proc.stdout  # file:line


def test_actionlint_runs_shellcheck_on_the_scripts(actionlint, tmp_path):
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed: `make test-deps` installs Debian's")
    # an unquoted variable in the lab loop: a lab name with a space would split in two
    broken = broken_copy(tmp_path, 'kubelab run "$lab"', "kubelab run $lab")
    proc = run_actionlint(actionlint, [broken], tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "shellcheck reported issue" in proc.stdout and "SC2086" in proc.stdout, proc.stdout


# --- the workflow runs what the README says ---------------------------------------------------


def run_lines(workflow: Path) -> list[str]:
    """Every line of every `run:` script, in order (line continuations joined)."""
    lines = []
    for job in yaml.safe_load(workflow.read_text())["jobs"].values():
        for step in job.get("steps", []):
            script = step.get("run", "")
            lines += [ln.strip() for ln in script.replace("\\\n", " ").splitlines() if ln.strip()]
    return lines


def readme_commands(section: str | None = None) -> list[str]:
    """The lines of the README's ```sh blocks (of one `###` section if named), comments cut."""
    text = README.read_text()
    if section is not None:
        start = text.index(section)
        end = min(i for i in (text.find("\n## ", start), text.find("\n### ", start + 1)) if i > 0)
        text = text[start:end]
    lines = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        for line in block.splitlines():
            line = re.sub(r"\s+#\s.*$", "", line).strip()
            if line and not line.startswith("#"):
                lines.append(line)
    return lines


def test_every_kubelab_kind_and_make_command_of_the_workflow_is_in_the_readme():
    ours = [CAPTURE.sub("", ln) for ln in run_lines(COURSE) if OURS.search(ln)]
    assert len(ours) >= 10, ours  # the parser still finds the workflow's commands
    readme = set(readme_commands())
    missing = [ln for ln in ours if ln not in readme]
    assert not missing, (
        "the workflow runs commands the README does not give a learner (add them to the "
        f"README's '{COURSE_SECTION}' section, verbatim): {missing}"
    )


def test_every_command_of_the_readmes_course_section_is_in_the_workflow():
    ci = {CAPTURE.sub("", ln) for ln in run_lines(COURSE)}
    course = readme_commands(COURSE_SECTION)
    assert "kubelab addons list --names | xargs kubelab addons install" in course
    missing = [c for c in course if c not in ci and not c.startswith(tuple(NOT_IN_CI))]
    assert not missing, f"the README's course commands CI does not run: {missing}"


def test_the_drift_check_catches_a_command_missing_from_the_readme(monkeypatch, tmp_path):
    """The check above can fail: a workflow that gained `kubelab run --keep` is caught."""
    changed = tmp_path / "course.yml"
    changed.write_text(
        COURSE.read_text().replace('--report "reports/', '--keep --report "reports/')
    )
    ours = [CAPTURE.sub("", ln) for ln in run_lines(changed) if OURS.search(ln)]
    missing = [ln for ln in ours if ln not in set(readme_commands())]
    assert len(missing) == 1 and "--keep" in missing[0]


def test_pins_agree_between_workflow_readme_and_kind_config():
    workflow = yaml.safe_load(COURSE.read_text())
    env = workflow["env"]
    section = README.read_text().split(COURSE_SECTION)[1].split("\n## ")[0]
    assert f"go install sigs.k8s.io/kind@{env['KIND_VERSION']}" in section
    for name, what in (("KIND_VERSION", "kind"), ("KUBECTL_VERSION", "kubectl"),
                       ("HELM_VERSION", "helm")):  # fmt: skip
        assert f"{what} {env[name]}" in section, (name, env[name])
    assert f"kind {env['KIND_VERSION']}" in KIND_CONFIG.read_text()
    nodes = yaml.safe_load(KIND_CONFIG.read_text())["nodes"]
    # labs/nodes-and-scheduling needs four nodes
    assert [n["role"] for n in nodes] == ["control-plane", "worker", "worker", "worker"]


def test_actions_are_pinned_by_commit_with_their_release_named():
    uses = re.findall(r"uses: (\S+)(.*)", COURSE.read_text())
    assert uses
    for action, comment in uses:
        assert re.fullmatch(r"[\w-]+/[\w-]+@[0-9a-f]{40}", action), action
        assert re.fullmatch(r" # v\d+\.\d+\.\d+", comment), (action, comment)


def test_reports_are_kept_and_failures_fail_the_run():
    steps = yaml.safe_load(COURSE.read_text())["jobs"]["course"]["steps"]
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact@"))
    assert upload["if"] == "${{ always() }}" and upload["with"]["path"] == "reports/"
    check = next(s for s in steps if s.get("name", "").startswith("Fail on any failed step"))
    assert check["if"] == "${{ !cancelled() }}"


# --- the workflow's report check, run on real kubelab JUnit reports ---------------------------


def report_check_script() -> str:
    steps = yaml.safe_load(COURSE.read_text())["jobs"]["course"]["steps"]
    script = next(s["run"] for s in steps if s.get("name", "").startswith("Fail on any"))
    return script.split("<<'EOF'\n", 1)[1].rsplit("EOF", 1)[0]


def write_report(folder: Path, lab: str, failed: bool) -> None:
    ok = StepReport("one", "One", "passed", seconds=1.5,
                    commands=[CommandResult("kubectl get pods", 0, 0.1, "")])  # fmt: skip
    skipped = StepReport("two", "Two", "skipped", reason="needs 4 nodes; the cluster has 1")
    bad = StepReport("three", "Three", "failed", reason="expectation not met",
                     failures=[Failure("pod not Ready", "0/1")])  # fmt: skip
    steps = [ok, skipped, *([bad] if failed else [])]
    reports.write(RunReport(lab, "kind-kubelab", "kind", steps), folder / f"{lab}.xml")


def run_check(tmp_path: Path, labs: list[str]) -> subprocess.CompletedProcess:
    (tmp_path / "reports" / "labs.txt").write_text("".join(f"{lab}\n" for lab in labs))
    summary = tmp_path / "summary.md"
    return subprocess.run(
        ["python3", "-", "reports/labs.txt"], input=report_check_script(), cwd=tmp_path,
        env={"GITHUB_STEP_SUMMARY": str(summary), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_the_report_check_passes_when_every_lab_passed(tmp_path):
    (tmp_path / "reports").mkdir()
    for lab in ("a-lab", "b-lab"):
        write_report(tmp_path / "reports", lab, failed=False)
    proc = run_check(tmp_path, ["a-lab", "b-lab"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "| a-lab | 1 | 0 | 1 | 1.500 s |" in (tmp_path / "summary.md").read_text()


def test_the_report_check_fails_on_a_failed_step_or_a_missing_report(tmp_path):
    (tmp_path / "reports").mkdir()
    write_report(tmp_path / "reports", "a-lab", failed=False)
    write_report(tmp_path / "reports", "b-lab", failed=True)
    proc = run_check(tmp_path, ["a-lab", "b-lab", "c-lab"])
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "::error::b-lab: 1 failed: three: Three" in proc.stdout
    assert "::error::c-lab: no report (the run did not finish)" in proc.stdout
    assert ET.parse(tmp_path / "reports" / "b-lab.xml").getroot().get("failures") == "1"


def test_the_names_the_workflow_loops_over(kubelab_cli):
    """`kubelab labs --names` and `kubelab addons list --names`: one name a line, nothing else,
    without a cluster (the workflow reads them before and after the cluster exists)."""
    from kubelab import addons
    from kubelab.lab.loader import lab_names

    labs = kubelab_cli("labs", "--names", env={"KUBECONFIG": "/nonexistent"})
    assert labs.returncode == 0, labs.stderr
    assert labs.stdout.splitlines() == lab_names()
    names = kubelab_cli("addons", "list", "--names", env={"KUBECONFIG": "/nonexistent"})
    assert names.returncode == 0, names.stderr
    assert names.stdout.splitlines() == list(addons.names())
