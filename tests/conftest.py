"""Shared helpers for the tool's tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# the tests' shared modules (fake_servers, waiting) import by name under --import-mode=importlib
sys.path.insert(0, str(Path(__file__).resolve().parent))


def run_kubelab(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 900
) -> subprocess.CompletedProcess[str]:
    """Run the real `kubelab` console script as a learner would."""
    kubelab = Path(sys.executable).with_name("kubelab")
    return subprocess.run(
        [str(kubelab), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        cwd=cwd or REPO,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def kubelab_cli():
    return run_kubelab


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Everything under tests/e2e/ needs the embedded cluster: mark it so `-m "not e2e"` works."""
    e2e = Path(__file__).parent / "e2e"
    for item in items:
        if e2e in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.e2e)
