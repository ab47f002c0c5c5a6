"""Benchmark apps/probe-test-app against the reference course's Flask/gunicorn app.

Throughput (default): starts our app as shipped (the ``probe-test-app`` console script with its
default settings, only PORT/HOST set to a loopback port) and, with ``--reference DIR``, the
reference app the way its image runs it (gunicorn 23, default single sync worker, access log to
stdout). Then, per round, for / and /livez, runs wrk (1 thread, 8 connections, 10 s) against
ours and the reference one after the other, and prints req/s, non-2xx/3xx responses, socket
errors and the RSS of each whole process tree (peak while loaded, and after the load).

Concurrency (``--concurrency``): 4,000 requests from 16 threads mixing toggles (POST) and probe
and page reads, against ours (1 and 2 workers) and the reference (2 gunicorn workers). Counts
*server errors*: connection failures, 5xx on / or on POST, probe answers that are neither the
exact healthy nor the exact unhealthy JSON. A probe's 500 Unhealthy is not an error. Also checks
that the final probe states match the parity of the acknowledged toggles.

Examples:
  python benchmarks/probe_test_app.py --reference /tmp/ref/probe-test-app/docker
  python benchmarks/probe_test_app.py --reference DIR --concurrency
All traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

OK_JSON = {"status": 200, "title": "OK"}
UNHEALTHY_JSON = {"status": 500, "title": "Unhealthy"}
DEFAULT_REF_VENV = Path(tempfile.gettempdir()) / "kubelab-bench" / "probe-test-app-reference-venv"
REF_FALLBACK_REQUIREMENTS = ["Flask==3.1.*", "gunicorn==23.*"]


class BenchError(Exception):
    pass


# -- processes -------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tree_rss_kib(root: int) -> int:
    """Sum of VmRSS of ``root`` and all its descendants, from /proc."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # the command name may contain spaces and parentheses: split after the last ')'
        parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        for child, parent in parents.items():
            if parent == pid and child not in tree:
                tree.add(child)
                frontier.append(child)
    total = 0
    for pid in tree:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


@dataclass
class Server:
    name: str
    cmd: list[str]
    env: dict[str, str]
    cwd: str | None = None
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    def start(self) -> None:
        self.port = self.port or free_port()
        env = {**os.environ, **self.env, "PORT": str(self.port), "HOST": "127.0.0.1"}
        cmd = [arg.replace("{port}", str(self.port)) for arg in self.cmd]
        fd, log_name = tempfile.mkstemp(prefix=f"bench-{self.name.split()[0]}-", suffix=".log")
        self.log = Path(log_name)
        # stdout (access logs) is discarded; stderr is kept for error reports
        self.proc = subprocess.Popen(
            cmd,
            cwd=self.cwd,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=fd,
            start_new_session=True,
        )
        os.close(fd)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"{self.name} exited at start: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/livez", timeout=1):
                    return
            except (OSError, urllib.error.URLError):
                time.sleep(0.05)
        raise BenchError(f"{self.name} did not answer /livez within 30 s")

    def rss_kib(self) -> int:
        assert self.proc is not None
        return tree_rss_kib(self.proc.pid)

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            return self.proc.wait()
        finally:
            if self.log:
                self.log.unlink(missing_ok=True)


def our_command() -> list[str]:
    script = Path(sys.executable).parent / "probe-test-app"
    found = str(script) if script.exists() else shutil.which("probe-test-app")
    if not found:
        raise BenchError(
            "probe-test-app console script not found: pip install apps/probe-test-app first"
        )
    return [found]


def reference_app_dir(path: Path) -> Path:
    for candidate in (path, path / "docker"):
        if (candidate / "probetest.py").is_file():
            return candidate
    raise BenchError(f"{path}: no probetest.py here or in docker/ (give the reference app folder)")


def reference_venv(venv: Path, app_dir: Path) -> Path:
    gunicorn = venv / "bin" / "gunicorn"
    if gunicorn.exists():
        return gunicorn
    print(f"creating reference venv {venv} (Flask 3.1 + gunicorn 23 from PyPI)", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    requirements = app_dir / "requirements.txt"
    spec = ["-r", str(requirements)] if requirements.is_file() else REF_FALLBACK_REQUIREMENTS
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", *spec],
        check=True,
    )
    return gunicorn


def reference_server(args: argparse.Namespace, workers: int | None, tmp: Path) -> Server:
    app_dir = reference_app_dir(args.reference)
    gunicorn = reference_venv(args.reference_venv, app_dir)
    # The reference writes its state file in its working directory: run it on a copy.
    copy = Path(tempfile.mkdtemp(dir=tmp, prefix="reference-"))
    shutil.copytree(app_dir, copy, dirs_exist_ok=True)
    cmd = [str(gunicorn), "--bind", "127.0.0.1:{port}", "--access-logfile", "-"]
    name = "reference (gunicorn sync, 1 worker)"
    if workers:
        cmd += ["--workers", str(workers)]
        name = f"reference (gunicorn sync, {workers} workers)"
    return Server(name, [*cmd, "probetest:app"], {}, cwd=str(copy))


# -- throughput ------------------------------------------------------------------------------
@dataclass
class WrkResult:
    rps: float
    non_2xx_3xx: int
    socket_errors: int
    peak_rss_kib: int
    after_rss_kib: int


def run_wrk(server: Server, path: str, args: argparse.Namespace) -> WrkResult:
    peak = server.rss_kib()
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.25):
            peak = max(peak, server.rss_kib())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    url = f"http://127.0.0.1:{server.port}{path}"
    cmd = ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{args.duration}s", url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    done.set()
    sampler.join()
    if out.returncode != 0:
        raise BenchError(f"wrk failed: {out.stderr.strip() or out.stdout.strip()}")
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out.stdout)
    if not rps:
        raise BenchError(f"cannot read wrk output:\n{out.stdout}")
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out.stdout)
    sock = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out.stdout
    )
    time.sleep(0.5)  # let the server settle before the after-load RSS reading
    after = server.rss_kib()
    return WrkResult(
        rps=float(rps.group(1)),
        non_2xx_3xx=int(non2xx.group(1)) if non2xx else 0,
        socket_errors=sum(map(int, sock.groups())) if sock else 0,
        peak_rss_kib=max(peak, after),
        after_rss_kib=after,
    )


def throughput(args: argparse.Namespace, tmp: Path) -> int:
    if not shutil.which("wrk"):
        raise BenchError("wrk not found: apt-get install -y wrk")
    servers = [Server("ours (probe-test-app, defaults)", our_command(), {})]
    if args.with_access_log:
        servers.append(Server("ours (ACCESS_LOG=1)", our_command(), {"ACCESS_LOG": "1"}))
    if args.reference:
        servers.append(reference_server(args, None, tmp))
    results: dict[tuple[str, str], list[WrkResult]] = {}
    try:
        for server in servers:
            server.start()
        for round_no in range(1, args.rounds + 1):
            for path in args.paths:
                for server in servers:  # interleaved, so both see the same background load
                    result = run_wrk(server, path, args)
                    results.setdefault((server.name, path), []).append(result)
                    print(
                        f"round {round_no} {path:7} {server.name:38} {result.rps:9.0f} req/s "
                        f"non-2xx/3xx {result.non_2xx_3xx} socket-errors {result.socket_errors} "
                        f"rss {result.peak_rss_kib / 1024:.1f} MiB",
                        file=sys.stderr,
                        flush=True,
                    )
    finally:
        exit_codes = {server.name: server.stop() for server in servers}
    print_throughput(servers, results, args, exit_codes)
    return 0


def print_throughput(
    servers: list[Server],
    results: dict[tuple[str, str], list[WrkResult]],
    args: argparse.Namespace,
    exit_codes: dict[str, int | None],
) -> None:
    load = os.getloadavg()
    print(
        f"\nwrk -t{args.threads} -c{args.connections} -d{args.duration}s, {args.rounds} round(s),"
        f" median req/s; {os.cpu_count()} CPUs, load average now {load[0]:.1f}"
    )
    header = f"{'server':40} {'path':7} {'req/s':>9} {'non-2xx':>8} {'sockerr':>8}"
    header += f" {'peak RSS':>9} {'after RSS':>9}"
    print(header)
    print("-" * len(header))
    medians: dict[tuple[str, str], float] = {}
    for server in servers:
        for path in args.paths:
            runs = results[(server.name, path)]
            medians[(server.name, path)] = statistics.median(r.rps for r in runs)
            print(
                f"{server.name:40} {path:7} {medians[(server.name, path)]:9.0f}"
                f" {sum(r.non_2xx_3xx for r in runs):8d} {sum(r.socket_errors for r in runs):8d}"
                f" {max(r.peak_rss_kib for r in runs) / 1024:6.1f}MiB"
                f" {runs[-1].after_rss_kib / 1024:6.1f}MiB"
            )
    reference = servers[-1] if args.reference else None
    if reference:
        print()
        for server in servers[:-1]:
            for path in args.paths:
                ratio = medians[(server.name, path)] / medians[(reference.name, path)]
                print(f"ratio {server.name} / reference on {path}: {ratio:.2f}x")
    for name, code in exit_codes.items():
        print(f"exit status after SIGTERM, {name}: {code}")


# -- concurrency -----------------------------------------------------------------------------
@dataclass
class Tally:
    requests: int = 0
    server_errors: int = 0
    probe_unhealthy: int = 0
    toggles: dict[str, int] = field(default_factory=lambda: {"livez": 0, "readyz": 0})
    examples: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def error(self, text: str) -> None:
        with self.lock:
            self.server_errors += 1
            if len(self.examples) < 5:
                self.examples.append(text)


OPERATIONS = [("POST", "readyz")] * 3 + [("POST", "livez")] * 3
OPERATIONS += [("GET", "/readyz")] * 5 + [("GET", "/livez")] * 5 + [("GET", "/")] * 4


def hammer(port: int, total: int, n_threads: int, seed: int = 7) -> Tally:
    tally = Tally()
    per_thread = [
        total // n_threads + (1 if i < total % n_threads else 0) for i in range(n_threads)
    ]

    def worker(index: int, count: int) -> None:
        rng = random.Random(seed + index)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for _ in range(count):
            method, target = rng.choice(OPERATIONS)
            try:
                if method == "POST":
                    conn.request(
                        "POST",
                        "/",
                        body=f"{target}=toggle",
                        headers={"Content-Type": "application/x-www-form-urlencoded"},
                    )
                else:
                    conn.request("GET", target)
                response = conn.getresponse()
                body = response.read()
                status = response.status
                if response.getheader("connection", "").lower() == "close":
                    conn.close()
            except (OSError, http.client.HTTPException) as exc:
                tally.error(f"{method} {target}: {type(exc).__name__}: {exc}")
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                continue
            with tally.lock:
                tally.requests += 1
            if method == "POST":
                if 200 <= status < 400:
                    with tally.lock:
                        tally.toggles[target] += 1
                else:
                    tally.error(f"POST {target}: HTTP {status}")
            elif target == "/":
                if status != 200:
                    tally.error(f"GET /: HTTP {status}")
            else:
                try:
                    payload = json.loads(body)
                except ValueError:
                    payload = None
                if (status, payload) == (500, UNHEALTHY_JSON):
                    with tally.lock:
                        tally.probe_unhealthy += 1
                elif (status, payload) != (200, OK_JSON):
                    tally.error(f"GET {target}: HTTP {status} {body[:60]!r}")
        conn.close()

    threads = [threading.Thread(target=worker, args=(i, n)) for i, n in enumerate(per_thread) if n]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return tally


def final_states(port: int) -> dict[str, bool | None]:
    states: dict[str, bool | None] = {}
    for probe in ("livez", "readyz"):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/{probe}", timeout=5) as r:
                states[probe] = r.status == 200
        except urllib.error.HTTPError as exc:
            states[probe] = False if exc.code == 500 else None
        except OSError:
            states[probe] = None
    return states


def concurrency(args: argparse.Namespace, tmp: Path) -> int:
    servers = [
        Server("ours (1 worker, default)", our_command(), {}),
        Server("ours (WORKERS=2)", our_command(), {"WORKERS": "2"}),
    ]
    if args.reference:
        servers.append(reference_server(args, args.reference_workers, tmp))
    print(f"\n{args.requests} requests from {args.client_threads} threads, mixed toggles and reads")
    header = f"{'server':40} {'answered':>8} {'srv-errors':>10} {'probe-500':>9} consistent"
    print(header)
    print("-" * len(header))
    failures = 0
    for server in servers:
        try:
            server.start()
            started = time.monotonic()
            tally = hammer(server.port, args.requests, args.client_threads)
            elapsed = time.monotonic() - started
            states = final_states(server.port)
        finally:
            server.stop()
        expected = {probe: count % 2 == 0 for probe, count in tally.toggles.items()}
        consistent = states == expected
        print(
            f"{server.name:40} {tally.requests:8d} {tally.server_errors:10d}"
            f" {tally.probe_unhealthy:9d} {'yes' if consistent else 'NO'}"
            f"  ({elapsed:.1f} s; toggles {tally.toggles}; final {states})"
        )
        for example in tally.examples:
            print(f"    e.g. {example}")
        if server.name.startswith("ours") and (tally.server_errors or not consistent):
            failures += 1
    return 1 if failures else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference", type=Path, help="the reference's probe-test-app folder")
    parser.add_argument("--reference-venv", type=Path, default=DEFAULT_REF_VENV)
    parser.add_argument("--concurrency", action="store_true", help="run the concurrency check")
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds (median)")
    parser.add_argument("--paths", nargs="+", default=["/", "/livez"])
    parser.add_argument(
        "--with-access-log", action="store_true", help="also ours with ACCESS_LOG=1"
    )
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--client-threads", type=int, default=16)
    parser.add_argument("--reference-workers", type=int, default=2)
    args = parser.parse_args()
    if args.reference and not args.reference.is_dir():
        print(f"error: --reference {args.reference} is not a folder", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="bench-probe-test-app-") as tmp:
        try:
            if args.concurrency:
                return concurrency(args, Path(tmp))
            return throughput(args, Path(tmp))
        except BenchError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1


if __name__ == "__main__":
    sys.exit(main())
