"""``probe-test-app`` console script: serve the app with uvicorn (httptools + uvloop).

Settings come from the environment, as in the container image; flags override them:

  PORT         port to listen on (default 8080)
  HOST         address to listen on (default 0.0.0.0, all IPv4 interfaces; "::" for IPv6 too)
  WORKERS      worker processes sharing the socket and the probe state (default 1)
  APP_VERSION  version shown on the page and in /metrics (default v1)
  ACCESS_LOG   "1"/"true" to log every request to stdout (default off)

SIGTERM or SIGINT: stop accepting connections, finish the requests in flight, exit 0.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import socket
import sys
from types import FrameType
from typing import NoReturn

import uvicorn

from probe_test_app.app import create_app
from probe_test_app.state import SharedState

PROG = "probe-test-app"
GRACEFUL_SHUTDOWN_SECONDS = 20
MAX_WORKERS = 64
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}

log = logging.getLogger(PROG)


class UsageError(Exception):
    """Bad setting: reported as one line, exit status 2."""


def _int_setting(name: str, raw: str, low: int, high: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise UsageError(f"{name} must be a whole number from {low} to {high} (got {raw!r})")
    return value


def _bool_setting(name: str, raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise UsageError(f"{name} must be true or false (got {raw!r})")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {PROG} --help)")


def parse_settings(argv: list[str] | None) -> argparse.Namespace:
    env = os.environ
    parser = _Parser(
        prog=PROG, description="Serve the probe test app (settings default to the environment)."
    )
    parser.add_argument("--host", default=env.get("HOST", "0.0.0.0"), help="env HOST")
    parser.add_argument("--port", default=env.get("PORT", "8080"), help="env PORT")
    parser.add_argument("--workers", default=env.get("WORKERS", "1"), help="env WORKERS")
    parser.add_argument("--app-version", default=env.get("APP_VERSION", "v1"), help="APP_VERSION")
    parser.add_argument("--access-log", default=env.get("ACCESS_LOG", ""), help="env ACCESS_LOG")
    args = parser.parse_args(argv)
    args.port = _int_setting("PORT", str(args.port), 1, 65535)
    args.workers = _int_setting("WORKERS", str(args.workers), 1, MAX_WORKERS)
    args.access_log = _bool_setting("ACCESS_LOG", str(args.access_log))
    if not args.app_version.strip():
        raise UsageError("APP_VERSION must not be empty (e.g. APP_VERSION=v1)")
    return args


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server(
            (host, port), family=family, backlog=2048, dualstack_ipv6=host in ("::", "[::]")
        )
    except OSError as exc:
        raise UsageError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc} "
            "(pick a free port with PORT=... or another address with HOST=...)"
        ) from None


def run_worker(
    sock: socket.socket,
    state: SharedState,
    slot: int,
    version: str,
    access_log: bool,
    unblock: set[signal.Signals] | None = None,
) -> int:
    """Serve on ``sock`` until SIGTERM/SIGINT; finishes requests in flight. Returns exit status."""
    state.use_slot(slot)
    config = uvicorn.Config(
        create_app(state, version),
        loop="uvloop",
        http="httptools",
        ws="none",
        lifespan="off",
        interface="asgi3",
        access_log=access_log,
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
    server = uvicorn.Server(config)
    # The server's own handler is installed before it runs, so a stop signal that arrives during
    # start-up still stops it. uvicorn re-raises the stopping signal after a graceful shutdown;
    # with a Python handler in place that is harmless and the process exits 0, not by signal.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, server.handle_exit)
    if unblock:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, unblock)
    server.run(sockets=[sock])
    return 0


def supervise(
    sock: socket.socket, state: SharedState, workers: int, version: str, access_log: bool
) -> int:
    """Fork ``workers`` processes sharing the socket and state; stop them all on SIGTERM."""
    children: dict[int, int] = {}
    stopping = False

    def stop_all(sig: int = signal.SIGTERM, frame: FrameType | None = None) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    stop_signals = {signal.SIGTERM, signal.SIGINT}
    signal.signal(signal.SIGTERM, stop_all)
    signal.signal(signal.SIGINT, stop_all)
    for slot in range(workers):
        # Hold the stop signals across fork so a child never runs the parent's handler; the
        # child unblocks them once its own handlers are installed (pending ones arrive then).
        signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
        pid = os.fork()
        if pid == 0:  # child
            status = 1
            try:
                status = run_worker(sock, state, slot, version, access_log, unblock=stop_signals)
            except BaseException:
                log.exception("worker %d crashed", slot)
            finally:
                os._exit(status)
        children[pid] = slot
        signal.pthread_sigmask(signal.SIG_UNBLOCK, stop_signals)
        if stopping:  # stopped while starting: do not start the rest
            stop_all()
            break
    sock.close()
    log.info("started %d workers: %s", workers, " ".join(map(str, children)))

    exit_status = 0
    while children:
        try:
            pid, wait_status = os.wait()
        except ChildProcessError:
            break
        slot = children.pop(pid)
        code = os.waitstatus_to_exitcode(wait_status)
        if not stopping:
            log.error("worker %d (pid %d) exited with %d; stopping the others", slot, pid, code)
            exit_status = 1
            stop_all()
        elif code != 0:
            exit_status = 1
    return exit_status


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(message)s")
    try:
        args = parse_settings(argv)
        sock = bind(args.host, args.port)
    except UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    host, port = sock.getsockname()[:2]
    log.info(
        "probe-test-app %s listening on http://%s:%d with %d worker(s)",
        args.app_version,
        f"[{host}]" if ":" in host else host,
        port,
        args.workers,
    )
    state = SharedState(args.workers)
    if args.workers == 1:
        return run_worker(sock, state, 0, args.app_version, args.access_log)
    return supervise(sock, state, args.workers, args.app_version, args.access_log)


if __name__ == "__main__":
    sys.exit(main())
