"""Which host process belongs to an add-on's folder (kubelab.addons.host.owned_pid): the one
started for it, never a process that merely got the same pid later."""

import os
import subprocess
import sys

from kubelab.addons.host import OWNER_ENV, owned_pid

IDLE = [sys.executable, "-c", "import signal; signal.pause()"]


def _start(env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(IDLE, env={**os.environ, **env})


def test_the_process_started_for_the_folder_is_owned(tmp_path):
    proc = _start({OWNER_ENV: str(tmp_path)})
    try:
        (tmp_path / "x.pid").write_text(str(proc.pid))
        assert owned_pid(tmp_path / "x.pid") == proc.pid
    finally:
        proc.kill()
        proc.wait()
    assert owned_pid(tmp_path / "x.pid") is None  # gone


def test_a_stranger_with_the_pid_is_not_owned(tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    for env in ({}, {OWNER_ENV: str(other)}):  # no marker, or another folder's
        proc = _start(env)
        try:
            (tmp_path / "x.pid").write_text(str(proc.pid))
            assert owned_pid(tmp_path / "x.pid") is None
        finally:
            proc.kill()
            proc.wait()


def test_missing_or_garbled_pid_files_are_not_owned(tmp_path):
    assert owned_pid(tmp_path / "none.pid") is None
    (tmp_path / "bad.pid").write_text("not a pid")
    assert owned_pid(tmp_path / "bad.pid") is None
