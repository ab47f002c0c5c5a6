"""Bad command lines get click's usage message and exit 2; a bug gets one line and a request to
report it (the traceback only with KUBELAB_DEBUG=1); Ctrl-C says "interrupted"."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

USAGE_ERRORS = [
    (["run", "probe-test-app", "--bogus"], "No such option: --bogus"),
    (["show", "-x"], "No such option: -x"),
    (["run"], "Missing argument"),
    (["cluster", "up", "--nodes", "abc"], "Invalid value for '--nodes'"),
    (["cluster", "up", "--nodes", "-1"], "Invalid value for '--nodes'"),
    (["nosuch"], "No such command 'nosuch'"),
    (["check", "probe-test-app", "--step"], "requires an argument"),
    (["images", "build", "a", "b"], "Got unexpected extra argument"),
]


@pytest.mark.parametrize(
    ("argv", "words"), USAGE_ERRORS, ids=[" ".join(a) for a, _ in USAGE_ERRORS]
)
def test_usage_errors_print_usage_and_exit_2(kubelab_cli, argv, words):
    proc = kubelab_cli(*argv, timeout=30)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stdout + proc.stderr
    assert f"Error: {words}" in proc.stderr or words in proc.stderr
    if "requires an argument" not in words:  # typer raises that one without its context
        assert "Usage: kubelab" in proc.stderr
        assert "--help" in proc.stderr  # "Try 'kubelab … --help' for help."


def test_no_arguments_shows_the_help(kubelab_cli):
    proc = kubelab_cli(timeout=30)
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "Commands" in proc.stdout + proc.stderr


# A command that fails the way a bug would, registered on the real app, run through main().
_PROGRAM = """
import sys
from kubelab import cli

@cli.app.command("explode")
def explode(how: str) -> None:
    if how == "interrupt":
        raise KeyboardInterrupt
    raise RuntimeError("kaboom\\nsecond line")

sys.argv = ["kubelab", "explode", sys.argv[1]]
cli.main()
"""


def _explode(how: str, debug: bool = False) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "KUBELAB_DEBUG"}
    if debug:
        env["KUBELAB_DEBUG"] = "1"
    return subprocess.run(
        [sys.executable, "-c", _PROGRAM, how],
        capture_output=True,
        text=True,
        env={**env, "COLUMNS": "200"},
        timeout=60,
    )


def test_an_unexpected_error_is_one_line_and_asks_for_a_report():
    proc = _explode("bug")
    assert proc.returncode == 70
    assert "Traceback" not in proc.stderr
    assert "error: RuntimeError: kaboom" in proc.stderr
    assert "second line" not in proc.stderr
    assert "this is a bug: please report it" in proc.stderr
    assert "KUBELAB_DEBUG=1" in proc.stderr


def test_kubelab_debug_shows_the_traceback():
    proc = _explode("bug", debug=True)
    assert proc.returncode == 70
    assert "Traceback" in proc.stderr
    assert "this is a bug: please report it" in proc.stderr


def test_an_interrupt_says_interrupted():
    proc = _explode("interrupt")
    assert proc.returncode == 130
    assert "interrupted" in proc.stderr
    assert "Traceback" not in proc.stderr
