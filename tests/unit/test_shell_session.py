"""The lab's commands run as in one terminal: state carries from command to command, each
command has a deadline, and whatever a command does, the next one still runs."""

from __future__ import annotations

import os
import time
from pathlib import Path

from kubelab.run.shell import ShellSession, run_once


def test_cd_variables_and_heredocs_carry_over(tmp_path):
    (tmp_path / "sub").mkdir()
    with ShellSession(tmp_path, dict(os.environ)) as shell:
        assert shell.run("cd sub && NAME=jane", 10).exit_code == 0
        result = shell.run('pwd; echo "hello $NAME"', 10)
        assert result.output == f"{tmp_path}/sub\nhello jane\n"
        heredoc = shell.run("cat <<EOF > note.txt\nfor $NAME\n  indented\nEOF\ncat note.txt", 10)
        assert heredoc.exit_code == 0 and heredoc.output == "for jane\n  indented\n"
        assert (tmp_path / "sub" / "note.txt").is_file()


def test_exit_status_stderr_and_pipefail(tmp_path):
    with ShellSession(tmp_path, dict(os.environ)) as shell:
        failed = shell.run("echo to-stderr >&2; exit_code() { return 3; }; exit_code", 10)
        assert (failed.exit_code, failed.output) == (3, "to-stderr\n")
        assert shell.run("false | cat", 10).exit_code == 1


def test_a_command_past_its_deadline_is_stopped_and_the_session_goes_on(tmp_path):
    with ShellSession(tmp_path, dict(os.environ)) as shell:
        shell.run("cd /", 10)
        shell.export("JOB", "hello-now")
        start = time.monotonic()
        slow = shell.run("echo started; exec sleep 30", 1)
        assert slow.timed_out and slow.exit_code == 124
        assert time.monotonic() - start < 5
        after = shell.run("pwd; echo $JOB", 10)
        assert after.output == "/\nhello-now\n"  # the folder and captured values survive


def test_exit_in_a_command_ends_only_that_command(tmp_path):
    with ShellSession(tmp_path, dict(os.environ)) as shell:
        assert shell.run("exit 7", 10).exit_code == 7
        assert shell.run("echo still here", 10).output == "still here\n"


def test_a_command_that_does_not_parse_fails_at_once(tmp_path):
    with ShellSession(tmp_path, dict(os.environ)) as shell:
        start = time.monotonic()
        broken = shell.run("echo 'unclosed", 30)
        assert broken.exit_code == 2 and "unexpected EOF" in broken.output
        assert time.monotonic() - start < 5
        assert shell.run("echo next", 10).output == "next\n"


def test_commands_read_no_stdin_and_leave_no_files(tmp_path):
    before = set(Path("/tmp").glob("kubelab-shell-*"))
    assert run_once("cat", tmp_path, dict(os.environ), 10).exit_code == 0  # EOF, not a hang
    assert set(Path("/tmp").glob("kubelab-shell-*")) == before
