#!/usr/bin/env python3
"""Install RabbitMQ (Debian package) and run PRIVATE, loopback-only broker nodes.

Command line:
    python3 scripts/rabbitmq_service.py install  # apt-get install rabbitmq-server if missing
    python3 scripts/rabbitmq_service.py run      # private node: prints its URL, Ctrl-C stops

Importable helpers (used by tests and benchmarks):
    with PrivateBroker() as broker:
        broker.url        # amqp://guest:guest@127.0.0.1:<port>/%2F
        broker.restart()  # stop gracefully and start again; durable data survives
        broker.kill()     # SIGKILL the node (crash), start() brings it back

A private node has its own node name, ports (AMQP, Erlang distribution, epmd), data, log and
cookie in a temporary directory, listens on 127.0.0.1 only, and never touches the system
service that the Debian package may have installed. Only the standard library is used here, so
`install` runs with any python3.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PACKAGE = "rabbitmq-server"
# The /usr/sbin wrapper switches to the `rabbitmq` user when run as root; the script under
# /usr/lib runs the node as the current user, which is what a private node needs.
SERVER_CANDIDATES = (
    "/usr/lib/rabbitmq/bin/rabbitmq-server",
    "/usr/local/lib/rabbitmq/bin/rabbitmq-server",
)
EPMD_CANDIDATES = ("/usr/bin/epmd", "/usr/local/bin/epmd")
INSTALL_HINT = "run `make test-deps` (or `sudo python3 scripts/rabbitmq_service.py install`)"


class BrokerError(RuntimeError):
    """A private broker could not be found, started or stopped."""


def find_server() -> str | None:
    """Path of the rabbitmq-server start script, or None when RabbitMQ is not installed."""
    for candidate in SERVER_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def find_epmd() -> str | None:
    found = shutil.which("epmd")
    if found:
        return found
    for candidate in EPMD_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def install() -> int:
    """apt-get install rabbitmq-server when missing; quick no-op when present."""
    if find_server() and find_epmd():
        print(f"{PACKAGE}: already installed ({find_server()})")
        return 0
    apt = shutil.which("apt-get")
    if apt is None:
        print(
            f"error: {PACKAGE} is missing and apt-get is not available — install RabbitMQ "
            "(3.x with Erlang) with your system's package manager",
            file=sys.stderr,
        )
        return 1
    cmd: list[str] = [] if os.geteuid() == 0 else ["sudo"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    # Another apt run may hold the dpkg lock for a while: wait for it instead of failing.
    lock_wait = ["-o", "DPkg::Lock::Timeout=600"]
    steps = [
        [*cmd, apt, "-q", *lock_wait, "update"],
        [*cmd, apt, "install", "-y", "-q", "--no-install-recommends", *lock_wait, PACKAGE],
    ]
    for step in steps:
        print("+", " ".join(step), flush=True)
        result = subprocess.run(step, env=env, check=False)
        if result.returncode != 0:
            print(
                f"error: `{' '.join(step)}` failed (exit {result.returncode}) — check the "
                "apt output above",
                file=sys.stderr,
            )
            return 1
    if not find_server():
        print(f"error: {PACKAGE} installed but its start script was not found", file=sys.stderr)
        return 1
    print(f"{PACKAGE}: installed ({find_server()})")
    return 0


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def amqp_ready(host: str, port: int, timeout: float = 1.0) -> bool:
    """True when the port speaks AMQP 0-9-1: the broker answers our protocol header with a
    Connection.Start method frame (frame type 1, channel 0)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"AMQP\x00\x00\x09\x01")
            head = sock.recv(7)
    except OSError:
        return False
    return len(head) == 7 and head[0] == 1 and head[1:3] == b"\x00\x00"


def _wait_exit(proc: subprocess.Popen[bytes], timeout: float) -> bool:
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return False
    return True


class PrivateBroker:
    """One private RabbitMQ node on loopback. Not thread-safe; one owner."""

    def __init__(self, base_dir: str | Path | None = None, start_timeout: float = 60.0) -> None:
        server = find_server()
        epmd = find_epmd()
        if server is None or epmd is None:
            raise BrokerError(f"RabbitMQ is not installed ({PACKAGE} not found) — {INSTALL_HINT}")
        self.server = server
        self.epmd = epmd
        self.start_timeout = start_timeout
        self._owns_dir = base_dir is None
        self.base = Path(base_dir or tempfile.mkdtemp(prefix="kubelab-rabbitmq-"))
        self.host = "127.0.0.1"
        self.port = free_port()
        self.dist_port = free_port()
        self.epmd_port = free_port()
        self.nodename = f"kubelab-test-{os.getpid()}-{self.port}@localhost"
        self.log_file = self.base / "server-output.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._epmd_proc: subprocess.Popen[bytes] | None = None
        self._prepare_dirs()

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@{self.host}:{self.port}/%2F"

    def _prepare_dirs(self) -> None:
        for sub in ("home", "mnesia", "log", "plugins-expand"):
            (self.base / sub).mkdir(parents=True, exist_ok=True)
        (self.base / "rabbitmq.conf").write_text("log.console = false\nlog.file.level = info\n")
        (self.base / "rabbitmq-env.conf").write_text("")
        (self.base / "enabled_plugins").write_text("[].\n")

    def env(self) -> dict[str, str]:
        """Environment for rabbitmq-server / rabbitmqctl against this node."""
        base = self.base
        loopback_dist = "-kernel inet_dist_use_interface {127,0,0,1}"
        env = {
            **os.environ,
            "HOME": str(base / "home"),  # Erlang cookie lives here, owned by whoever runs us
            "RABBITMQ_NODENAME": self.nodename,
            "RABBITMQ_USE_LONGNAME": "false",
            "RABBITMQ_NODE_IP_ADDRESS": self.host,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "ERL_EPMD_ADDRESS": self.host,
            "ERL_EPMD_PORT": str(self.epmd_port),
            "RABBITMQ_CONF_ENV_FILE": str(base / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(base / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
            "RABBITMQ_PLUGINS_EXPAND_DIR": str(base / "plugins-expand"),
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_PID_FILE": str(base / "rabbitmq.pid"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": loopback_dist,
            "RABBITMQ_CTL_ERL_ARGS": loopback_dist,
        }
        env.pop("RABBITMQ_ERLANG_COOKIE", None)
        return env

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _start_epmd(self) -> None:
        if self._epmd_proc is not None and self._epmd_proc.poll() is None:
            return
        # Our own epmd in the foreground (not -daemon) so that we own it and can stop it.
        self._epmd_proc = subprocess.Popen(
            [self.epmd, "-port", str(self.epmd_port), "-address", self.host],
            env=self.env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection((self.host, self.epmd_port), timeout=0.5).close()
                return
            except OSError:
                if self._epmd_proc.poll() is not None:
                    break
                time.sleep(0.05)
        raise BrokerError(f"epmd did not start on 127.0.0.1:{self.epmd_port}")

    def start(self) -> PrivateBroker:
        """Start the node and wait (polling, with a deadline) until it accepts AMQP."""
        if self.running:
            return self
        self._start_epmd()
        log = self.log_file.open("ab")
        try:
            self._proc = subprocess.Popen(
                [self.server],
                env=self.env(),
                cwd=self.base,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: stop/kill reach every child
            )
        finally:
            log.close()
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise BrokerError(
                    f"rabbitmq-server exited with {self._proc.returncode} during start; "
                    f"see {self.log_file} and {self.base / 'log'}"
                )
            if amqp_ready(self.host, self.port, timeout=0.5):
                return self
            time.sleep(0.1)
        self.kill()
        raise BrokerError(
            f"rabbitmq-server did not accept AMQP on {self.host}:{self.port} within "
            f"{self.start_timeout:.0f}s; see {self.log_file}"
        )

    def stop(self, timeout: float = 30.0) -> None:
        """Graceful stop (SIGTERM: the start script shuts the node down cleanly)."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            if not _wait_exit(proc, timeout):
                self._killpg(proc)
        self._killpg(proc)  # leftovers of the group (erl_child_setup, inet_gethost)
        self._proc = None

    def kill(self) -> None:
        """Crash the node: SIGKILL its whole process group."""
        proc = self._proc
        if proc is None:
            return
        self._killpg(proc)
        self._proc = None

    @staticmethod
    def _killpg(proc: subprocess.Popen[bytes]) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        _wait_exit(proc, 10)

    def restart(self) -> PrivateBroker:
        """Stop gracefully and start again on the same port with the same data."""
        self.stop()
        self._wait_port_free()
        return self.start()

    def _wait_port_free(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    sock.bind((self.host, self.port))
                    return
                except OSError:
                    time.sleep(0.1)

    def close(self) -> None:
        """Stop the node and its epmd, and remove the private directory."""
        self.stop()
        if self._epmd_proc is not None:
            if self._epmd_proc.poll() is None:
                self._epmd_proc.terminate()
                if not _wait_exit(self._epmd_proc, 5):
                    self._epmd_proc.kill()
                    _wait_exit(self._epmd_proc, 5)
            self._epmd_proc = None
        if self._owns_dir:
            shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> PrivateBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def _run_foreground() -> int:
    # Ctrl-C and SIGTERM both stop the node (a background job may inherit SIGINT ignored).
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        broker = PrivateBroker()
    except BrokerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        broker.start()
        print(f"private RabbitMQ node {broker.nodename} ready: {broker.url}", flush=True)
        print(f"data and logs in {broker.base}; press Ctrl-C to stop", flush=True)
        while broker.running:
            time.sleep(0.5)
        print("error: the node exited on its own; see the logs above", file=sys.stderr)
        return 1
    except BrokerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        broker.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("install", help="apt-get install rabbitmq-server when it is missing")
    sub.add_parser("run", help="start a private loopback node until Ctrl-C")
    args = parser.parse_args(argv)
    if args.command == "install":
        return install()
    return _run_foreground()


if __name__ == "__main__":
    sys.exit(main())
