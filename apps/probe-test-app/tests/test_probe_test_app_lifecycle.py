"""Start-up settings, bad settings, graceful shutdown and 'nothing written to disk'."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # the fixtures' helper class; conftest is not importable at run time
    from conftest import ProbeApp


def run_cli(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    unset = ("PORT", "HOST", "WORKERS", "APP_VERSION", "ACCESS_LOG")
    full_env = {k: v for k, v in os.environ.items() if k not in unset}
    return subprocess.run(
        command,
        env={**full_env, **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PORT": "abc"}, "PORT must be a whole number from 1 to 65535 (got 'abc')"),
        ({"PORT": "70000"}, "PORT must be a whole number from 1 to 65535"),
        ({"WORKERS": "0"}, "WORKERS must be a whole number from 1 to 64"),
        ({"ACCESS_LOG": "maybe"}, "ACCESS_LOG must be true or false"),
        ({"APP_VERSION": " "}, "APP_VERSION must not be empty"),
    ],
)
def test_bad_settings_give_one_clear_line(
    probe_app_command: list[str], env: dict[str, str], message: str
) -> None:
    result = run_cli(probe_app_command, env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("probe-test-app: error: ")
    assert message in lines[0]
    assert "Traceback" not in result.stderr + result.stdout


def test_port_in_use_gives_one_clear_line(probe_app_command: list[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli(probe_app_command, {"PORT": str(port), "HOST": "127.0.0.1"})
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_listens_on_all_interfaces_by_default(probe_app_factory: Callable[..., ProbeApp]) -> None:
    app = probe_app_factory(host=None)
    assert f"listening on http://0.0.0.0:{app.port}" in app.log()


def test_access_log_when_asked(probe_app_factory: Callable[..., ProbeApp]) -> None:
    app = probe_app_factory({"ACCESS_LOG": "1"})
    app.request("GET", "/readyz")
    deadline = time.monotonic() + 10
    while '"GET /readyz HTTP/1.1" 200' not in app.log():
        assert time.monotonic() < deadline, app.log()
        time.sleep(0.02)


def _wait_refused(port: int, deadline: float) -> None:
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except ConnectionRefusedError:
            return
        assert time.monotonic() < deadline, "still accepting connections after SIGTERM"
        time.sleep(0.02)


def test_sigterm_completes_the_request_in_flight_and_exits_0(probe_app: ProbeApp) -> None:
    conn = socket.create_connection(("127.0.0.1", probe_app.port), timeout=10)
    # Complete one request first, so the connection is certainly accepted by the server.
    conn.sendall(b"GET /livez HTTP/1.1\r\nHost: t\r\n\r\n")
    first = b""
    while b'"OK"}' not in first:
        first += conn.recv(4096)
    body = b"readyz=toggle"
    head = (
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body)
    )
    conn.sendall(head + body[:4])  # the request is now in flight, waiting for its body

    probe_app.proc.send_signal(signal.SIGTERM)
    _wait_refused(probe_app.port, time.monotonic() + 10)  # shutdown has begun
    assert probe_app.proc.poll() is None  # ... but it waits for our request

    conn.sendall(body[4:])
    answer = b""
    while True:
        chunk = conn.recv(4096)
        if not chunk:
            break
        answer += chunk
    conn.close()
    assert answer.startswith(b"HTTP/1.1 303 "), answer
    assert b"location: /" in answer.lower()
    assert probe_app.wait_exit(timeout=10) == 0


def test_sigterm_with_idle_keepalive_connection_exits_0(probe_app: ProbeApp) -> None:
    conn = socket.create_connection(("127.0.0.1", probe_app.port), timeout=10)
    conn.sendall(b"GET /readyz HTTP/1.1\r\nHost: t\r\n\r\n")
    answer = b""
    while b'"OK"}' not in answer:
        answer += conn.recv(4096)
    assert answer.startswith(b"HTTP/1.1 200")
    probe_app.proc.send_signal(signal.SIGTERM)
    assert probe_app.wait_exit(timeout=10) == 0
    assert conn.recv(4096) == b""  # the server closed the idle connection
    conn.close()


def test_sigterm_stops_all_workers(probe_app_factory: Callable[..., ProbeApp]) -> None:
    app = probe_app_factory({"WORKERS": "3"})
    children = Path(f"/proc/{app.proc.pid}/task/{app.proc.pid}/children").read_text().split()
    assert len(children) == 3
    app.proc.send_signal(signal.SIGTERM)
    assert app.wait_exit(timeout=10) == 0
    deadline = time.monotonic() + 10
    while True:  # no process of the app's process group is left
        try:
            os.killpg(app.proc.pid, 0)
        except ProcessLookupError:
            break
        assert time.monotonic() < deadline, "workers still running after the supervisor exited"
        time.sleep(0.02)


def test_nothing_is_written_to_disk(probe_app: ProbeApp) -> None:
    for _ in range(3):
        probe_app.toggle("livez")
        probe_app.request("GET", "/")
        probe_app.request("GET", "/metrics")
    pid = probe_app.proc.pid
    cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
    assert list(cwd.iterdir()) == []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        if fd in ("1", "2"):  # the test's own log capture
            continue
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            flags = int(Path(f"/proc/{pid}/fdinfo/{fd}").read_text().split()[3], 8)
        except FileNotFoundError:
            continue
        if target.startswith("/") and not target.startswith("/dev/"):
            assert flags & os.O_ACCMODE == os.O_RDONLY, f"fd {fd} -> {target} open for writing"


def test_unknown_flag_gives_one_clear_line(probe_app_command: list[str]) -> None:
    result = run_cli([*probe_app_command, "--colour", "red"], {})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "probe-test-app: error: unrecognized arguments: --colour red (see probe-test-app --help)"
    ]
