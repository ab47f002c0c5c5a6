"""Fixtures that run the real ``probe-test-app`` console script on a free loopback port."""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

START_TIMEOUT = 20.0
STOP_TIMEOUT = 15.0


def _probe_app_command() -> list[str]:
    script = Path(sys.executable).parent / "probe-test-app"
    found = str(script) if script.exists() else shutil.which("probe-test-app")
    if not found:
        pytest.fail("console script probe-test-app missing: pip install -e apps/probe-test-app")
    return [found]


def free_loopback_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class ProbeApp:
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path

    def request(
        self,
        method: str,
        path: str,
        body: bytes | str | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            data = response.read()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, data
        finally:
            conn.close()

    def toggle(self, probe: str) -> int:
        status, _, _ = self.request(
            "POST",
            "/",
            body=f"{probe}=toggle",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        return status

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_exit(self, timeout: float = STOP_TIMEOUT) -> int:
        return self.proc.wait(timeout=timeout)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
                raise
        return self.proc.returncode


def _wait_ready(app: ProbeApp) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if app.proc.poll() is not None:
            pytest.fail(f"probe-test-app exited with {app.proc.returncode}:\n{app.log()}")
        try:
            status, _, _ = app.request("GET", "/livez")
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.02)
    pytest.fail(f"probe-test-app did not answer on port {app.port} within {START_TIMEOUT} s")


@pytest.fixture
def probe_app_command() -> list[str]:
    """The installed console script, as the container image runs it."""
    return _probe_app_command()


@pytest.fixture
def probe_app_factory() -> Iterator[Callable[..., ProbeApp]]:
    """Start ``probe-test-app`` with extra environment; all started apps are stopped after."""
    started: list[ProbeApp] = []
    with tempfile.TemporaryDirectory(prefix="probe-test-app-") as tmp:
        workdir = Path(tmp) / "cwd"  # stays empty: the app writes nothing
        workdir.mkdir()

        def start(env: dict[str, str] | None = None, host: str | None = "127.0.0.1") -> ProbeApp:
            port = free_loopback_port()
            full_env = {**os.environ, "PORT": str(port), **(env or {})}
            full_env.pop("HOST", None)
            if host is not None:
                full_env["HOST"] = host
            for name in ("WORKERS", "APP_VERSION", "ACCESS_LOG"):
                if env is None or name not in env:
                    full_env.pop(name, None)
            log_path = Path(tmp) / f"app-{port}.log"
            with log_path.open("wb") as log_file:
                proc = subprocess.Popen(
                    _probe_app_command(),
                    env=full_env,
                    cwd=workdir,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            app = ProbeApp(proc, port, log_path)
            started.append(app)
            _wait_ready(app)
            return app

        yield start
        for app in started:
            if app.proc.poll() is None:
                app.proc.send_signal(signal.SIGTERM)
                try:
                    app.proc.wait(timeout=STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    os.killpg(app.proc.pid, signal.SIGKILL)
                    app.proc.wait()


@pytest.fixture
def probe_app(probe_app_factory: Callable[..., ProbeApp]) -> ProbeApp:
    """One app with the default settings (1 worker, version v1) on a loopback port."""
    return probe_app_factory()
