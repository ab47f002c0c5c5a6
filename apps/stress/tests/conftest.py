"""Fixtures for the stress tests: running `stress` and real Linux cgroups to run it in.

The cgroups are children of the test process's OWN cgroup (read from /proc/self/cgroup), named
kubelab-stress-<random>, and are removed after each test even when it fails. cgroup v1
(memory, cpu, cpuacct controllers) and cgroup v2 (when it is the main hierarchy) are supported;
when neither can be used the test is skipped with the reason.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

CGROUP_ROOT = Path("/sys/fs/cgroup")


def _stress_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "kubelab_stress", *args]


class StressProcess:
    """A running `stress` whose JSON log lines we can wait for."""

    def __init__(self, args: tuple[str, ...], preexec_fn: Callable[[], None] | None) -> None:
        self.popen = subprocess.Popen(
            _stress_cmd(*args),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=preexec_fn,  # joins a cgroup before exec, on purpose
            start_new_session=True,  # its own process group: _kill_all reaches the workers too
        )
        self.events: list[dict[str, Any]] = []
        self._buffer = b""

    @property
    def pid(self) -> int:
        return self.popen.pid

    def _take_lines(self, chunk: bytes) -> None:
        self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            if line.strip():
                self.events.append(json.loads(line))

    def wait_for_event(self, event: str, timeout: float) -> dict[str, Any]:
        """Read stdout until a line with this ``event`` arrives; fail after ``timeout``."""
        assert self.popen.stdout is not None
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(self.popen.stdout, selectors.EVENT_READ)
            while True:
                for record in self.events:
                    if record["event"] == event:
                        return record
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {event!r} log line within {timeout}s: {self.events}")
                if sel.select(timeout=left):
                    chunk = os.read(self.popen.stdout.fileno(), 65536)
                    if not chunk:
                        raise AssertionError(
                            f"stress exited (rc={self.popen.wait()}) before a {event!r} line; "
                            f"stdout={self.events} stderr={self.stderr()!r}"
                        )
                    self._take_lines(chunk)

    def finish(self, timeout: float) -> int:
        """Wait for exit, collect the rest of stdout, return the exit status."""
        try:
            out, _ = self.popen.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._kill_all()
            raise AssertionError(f"stress did not exit within {timeout}s") from None
        self._take_lines(out + b"\n")
        return self.popen.returncode

    def stderr(self) -> str:
        if self.popen.stderr is None or self.popen.poll() is None:
            return ""
        return self.popen.stderr.read().decode(errors="replace")

    def stop(self) -> None:
        self._kill_all()

    def _kill_all(self) -> None:
        """SIGKILL the whole process group: a worker left behind would keep our stdout pipe
        open and make communicate() wait forever."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.communicate(timeout=10)


@pytest.fixture
def run_stress() -> Iterator[Callable[..., StressProcess]]:
    """Start `stress ARGS...` (optionally inside a cgroup); every process is killed at the end."""
    started: list[StressProcess] = []

    def start(*args: str, preexec_fn: Callable[[], None] | None = None) -> StressProcess:
        proc = StressProcess(args, preexec_fn)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


# ---------------------------------------------------------------------------------------------
# cgroups


def _read_kv(path: Path) -> dict[str, int]:
    values: dict[str, int] = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            values[key] = int(value)
    return values


def _own_cgroups() -> tuple[dict[str, str], str | None]:
    """(v1 controller -> our path, our v2 path or None) from /proc/self/cgroup."""
    v1: dict[str, str] = {}
    v2: str | None = None
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controllers == "":
            v2 = path
        for name in controllers.split(","):
            v1[name] = path
    return v1, v2


def _v1_mounts() -> dict[str, tuple[Path, str]]:
    """v1 controller -> (mount point, root of the mount) from /proc/self/mountinfo."""
    mounts: dict[str, tuple[Path, str]] = {}
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        before, _, after = line.partition(" - ")
        fields, tail = before.split(), after.split()
        if len(tail) < 3 or tail[0] != "cgroup":
            continue
        for option in tail[2].split(","):
            mounts.setdefault(option, (Path(fields[4]), fields[3]))
    return mounts


class TestCgroup:
    """One child cgroup (v1: one directory per controller hierarchy; v2: one directory)."""

    __test__ = False  # not a pytest test class

    def __init__(self, version: int, dirs: dict[str, Path]) -> None:
        self.version = version
        self.dirs = dirs  # controller ("memory", "cpu", "cpuacct", or "v2") -> directory

    def _dir(self, controller: str) -> Path:
        return self.dirs["v2" if self.version == 2 else controller]

    def join(self) -> None:
        """Move the calling process into this cgroup. Used as a Popen preexec_fn, so the
        `stress` program starts inside it (its workers are forked inside it too)."""
        pid = str(os.getpid())
        for directory in dict.fromkeys(self.dirs.values()):
            (directory / "cgroup.procs").write_text(pid)

    def pids(self) -> set[int]:
        found: set[int] = set()
        for directory in self.dirs.values():
            text = (directory / "cgroup.procs").read_text()
            found.update(int(p) for p in text.split())
        return found

    def remove(self) -> None:
        """Kill what is still inside (only our own stress processes), then remove the dirs."""
        deadline = time.monotonic() + 10
        while pids := self.pids():
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            if time.monotonic() > deadline:
                raise RuntimeError(f"processes {pids} stay in cgroup {self.dirs}")
            time.sleep(0.05)
        for directory in dict.fromkeys(self.dirs.values()):
            while True:
                try:
                    directory.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:  # EBUSY while the kernel finishes tearing down the tasks
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)

    # memory ---------------------------------------------------------------------------------

    def limit_memory(self, n_bytes: int) -> None:
        directory = self._dir("memory")
        if self.version == 1:
            (directory / "memory.limit_in_bytes").write_text(str(n_bytes))
            memsw = directory / "memory.memsw.limit_in_bytes"
            if memsw.exists():  # memory+swap limit too, so swap cannot stretch the limit
                memsw.write_text(str(n_bytes))
        else:
            (directory / "memory.max").write_text(str(n_bytes))
            swap = directory / "memory.swap.max"
            if swap.exists():
                swap.write_text("0")

    def oom_kills(self) -> int:
        """How many processes the kernel's OOM killer has killed in this cgroup."""
        directory = self._dir("memory")
        if self.version == 2:
            return _read_kv(directory / "memory.events").get("oom_kill", 0)
        control = _read_kv(directory / "memory.oom_control")
        if "oom_kill" in control:  # Linux >= 4.13
            return control["oom_kill"]
        # older kernels: failcnt counts hits of the limit; under_oom shows an OOM happening
        failcnt = int((directory / "memory.failcnt").read_text())
        return 1 if failcnt > 0 else 0

    def memory_peak(self) -> int:
        directory = self._dir("memory")
        name = "memory.max_usage_in_bytes" if self.version == 1 else "memory.peak"
        path = directory / name
        if not path.exists():
            path = directory / ("memory.current" if self.version == 2 else "memory.usage_in_bytes")
        return int(path.read_text())

    # cpu ------------------------------------------------------------------------------------

    def limit_cpu(self, quota_us: int, period_us: int) -> None:
        directory = self._dir("cpu")
        if self.version == 1:
            (directory / "cpu.cfs_period_us").write_text(str(period_us))
            (directory / "cpu.cfs_quota_us").write_text(str(quota_us))
            # A big share so other work on the machine does not starve the test of the one
            # CPU it may use; the quota, not competition, must be what holds it back.
            (directory / "cpu.shares").write_text("10240")
        else:
            (directory / "cpu.max").write_text(f"{quota_us} {period_us}")
            (directory / "cpu.weight").write_text("1000")

    def cpu_throttling(self) -> tuple[int, int]:
        """(nr_periods, nr_throttled) from cpu.stat."""
        stat = _read_kv(self._dir("cpu") / "cpu.stat")
        return stat["nr_periods"], stat["nr_throttled"]

    def cpu_usage_seconds(self) -> float:
        if self.version == 1:
            return int((self._dir("cpuacct") / "cpuacct.usage").read_text()) / 1e9
        return _read_kv(self._dir("cpu") / "cpu.stat")["usage_usec"] / 1e6


def _make_v1(controllers: list[str], name: str) -> TestCgroup:
    own, _ = _own_cgroups()
    mounts = _v1_mounts()
    dirs: dict[str, Path] = {}
    for controller in controllers:
        if controller not in mounts or controller not in own:
            pytest.skip(f"cgroup v1 controller {controller!r} is not mounted")
        mountpoint, root = mounts[controller]
        relative = os.path.relpath(own[controller], root)
        parent = (mountpoint / relative).resolve()
        if not parent.is_dir():
            pytest.skip(f"our own {controller} cgroup {parent} is not visible in this mount")
        dirs[controller] = parent / name
    return TestCgroup(1, dirs)


def _make_v2(controllers: list[str], name: str) -> TestCgroup:
    _, own = _own_cgroups()
    assert own is not None
    parent = CGROUP_ROOT / own.lstrip("/")
    wanted = {"memory" if c == "memory" else "cpu" for c in controllers}
    enabled = set((parent / "cgroup.subtree_control").read_text().split())
    for controller in sorted(wanted - enabled):
        try:
            (parent / "cgroup.subtree_control").write_text(f"+{controller}")
        except OSError as err:
            pytest.skip(
                f"cannot enable the cgroup v2 {controller} controller below our cgroup "
                f"{parent} ({err.strerror}); run the tests in a cgroup that may have children"
            )
    return TestCgroup(2, {"v2": parent / name})


@pytest.fixture
def stress_cgroup() -> Iterator[Callable[[list[str]], TestCgroup]]:
    """Factory: stress_cgroup(["memory"]) or (["cpu", "cpuacct"]) -> a new child cgroup."""
    if sys.platform != "linux":
        pytest.skip("cgroups are a Linux feature")
    if os.geteuid() != 0:
        pytest.skip("creating cgroups needs root")
    created: list[TestCgroup] = []

    def make(controllers: list[str]) -> TestCgroup:
        name = f"kubelab-stress-{uuid.uuid4().hex[:12]}"
        unified = (CGROUP_ROOT / "cgroup.controllers").exists()
        group = _make_v2(controllers, name) if unified else _make_v1(controllers, name)
        for directory in dict.fromkeys(group.dirs.values()):
            try:
                directory.mkdir()
            except OSError as err:
                group.dirs = {k: v for k, v in group.dirs.items() if v.exists()}
                group.remove()
                pytest.skip(f"cannot create cgroup {directory}: {err.strerror}")
        created.append(group)
        return group

    yield make
    for group in created:
        group.remove()
