"""Run reports for CI: JSON with every step's status and reason, and JUnit XML."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from kubelab.errors import KubelabError
from kubelab.output import reports as report
from kubelab.run.results import Failure, RunReport, StepReport
from kubelab.run.shell import CommandResult


def sample() -> RunReport:
    return RunReport(
        lab="demo",
        context="kind-kind",
        flavour="kind",
        steps=[
            StepReport(
                "a",
                "Apply",
                "passed",
                seconds=1.5,
                commands=[CommandResult("kubectl apply -f a.yaml", 0, "pod/a created\n", 0.4)],
            ),
            StepReport("b", "Probe", "skipped", "needs a container runtime"),
            StepReport(
                "c",
                "Scale",
                "failed",
                "not true after 5s: Pod x exists",
                failures=[Failure("Pod x exists", "Pod x not found")],
            ),
        ],
        cleanup=StepReport("cleanup", "Clean up", "passed"),
    )


def test_json_report_lists_every_step_with_status_and_reason(tmp_path):
    path = tmp_path / "out" / "r.json"
    report.write(sample(), path)
    data = json.loads(path.read_text())
    assert data["passed"] is False
    assert data["counts"] == {"passed": 1, "failed": 1, "skipped": 1}
    assert [(s["id"], s["status"]) for s in data["steps"]] == [
        ("a", "passed"),
        ("b", "skipped"),
        ("c", "failed"),
    ]
    assert data["steps"][1]["reason"] == "needs a container runtime"
    assert data["steps"][0]["commands"][0]["exitCode"] == 0


def test_junit_report_marks_skips_and_failures(tmp_path):
    path = tmp_path / "r.xml"
    report.write(sample(), path)
    suite = ET.parse(path).getroot()
    assert suite.tag == "testsuite"
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("4", "1", "1")
    cases = {c.get("name").split(":")[0]: c for c in suite.iter("testcase")}
    assert cases["b"].find("skipped").get("message") == "needs a container runtime"
    assert "Pod x not found" in cases["c"].find("failure").text
    assert "pod/a created" in cases["a"].find("system-out").text


def test_unknown_report_format_is_refused(tmp_path):
    with pytest.raises(KubelabError, match=r"\*.json"):
        report.write(sample(), tmp_path / "r.txt")


def test_passed_ignores_skips():
    r = sample()
    r.steps = r.steps[:2]
    assert r.passed
