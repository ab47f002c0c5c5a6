"""Reports of a run for CI: JSON (kubelab's own) and JUnit XML."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import asdict
from pathlib import Path
from typing import Any

from kubelab.errors import KubelabError
from kubelab.run.results import RunReport, StepReport


def _step_dict(step: StepReport) -> dict[str, Any]:
    data = asdict(step)
    data["commands"] = [
        {
            "command": c.command,
            "exitCode": c.exit_code,
            "seconds": round(c.seconds, 3),
            "output": c.output[-4000:],
        }
        for c in step.commands
    ]
    data["seconds"] = round(step.seconds, 3)
    return data


def to_json(report: RunReport) -> dict[str, Any]:
    return {
        "lab": report.lab,
        "context": report.context,
        "flavour": report.flavour,
        "passed": report.passed,
        "interrupted": report.interrupted or None,
        "counts": report.counts,
        "steps": [_step_dict(s) for s in report.steps],
        "cleanup": _step_dict(report.cleanup) if report.cleanup else None,
    }


def to_junit(report: RunReport) -> ET.Element:
    steps = report.steps + ([report.cleanup] if report.cleanup else [])
    suite = ET.Element(
        "testsuite",
        name=f"kubelab.{report.lab}",
        tests=str(len(steps)),
        failures=str(sum(1 for s in steps if s.status == "failed")),
        skipped=str(sum(1 for s in steps if s.status == "skipped")),
        errors="0",
        time=f"{sum(s.seconds for s in steps):.3f}",
    )
    props = ET.SubElement(suite, "properties")
    ET.SubElement(props, "property", name="context", value=report.context)
    ET.SubElement(props, "property", name="flavour", value=report.flavour)
    for step in steps:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"kubelab.{report.lab}",
            name=f"{step.id}: {step.title}",
            time=f"{step.seconds:.3f}",
        )
        if step.status == "skipped":
            ET.SubElement(case, "skipped", message=step.reason)
        elif step.status == "failed":
            failure = ET.SubElement(case, "failure", message=step.reason)
            failure.text = (
                "\n".join(f"{f.summary}: {f.detail}" for f in step.failures) or step.reason
            )
        if step.commands:
            out = ET.SubElement(case, "system-out")
            out.text = "\n".join(f"$ {c.command}\n{c.output}" for c in step.commands)
    return suite


def write(report: RunReport, path: Path) -> None:
    if path.suffix == ".json":
        text = json.dumps(to_json(report), indent=2) + "\n"
    elif path.suffix == ".xml":
        tree = ET.ElementTree(to_junit(report))
        ET.indent(tree)
        text = ET.tostring(tree.getroot(), encoding="unicode", xml_declaration=True) + "\n"
    else:
        raise KubelabError(
            f"cannot write a report to {path}: unknown format",
            "name the file *.json (kubelab's report) or *.xml (JUnit)",
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise KubelabError(f"cannot write the report {path}: {exc.strerror}") from None
