"""The admission lab's Gatekeeper policy, tested offline by the real `gator verify` (built from
Gatekeeper's Go module by `make tools`): the suite passes as written, and fails — naming the
case — when any one case is changed to expect the opposite."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from kubelab.embedded import build

LAB = Path(__file__).resolve().parents[2] / "labs" / "admission-gatekeeper"
SUITE = LAB / "gator" / "suite.yaml"


@pytest.fixture(scope="module")
def gator() -> Path:
    path = build.bin_dir() / "gator"
    if "gator" in build.missing(("addons",)):
        if shutil.which("go") is None:
            pytest.skip("gator is not built and there is no Go toolchain; run `make tools`")
        build.ensure_built(groups=("addons",))
    return path


def verify(gator: Path, folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(gator), "verify", str(folder)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def lab_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "admission-gatekeeper"
    shutil.copytree(LAB, copy)
    return copy


def cases() -> list[str]:
    suite = yaml.safe_load(SUITE.read_text())
    return [case["name"] for test in suite["tests"] for case in test["cases"]]


def test_the_suite_has_cases_for_both_outcomes():
    suite = yaml.safe_load(SUITE.read_text())
    outcomes = {
        "deny" if a["violations"] else "admit"
        for test in suite["tests"]
        for case in test["cases"]
        for a in case["assertions"]
    }
    assert outcomes == {"deny", "admit"}


def test_gator_verify_passes_on_the_lab_policy(gator):
    proc = verify(gator, LAB / "gator")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ok" in proc.stdout, proc.stdout


@pytest.mark.parametrize("case", cases())
def test_gator_verify_fails_when_a_case_expects_the_opposite(gator, tmp_path, case):
    copy = lab_copy(tmp_path)
    suite_file = copy / "gator" / "suite.yaml"
    suite = yaml.safe_load(suite_file.read_text())
    for test in suite["tests"]:
        for c in test["cases"]:
            if c["name"] == case:
                denied = c["assertions"][0]["violations"] != 0
                # the opposite: a denied object is now said to pass, an admitted one to fail
                c["assertions"] = [{"violations": 0 if denied else 1}]
    suite_file.write_text(yaml.safe_dump(suite, sort_keys=False))
    proc = verify(gator, copy / "gator")
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert case in proc.stdout + proc.stderr, proc.stdout + proc.stderr


def test_gator_verify_fails_when_the_rego_stops_checking_the_pattern(gator, tmp_path):
    """A policy change (not only a test change) is caught: drop the regex rule."""
    copy = lab_copy(tmp_path)
    template = copy / "k8srequiredlabels-template.yaml"
    text = template.read_text()
    cut = text.index("        # a label that is present but whose value")
    template.write_text(text[:cut])
    proc = verify(gator, copy / "gator")
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "an-owner-outside-the-pattern-is-denied" in proc.stdout + proc.stderr
