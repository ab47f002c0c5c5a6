"""Benchmark: every bad input and fault we know of, against the real `kubelab` command.

    python benchmarks/bad_inputs.py [-j 2] [--timeout 20] [--only WORD] [--json FILE]

Each case runs the installed `kubelab` console script in a fresh process with its own
KUBECONFIG and labs folder (never the learner's), waits at most --timeout seconds, and is
classified:

- clear      exit status != 0 (or `labs`, which lists the labs anyway) and a message, no traceback
- traceback  a Python traceback was printed
- bug        kubelab's own "this is a bug" line (an unexpected exception, without the traceback)
- hang       still running at the timeout (killed)
- ok?        exit 0 where an error was expected

Cases: CLI usage errors; lab files (encoding, NUL, tags, keys, depth, alias bombs, sizes,
durations, symlinks, schema); kubeconfigs of every bad shape; API-server faults from real servers
started here on 127.0.0.1 (accepts TCP and never answers, closed port, hangs up, TLS with an
unknown CA / wrong host / expired certificate, not Kubernetes, garbage, slow drip). No cluster is
needed. A stand-in `kubectl` (client version only) is put first on PATH so that a kubectl that
contacts the server by itself does not blur what kubelab does. Exit status 1 unless every case
is a clear error.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
import fake_servers as fs  # noqa: E402  (the same servers the tests use)

LAB = "probe-test-app"
SERVER_COMMANDS = [
    ["run", LAB],
    ["check", LAB],
    ["reset", LAB],
    ["labs"],
    ["doctor"],
    ["images", "load", "--dry-run"],
]


@dataclass
class Case:
    group: str
    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    exit_zero_ok: bool = False  # `labs` reports a dead cluster and still lists the labs
    outcome: str = ""
    code: int | None = None
    seconds: float = 0.0
    message: str = ""


def kubelab_exe() -> str:
    here = Path(sys.executable).with_name("kubelab")
    return str(here) if here.exists() else (shutil.which("kubelab") or "kubelab")


def run_case(case: Case, base_env: dict[str, str], timeout: float) -> Case:
    start = time.monotonic()
    proc = subprocess.Popen(
        [kubelab_exe(), *case.argv],
        env={**base_env, **case.env},
        cwd=base_env["BENCH_CWD"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        start_new_session=True,  # so a hang is killed with everything it started
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        case.outcome, case.seconds = "hang", time.monotonic() - start
        case.message = (err or out).strip().splitlines()[-1:] and (err or out).strip()[-100:]
        return case
    case.seconds = time.monotonic() - start
    case.code = proc.returncode
    text = out + err
    lines = [ln.strip() for ln in (err.strip() or out.strip()).splitlines() if ln.strip()]
    error_lines = [ln for ln in lines if ln.lower().startswith(("error", "✘", "no cluster"))]
    case.message = (error_lines or lines or [""])[0][:140]
    if "Traceback (most recent call last)" in text:
        case.outcome = "traceback"
    elif "this is a bug" in text:
        case.outcome = "bug"
    elif proc.returncode != 0 or case.exit_zero_ok:
        case.outcome = "clear"
    else:
        case.outcome = "ok?"
    return case


# --- the inputs ---------------------------------------------------------------------------------

HEAD = "apiVersion: kubelab.dev/v1beta1\nkind: Lab\n"


def billion_laughs(levels: int = 9) -> str:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]")
    return HEAD + "\n".join(lines) + "\n"


def lab_files(real_lab: str) -> dict[str, bytes | str]:
    timeout_line = next(
        (ln for ln in real_lab.splitlines() if ln.startswith("  timeout:")), "  timeout: 90s"
    )

    def with_timeout(value: str) -> str:
        return real_lab.replace(timeout_line, f"  timeout: {value}", 1)

    return {
        "NUL byte": HEAD.encode() + b"metadata:\n  name: a\x00b\n",
        "binary garbage": bytes(range(256)) * 8,
        "not UTF-8 (latin-1)": HEAD.encode() + b"metadata:\n  title: caf\xe9\n",
        "UTF-16 with BOM": (HEAD + "metadata: {}\n").encode("utf-16"),
        "control character": HEAD + "metadata: {title: \x01}\n",
        "tag !vault": HEAD + "metadata:\n  name: !vault |\n    $ANSIBLE_VAULT;1.1\n",
        "tag !!python/name": HEAD + "x: !!python/name:os.system\n",
        "tag !!python/object/apply": HEAD + 'x: !!python/object/apply:os.system ["id"]\n',
        "tag !!binary": HEAD + "x: !!binary aGk=\n",
        "tag !!set": HEAD + "x: !!set {a, b}\n",
        "custom tag !Ref": HEAD + "x: !Ref Something\n",
        "complex key (list)": HEAD + "? [a, b]\n: c\n",
        "complex key (flow map)": HEAD + "x: {{a: 1}: b}\n",
        "nesting 100 deep": HEAD + "x: " + "[" * 100 + "]" * 100 + "\n",
        "nesting 50000 deep": HEAD + "x: " + "[" * 50000 + "\n",
        "block nesting 200 deep": HEAD + "".join("  " * i + f"k{i}:\n" for i in range(200)),
        "alias loop": HEAD + "x: &loop [a, *loop]\n",
        "billion laughs (9 levels)": billion_laughs(9),
        "1001 aliases": HEAD + "a: &a x\nb: [" + ", ".join(["*a"] * 1001) + "]\n",
        "merge key <<": HEAD + "base: &b {x: 1}\nother:\n  <<: *b\n",
        "bad !!int": HEAD + "x: !!int abc\n",
        "bad !!timestamp": HEAD + "x: !!timestamp 2024-99-99\n",
        "duplicate key": real_lab.replace("kind: Lab\n", "kind: Lab\nkind: Lab\n", 1),
        "YAML syntax error": HEAD + "metadata: [unclosed\n",
        "tab indentation": HEAD + "metadata:\n\tname: x\n",
        "several documents": real_lab + "\n---\n" + real_lab,
        "empty": "",
        "only a comment": "# nothing\n",
        "a list at the top": "- a\n- b\n",
        "a scalar at the top": "hello\n",
        "2 MiB file": HEAD + "# padding\n" * 210_000,
        "timeout .inf": with_timeout(".inf"),
        "timeout .nan": with_timeout(".nan"),
        "timeout -.inf": with_timeout("-.inf"),
        "timeout 1e400": with_timeout("1e400"),
        "timeout 10**400": with_timeout("1" + "0" * 400),
        "timeout 999999h": with_timeout("999999h"),
        "timeout -5": with_timeout("-5"),
        "timeout 'soon'": with_timeout("soon"),
        "unknown field": real_lab.replace("spec:\n", "spec:\n  bogus: 1\n", 1),
        "old apiVersion": real_lab.replace("kubelab.dev/v1beta1", "kubelab.dev/v1alpha1", 1),
        "wrong kind": real_lab.replace("kind: Lab", "kind: Pod", 1),
        "name differs from folder": real_lab.replace(f"name: {LAB}", "name: other", 1),
    }


def write_lab(root: Path, content: bytes | str) -> Path:
    folder = root / LAB
    folder.mkdir(parents=True)
    (folder / "lab.yaml").write_bytes(content.encode() if isinstance(content, str) else content)
    return root


def lab_cases(work: Path) -> list[Case]:
    real_lab = (REPO / "labs" / LAB / "lab.yaml").read_text()
    cases = []
    for i, (name, content) in enumerate(lab_files(real_lab).items()):
        root = write_lab(work / "labs" / f"c{i}", content)
        commands = [["show", LAB], ["lint", LAB]]
        if i % 4 == 0:
            commands += [["check", LAB], ["run", LAB]]
        for argv in commands:
            cases.append(Case("lab file", name, argv, {"KUBELAB_LABS": str(root)}))
    # symlinks: never follow a lab file or folder out of the labs folder
    secret = work / "outside" / "secret.yaml"
    secret.parent.mkdir(parents=True)
    secret.write_text("db_password: SECRET-LINE\n  broken: [\n")
    root = work / "labs" / "link-file"
    (root / LAB).mkdir(parents=True)
    (root / LAB / "lab.yaml").symlink_to(secret)
    root2 = work / "labs" / "link-folder"
    root2.mkdir(parents=True)
    other = write_lab(work / "outside" / "labs", real_lab)
    (root2 / LAB).symlink_to(other / LAB, target_is_directory=True)
    root3 = work / "labs" / "link-etc"
    (root3 / LAB).mkdir(parents=True)
    (root3 / LAB / "lab.yaml").symlink_to("/etc/passwd")
    for root_, name in (
        (root, "lab.yaml -> a file outside"),
        (root2, "lab folder -> outside"),
        (root3, "lab.yaml -> /etc/passwd"),
    ):
        for argv in (["show", LAB], ["lint", LAB], ["check", LAB]):
            cases.append(Case("symlink", name, argv, {"KUBELAB_LABS": str(root_)}))
    # the lesson next to lab.yaml (read by lint)
    for name, data in (
        ("README.md not UTF-8", b"# Lesson\ncaf\xe9\n"),
        ("README.md with NUL", b"# Lesson\n\x00\x01\n"),
    ):
        root = work / "labs" / name.replace(" ", "-").replace(".", "-")
        shutil.copytree(REPO / "labs" / LAB, root / LAB)
        (root / LAB / "README.md").write_bytes(data)
        cases.append(Case("lesson", name, ["lint", LAB], {"KUBELAB_LABS": str(root)}))
    # where the labs are
    cases += [
        Case("labs folder", "KUBELAB_LABS missing", ["labs"], {"KUBELAB_LABS": "/nonexistent"}),
        Case("labs folder", "KUBELAB_LABS a file", ["show", LAB], {"KUBELAB_LABS": str(secret)}),
        Case("labs folder", "lab name ../..", ["show", "../../etc"]),
        Case("labs folder", "lab name empty", ["show", ""]),
    ]
    return cases


def usage_cases() -> list[Case]:
    argvs = [
        ["run", LAB, "--bogus"],
        ["show", "-x"],
        ["run"],
        ["check"],
        ["cluster", "up", "--nodes", "abc"],
        ["cluster", "up", "--nodes", "0"],
        ["cluster", "up", "--nodes", "51"],
        ["nosuch"],
        ["--bogus"],
        ["check", LAB, "--step"],
        ["images", "build", "a", "b"],
        ["images", "load", "--bogus"],
        ["run", LAB, "--report", "out.txt"],
        ["run", LAB, "--step", "nope"],
        ["run", LAB, "--step", "pod", "--from", "pod"],
        ["check", LAB, "--upto", "nope"],
        ["show", "nosuchlab"],
        ["lint", "nosuchlab"],
        ["cluster", "bogus"],
        ["run", LAB, "--allow-context"],
    ]
    return [Case("CLI usage", " ".join(a), a) for a in argvs]


def kubeconfig_files(work: Path) -> dict[str, Callable[[Path], Path]]:
    """name -> a function that makes that kubeconfig under a folder and returns its path."""

    def text(content: str | bytes) -> Callable[[Path], Path]:
        def make(folder: Path) -> Path:
            path = folder / "config"
            path.write_bytes(content.encode() if isinstance(content, str) else content)
            return path

        return make

    def good(*changes: tuple[tuple[str | int, ...], object]) -> str:
        """A valid kubeconfig with each (path, value) set; value None deletes the key."""
        import yaml

        cfg: dict = {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "kind-fake",
            "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
            "users": [{"name": "u", "user": {"token": "t"}}],
            "contexts": [{"name": "kind-fake", "context": {"cluster": "c", "user": "u"}}],
        }
        for where, value in changes:
            target: Any = cfg
            for part in where[:-1]:
                target = target[part]
            if value is None:
                del target[where[-1]]
            else:
                target[where[-1]] = value
        return yaml.safe_dump(cfg)

    server = ("clusters", 0, "cluster", "server")
    user = ("users", 0, "user")
    exec_user = {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": "nope"}}

    def directory(folder: Path) -> Path:
        (folder / "config").mkdir()
        return folder / "config"

    def fifo(folder: Path) -> Path:
        os.mkfifo(folder / "config")
        return folder / "config"

    def under_a_file(folder: Path) -> Path:
        (folder / "file").write_text("")
        return folder / "file" / "config"

    def link_loop(folder: Path) -> Path:
        (folder / "config").symlink_to(folder / "config")
        return folder / "config"

    def link_to(target: str) -> Callable[[Path], Path]:
        def make(folder: Path) -> Path:
            (folder / "config").symlink_to(target)
            return folder / "config"

        return make

    def huge(folder: Path) -> Path:
        path = folder / "config"
        with path.open("wb") as fh:
            fh.truncate(17 * 1024 * 1024)
        return path

    return {
        "corrupt YAML": text("clusters: [\n  - name: x\n  oops: {\n"),
        "a list": text("- a\n- b\n"),
        "a scalar": text("hello\n"),
        "a number": text("42\n"),
        "random binary": text(os.urandom(4096)),
        "NUL bytes": text(good().encode() + b"\x00\x00"),
        "not UTF-8": text(b"current-context: caf\xe9\n"),
        "a folder": (directory),
        "a FIFO": (fifo),
        "path under a file": (under_a_file),
        "symlink loop": (link_loop),
        "-> /dev/zero": link_to("/dev/zero"),
        "-> /dev/urandom": link_to("/dev/urandom"),
        "17 MiB": (huge),
        "clusters not a list": text("clusters: {a: 1}\ncurrent-context: kind-fake\n"),
        "entry not a mapping": text("contexts: [oops]\ncurrent-context: kind-fake\n"),
        "entry without name": text(good((("contexts", 0, "name"), None))),
        "server not a string": text(good((server, [1, 2]))),
        "exec not a mapping": text(good((user, {"exec": "run-me"}))),
        "current-context a list": text(good((("current-context",), ["a"]))),
        "no current-context": text(good((("current-context",), None))),
        "current-context undefined": text(good((("current-context",), "kind-nope"))),
        "context without cluster": text(good((("contexts", 0, "context"), {"user": "u"}))),
        "server not a URL": text(good((server, "not a url"))),
        "server ftp://": text(good((server, "ftp://127.0.0.1:1"))),
        "bad base64 CA": text(
            good((("clusters", 0, "cluster", "certificate-authority-data"), "%%%"))
        ),
        "missing client cert file": text(
            good((user, {"client-certificate": "gone.crt", "client-key": "gone.key"}))
        ),
        "exec plugin missing": text(good((user, exec_user))),
        "tag !!python/object": text("x: !!python/object:os.system {}\n"),
        "alias bomb": text(billion_laughs(9).replace(HEAD, "")),
        "nesting 50000 deep": text("x: " + "[" * 50000 + "\n"),
        "empty": text(""),
        "missing file": (lambda folder: folder / "none"),
    }


def kubeconfig_cases(work: Path) -> list[Case]:
    cases = []
    for i, (name, make) in enumerate(kubeconfig_files(work).items()):
        folder = work / "kube" / f"k{i}"
        folder.mkdir(parents=True)
        path = make(folder)
        env = {"KUBECONFIG": str(path)}
        commands = [["check", LAB], ["doctor"]]
        if i % 3 == 0:
            commands += [["reset", LAB], ["labs"], ["images", "load", "--dry-run"]]
        for argv in commands:
            cases.append(Case("kubeconfig", name, argv, env, exit_zero_ok=argv == ["labs"]))
    return cases


# --- fake API servers (real servers on 127.0.0.1, started here) --------------------------------


@contextlib.contextmanager
def raw_server(answer: Callable[[socket.socket], None]) -> Iterator[int]:
    """A plain TCP server on 127.0.0.1 that runs `answer` on each connection."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    sock.settimeout(0.2)
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:
                continue
            threading.Thread(target=answer, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield sock.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=5)
        sock.close()


def _garbage(conn: socket.socket) -> None:
    with contextlib.suppress(OSError):
        conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")
        conn.recv(1024)
        conn.close()


def _http_status(status: bytes) -> Callable[[socket.socket], None]:
    def answer(conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 " + status + b"\r\nContent-Length: 4\r\nConnection: close")
            conn.sendall(b"\r\n\r\noops")
            conn.close()

    return answer


@contextlib.contextmanager
def faults(work: Path) -> Iterator[dict[str, str]]:
    """name -> the KUBECONFIG of a context that points at that broken server."""
    configs: dict[str, str] = {}
    with contextlib.ExitStack() as stack:

        def config(name: str, server: str, ca: bytes | None = None) -> None:
            folder = work / "faults" / name.replace(" ", "-").replace("/", "-")
            folder.mkdir(parents=True)
            configs[name] = str(fs.write_kubeconfig(folder / "config", server, ca_pem=ca))

        hanging = stack.enter_context(fs.hanging_server())
        config("accepts TCP, never answers (https)", f"https://127.0.0.1:{hanging.port}")
        config("accepts TCP, never answers (http)", f"http://127.0.0.1:{hanging.port}")
        config("closed port (killed API server)", f"https://127.0.0.1:{fs.closed_port()}")
        hang_up = stack.enter_context(fs.hang_up_server())
        config("hangs up on connect", f"https://127.0.0.1:{hang_up}")
        trusted, served = fs.make_pki(), fs.make_pki()
        tls_dir = work / "faults" / "tls"
        for name, pki, ca in (
            ("TLS: unknown CA", served, trusted.ca_pem),
            ("TLS: hostname mismatch", fs.make_pki("other.example"), None),
            ("TLS: expired certificate", fs.make_pki(expired=True), None),
            ("TLS ok but not Kubernetes", fs.make_pki(), None),
        ):
            folder = tls_dir / name.replace(" ", "-").replace(":", "")
            folder.mkdir(parents=True)
            port = stack.enter_context(fs.tls_server(pki, folder))
            config(name, f"https://127.0.0.1:{port}", ca or pki.ca_pem)
        for name, scheme, answer in (
            ("https to a plain-HTTP port", "https", _http_status(b"200 OK")),
            ("speaks SSH, not HTTP", "http", _garbage),
            ("HTTP 500", "http", _http_status(b"500 Internal Server Error")),
            ("HTTP 401", "http", _http_status(b"401 Unauthorized")),
        ):
            port = stack.enter_context(raw_server(answer))
            config(name, f"{scheme}://127.0.0.1:{port}")
        config(
            "drips one byte per 0.5 s", f"http://127.0.0.1:{stack.enter_context(fs.drip_server())}"
        )
        yield configs


def fault_cases(configs: dict[str, str]) -> list[Case]:
    cases = []
    for name, kubeconfig in configs.items():
        for argv in SERVER_COMMANDS:
            cases.append(Case("server", name, argv, {"KUBECONFIG": kubeconfig}, argv == ["labs"]))
    return cases


# --- main ---------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-j", "--jobs", type=int, default=2, help="cases run at once")
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds before 'hang'")
    parser.add_argument("--only", default="", help="only cases whose group or name has WORD")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="kubelab-bad-inputs-"))
    try:
        tools = fs.fake_tools(work / "bin")
        base_env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("KUBELAB_")},
            "KUBECONFIG": str(work / "no-kubeconfig"),  # never the learner's
            "KUBELAB_LABS": str(REPO / "labs"),
            "PATH": f"{tools}{os.pathsep}{os.environ.get('PATH', '')}",
            "TMPDIR": str(work / "tmp"),
            "COLUMNS": "200",
            "BENCH_CWD": str(work),
        }
        (work / "tmp").mkdir()
        with faults(work) as configs:
            cases = usage_cases() + lab_cases(work) + kubeconfig_cases(work)
            cases += fault_cases(configs)
            if args.only:
                cases = [c for c in cases if args.only.lower() in f"{c.group} {c.name}".lower()]
            print(f"{len(cases)} cases, {args.jobs} at a time, {args.timeout:.0f}s each at most")
            with ThreadPoolExecutor(max_workers=args.jobs) as pool:
                done = list(pool.map(lambda c: run_case(c, base_env, args.timeout), cases))
        leftovers = sorted(str(p) for p in (work / "tmp").rglob("*.kubeconfig"))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def label(c: Case) -> str:
        command = " ".join(c.argv)
        return command if c.name == command else f"{c.name} | {command}"

    width = max(len(label(c)) for c in done)
    for group in dict.fromkeys(c.group for c in done):
        print(f"\n## {group}")
        for c in (c for c in done if c.group == group):
            code = "-" if c.code is None else str(c.code)
            print(f"{label(c):<{width}}  {c.outcome:<9} {code:>3} {c.seconds:5.1f}s  {c.message}")
    counts = Counter(c.outcome for c in done)
    inputs = len({(c.group, c.name) for c in done})
    slowest = max(done, key=lambda c: c.seconds)
    print(
        f"\ninputs tried: {inputs} ({len(done)} command runs)  clear errors: {counts['clear']}  "
        f"tracebacks: {counts['traceback']}  bugs: {counts['bug']}  hangs: {counts['hang']}  "
        f"exit 0: {counts['ok?']}  max seconds: {slowest.seconds:.1f} "
        f"({label(slowest)})"
    )
    if leftovers:
        print(f"credentials left in the temp folder: {leftovers}")
    if args.json:
        args.json.write_text(
            json.dumps([{k: v for k, v in c.__dict__.items()} for c in done], indent=1)
        )
    return 0 if counts["clear"] == len(done) and not leftovers else 1


if __name__ == "__main__":
    sys.exit(main())
