"""Fixtures: the real bluegreen-demo server on a loopback port, and headless Chromium."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class BluegreenServer:
    url: str
    process: subprocess.Popen[bytes]
    log: Path


def _start(env_overrides: dict[str, str], log_dir: Path) -> BluegreenServer:
    port = int(env_overrides.get("PORT", _free_port()))
    env = {**os.environ, "HOST": "127.0.0.1", **env_overrides, "PORT": str(port)}
    log = log_dir / f"bluegreen-{env_overrides.get('COLOR', 'blue')}-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "bluegreen_demo"], env=env, stdout=out, stderr=out
        )
    server = BluegreenServer(f"http://127.0.0.1:{port}", process, log)
    deadline = time.monotonic() + 20
    last_error: Exception | None = None
    while True:
        if process.poll() is not None:
            raise AssertionError(f"server exited rc={process.returncode}: {log.read_text()}")
        try:
            with urllib.request.urlopen(f"{server.url}/healthz", timeout=1) as response:
                if response.status == 200:
                    return server
        except (urllib.error.URLError, ConnectionError, TimeoutError) as err:
            last_error = err
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(
                f"server not healthy within 20s ({last_error!r}): {log.read_text()}"
            )
        time.sleep(0.05)


@pytest.fixture
def bluegreen_server(tmp_path: Path) -> Iterator[Callable[..., BluegreenServer]]:
    """Factory: bluegreen_server(COLOR="green", ...) -> a running server; stopped afterwards."""
    started: list[BluegreenServer] = []

    def start(**env: str) -> BluegreenServer:
        server = _start(env, tmp_path)
        started.append(server)
        return server

    yield start
    for server in started:
        server.process.terminate()
        try:
            server.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


@pytest.fixture(scope="module")
def bluegreen_browser() -> Iterator[Any]:
    """Headless Chromium from the Debian package, driven by Playwright. Module scope: it is
    closed before other folders' tests run in the same pytest session."""
    in_ci = os.environ.get("CI", "").lower() == "true"
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: run `make test-deps` (installs the chromium package)"
        if in_ci:
            pytest.fail(message)
        pytest.skip(message)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        message = "playwright is missing: pip install -e 'apps/bluegreen-demo[test]'"
        if in_ci:
            pytest.fail(message)
        pytest.skip(message)
    with (
        tempfile.TemporaryDirectory(prefix="bluegreen-chromium-") as profile,
        sync_playwright() as playwright,
    ):
        context = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 900, "height": 800},
        )
        try:
            yield context
        finally:
            context.close()
