"""Run a lesson's command the way a learner's shell would, with a deadline."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class CommandResult:
    command: str
    exit_code: int
    output: str  # stdout and stderr, interleaved as printed
    seconds: float
    timed_out: bool = False


def run_shell(command: str, cwd: Path, env: dict[str, str], timeout: float) -> CommandResult:
    """bash -c COMMAND in `cwd`; on timeout the whole process group is killed."""
    start = time.monotonic()
    proc = subprocess.Popen(
        ["bash", "-o", "pipefail", "-c", command],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
        timed_out = False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        timed_out = True
    code = proc.returncode if not timed_out else 124
    return CommandResult(command, code, out or "", time.monotonic() - start, timed_out)
