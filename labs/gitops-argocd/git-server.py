#!/usr/bin/env python3
"""A small Git server for the GitOps lab: the bare repositories in one folder, over HTTP, on
127.0.0.1 only (git's own `git http-backend` does the Git part; this is the web server around it).

    python3 git-server.py start [--root DIR]   # idempotent; prints the base URL
    python3 git-server.py url   [--root DIR]   # the base URL of the running server
    python3 git-server.py stop  [--root DIR]   # idempotent

DIR defaults to $KUBELAB_WORK/git (~/.local/state/kubelab/work/gitops-argocd/git). A repository
DIR/NAME.git is at <base URL>/NAME.git: clone, fetch and push (anonymous, so loopback only).
The server runs in the background; its pid, port and log are in DIR/.server/. Standard library
and git only.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HOST = "127.0.0.1"
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0
BACKEND_TIMEOUT_S = 120.0
MARKER = "kubelab-git-server"  # in the server's command line: a reused pid is not ours


class ServerError(Exception):
    pass


def default_root() -> Path:
    work = os.environ.get("KUBELAB_WORK") or str(
        Path.home() / ".local/state/kubelab/work/gitops-argocd"
    )
    return Path(work) / "git"


def _state(root: Path) -> Path:
    return root / ".server"


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def running_pid(root: Path) -> int | None:
    """The server's pid if it runs, for this root (its command line says so)."""
    pid = _read_int(_state(root) / "pid")
    if pid is None:
        return None
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:  # gone (or not Linux: then trust the answer on the port)
        if sys.platform == "linux":
            return None
        try:
            os.kill(pid, 0)
        except OSError:
            return None
        return pid
    if f"--tag={MARKER}".encode() not in argv or str(root.resolve()).encode() not in argv:
        return None
    return pid


def base_url(root: Path) -> str | None:
    port = _read_int(_state(root) / "port")
    if port is None or running_pid(root) is None:
        return None
    return f"http://{HOST}:{port}"


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=1) as resp:
            return resp.status == 200
    except OSError:
        return False


def start(root: Path) -> str:
    root.mkdir(parents=True, exist_ok=True)
    url = base_url(root)
    if url and _answers(url):
        return url
    stop(root)  # a half-started or dead one: its files go
    state = _state(root)
    state.mkdir(exist_ok=True)
    with socket.socket() as s:  # a free loopback port; the child binds it at once
        s.bind((HOST, 0))
        port = s.getsockname()[1]
    with open(state / "log", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "serve", "--root",
             str(root.resolve()), "--port", str(port), f"--tag={MARKER}"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C in the learner's terminal does not stop it
        )  # fmt: skip
    (state / "pid").write_text(str(proc.pid))
    (state / "port").write_text(str(port))
    url = f"http://{HOST}:{port}"
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        if _answers(url):
            return url
        time.sleep(0.05)
    stop(root)
    tail = (state / "log").read_text(errors="replace").strip().splitlines()[-3:]
    raise ServerError(f"the Git server did not start on {url}: {' | '.join(tail) or 'no output'}")


def stop(root: Path) -> bool:
    """Stop the server of this root if it runs; True when one was stopped."""
    pid = running_pid(root)
    stopped = False
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while running_pid(root) is not None and time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            if _zombie(pid):
                break
            time.sleep(0.05)
        if running_pid(root) is not None and not _zombie(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        stopped = True
    for name in ("pid", "port"):
        (_state(root) / name).unlink(missing_ok=True)
    return stopped


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


# --- the server --------------------------------------------------------------------------------


class GitHandler(BaseHTTPRequestHandler):
    """Runs `git http-backend` (a CGI program) for each request: smart HTTP fetch and push."""

    server_version = "kubelab-git-server"
    root: Path  # set on the class by serve()

    def do_GET(self) -> None:
        if self.path == "/healthz":
            self._reply(HTTPStatus.OK, b"ok\n", "text/plain")
            return
        self._backend(b"")

    def do_POST(self) -> None:
        self._backend(self._body())

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()  # the blank line after the last chunk
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _backend(self, body: bytes) -> None:
        path, _, query = self.path.partition("?")
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": str(self.root),
            "GIT_HTTP_EXPORT_ALL": "1",  # every repository under the root is served
            "REQUEST_METHOD": self.command,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_ADDR": self.client_address[0],
            "REMOTE_USER": "learner",  # lets anonymous pushes in (loopback only)
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_PROTOCOL": "HTTP/1.1",
        }
        for header in ("Content-Encoding", "Git-Protocol"):
            if header in self.headers:
                env["HTTP_" + header.upper().replace("-", "_")] = self.headers[header]
        try:
            proc = subprocess.run(
                ["git", "http-backend"], input=body, capture_output=True, env=env,
                timeout=BACKEND_TIMEOUT_S, check=False,
            )  # fmt: skip
        except (OSError, subprocess.TimeoutExpired) as e:
            self._reply(HTTPStatus.INTERNAL_SERVER_ERROR, f"{e}\n".encode(), "text/plain")
            return
        head, sep, content = proc.stdout.partition(b"\r\n\r\n")
        if not sep:
            head, sep, content = proc.stdout.partition(b"\n\n")
        status, headers = HTTPStatus.OK, []
        for line in head.decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = HTTPStatus(int(value.split()[0]))
            elif name:
                headers.append((name, value.strip()))
        if proc.returncode != 0 and not sep:
            self._reply(HTTPStatus.INTERNAL_SERVER_ERROR, proc.stderr, "text/plain")
            return
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)

    def _reply(self, status: HTTPStatus, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        sys.stderr.write(f"{self.address_string()} {format % args}\n")


def serve(root: Path, port: int) -> None:
    handler = type("Handler", (GitHandler,), {"root": root})
    server = ThreadingHTTPServer((HOST, port), handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.serve_forever()
    finally:
        server.server_close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="git-server.py", description=__doc__.split("\n")[0])
    parser.add_argument("action", choices=["start", "stop", "url", "serve"])
    parser.add_argument("--root", type=Path, default=None, help="folder of bare repositories")
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--tag", help=argparse.SUPPRESS)  # marks the server's command line
    args = parser.parse_args(argv)
    root = (args.root or default_root()).resolve()
    try:
        if args.action == "start":
            print(start(root))
        elif args.action == "stop":
            print("stopped" if stop(root) else "not running")
        elif args.action == "url":
            url = base_url(root)
            if url is None:
                raise ServerError(f"no Git server runs for {root}: `git-server.py start` first")
            print(url)
        else:
            serve(root, args.port)
    except ServerError as e:
        print(f"git-server.py: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
