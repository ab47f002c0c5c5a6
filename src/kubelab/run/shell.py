"""Run a lab's commands as the learner's terminal would: in order, in one bash session, so `cd`,
variables and heredocs carry from one command to the next; each with a deadline.

The session is `bash --noprofile --norc` reading commands on a pipe. Each command is sent as

    { <command>
    } >OUT 2>&1 </dev/null; __kubelab_done N $?

so it runs in the session's own shell (a brace group is no subshell), its output goes to a file
of its own and its exit status comes back on a private pipe (fd 3) with the working directory.
A command that outlives its deadline takes the session down with it (the whole process group is
killed); the next command gets a fresh session in the last known folder, with the captured
values exported again.
"""

from __future__ import annotations

import contextlib
import os
import select
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

_STATUS_FD = 3
_PRELUDE = f"""set -o pipefail
__kubelab_done() {{ printf '%s %s %s\\n' "$1" "$2" "$PWD" >&{_STATUS_FD}; }}
"""


@dataclass
class CommandResult:
    command: str
    exit_code: int
    output: str  # stdout and stderr, interleaved as printed
    seconds: float
    timed_out: bool = False


def syntax_error(command: str) -> str | None:
    """bash's complaint about a command that does not parse (an open quote would otherwise
    swallow every later command of the session), or None."""
    proc = subprocess.run(
        ["bash", "-n", "-c", command], capture_output=True, text=True, timeout=10, check=False
    )
    return proc.stderr.strip() or "bash cannot parse it" if proc.returncode else None


class ShellSession:
    """One bash process for a lab's commands. Not thread-safe; close() it (or use `with`)."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.cwd = str(cwd)
        self.env = dict(env)
        self.exports: dict[str, str] = {}
        self._dir = Path(tempfile.mkdtemp(prefix="kubelab-shell-"))
        self._proc: subprocess.Popen[bytes] | None = None
        self._status_r = -1
        self._buffer = b""
        self._count = 0

    # --- life cycle -------------------------------------------------------------------------

    def _start(self) -> None:
        status_r, status_w = os.pipe()
        try:
            self._proc = subprocess.Popen(
                ["bash", "--noprofile", "--norc"],
                cwd=self.cwd if Path(self.cwd).is_dir() else None,
                env=self.env,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                pass_fds=(status_w,),
                start_new_session=True,  # its own process group: one kill stops everything
            )
        finally:
            os.close(status_w)
        self._status_r = status_r
        self._buffer = b""
        # the status pipe becomes fd 3 of the shell (the commands themselves never see it)
        move = "" if status_w == _STATUS_FD else f"exec {_STATUS_FD}>&{status_w} {status_w}>&-\n"
        exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in self.exports.items())
        self._send(move + _PRELUDE + exports)

    def _send(self, text: str) -> None:
        assert self._proc and self._proc.stdin
        self._proc.stdin.write(text.encode())
        self._proc.stdin.flush()

    @property
    def pgid(self) -> int | None:
        return self._proc.pid if self._proc and self._proc.poll() is None else None

    def kill(self) -> None:
        """Stop the session and everything it started (SIGKILL to its process group)."""
        if self._proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            self._proc.wait(timeout=5)
        if self._proc.stdin:
            with contextlib.suppress(OSError):
                self._proc.stdin.close()
        if self._status_r >= 0:
            os.close(self._status_r)
            self._status_r = -1
        self._proc = None

    def close(self) -> None:
        self.kill()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> ShellSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- commands ---------------------------------------------------------------------------

    def export(self, name: str, value: str) -> None:
        """Make a captured value a variable of this session (and of any later one)."""
        self.exports[name] = value
        if self._proc is not None and self._proc.poll() is None:
            self._send(f"export {name}={shlex.quote(value)}\n")

    def run(self, command: str, timeout: float) -> CommandResult:
        start = time.monotonic()
        if problem := syntax_error(command):
            return CommandResult(command, 2, f"{problem}\n", time.monotonic() - start)
        if self._proc is None or self._proc.poll() is not None:
            self.kill()
            self._start()
        self._count += 1
        n = self._count
        out = self._dir / f"{n}.out"
        try:
            self._send(
                f"{{ {command}\n}} >{shlex.quote(str(out))} 2>&1 </dev/null {_STATUS_FD}>&-\n"
                f"__kubelab_done {n} $?\n"
            )
        except BrokenPipeError:  # the session died between two commands
            self.kill()
            return self.run(command, timeout)
        code, timed_out = self._wait(n, start + timeout)
        output = out.read_text(errors="replace") if out.exists() else ""
        out.unlink(missing_ok=True)
        return CommandResult(command, code, output, time.monotonic() - start, timed_out)

    def _wait(self, n: int, deadline: float) -> tuple[int, bool]:
        """(exit status, timed out) of command n, from the status pipe."""
        while True:
            while b"\n" in self._buffer:
                line, self._buffer = self._buffer.split(b"\n", 1)
                number, code, cwd = [*line.decode(errors="replace").split(" ", 2), "", ""][:3]
                if number == str(n):
                    self.cwd = cwd or self.cwd
                    return int(code), False
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()  # the next command starts a fresh session in self.cwd
                return 124, True
            ready, _, _ = select.select([self._status_r], [], [], min(left, 1.0))
            if not ready:
                continue
            chunk = os.read(self._status_r, 4096)
            if not chunk:  # the shell exited (`exit N`) or was replaced (`exec`): its status
                assert self._proc is not None
                try:
                    code = self._proc.wait(timeout=max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    self.kill()
                    return 124, True
                self.kill()
                return code, False
            self._buffer += chunk


def run_once(command: str, cwd: Path, env: dict[str, str], timeout: float) -> CommandResult:
    """A command in a shell of its own (check commands, cleanup), with the same rules."""
    with ShellSession(cwd, env) as shell:
        return shell.run(command, timeout)
