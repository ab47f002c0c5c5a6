"""Fixtures: a private RabbitMQ node (session) and real `rabbitmq-worker` processes."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pika
import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]
SERVICE_SCRIPT = REPO_ROOT / "scripts" / "rabbitmq_service.py"


def _load_service() -> ModuleType:
    name = "kubelab_rabbitmq_service"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, SERVICE_SCRIPT)
    assert spec is not None and spec.loader is not None, f"cannot load {SERVICE_SCRIPT}"
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def wait_until(
    predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05
) -> Any:
    """Poll `predicate` until it returns something truthy; fail with `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


@pytest.fixture(scope="session")
def rabbitmq_service() -> ModuleType:
    return _load_service()


@pytest.fixture(scope="session")
def rabbitmq_broker(rabbitmq_service: ModuleType) -> Iterator[Any]:
    """A private RabbitMQ node on 127.0.0.1 for the whole session (PrivateBroker)."""
    if rabbitmq_service.find_server() is None or rabbitmq_service.find_epmd() is None:
        pytest.fail(
            "RabbitMQ is not installed (rabbitmq-server not found) — run `make test-deps` "
            "(it runs `python3 scripts/rabbitmq_service.py install`)",
            pytrace=False,
        )
    broker = rabbitmq_service.PrivateBroker(start_timeout=120)
    try:
        broker.start()
    except rabbitmq_service.BrokerError as exc:
        broker.close()
        pytest.fail(f"private RabbitMQ node did not start: {exc}", pytrace=False)
    yield broker
    broker.close()


def queue_state(url: str, queue: str, missing_ok: bool = False) -> tuple[int, int]:
    """(ready messages, consumers) of a queue, via a passive declare.

    With missing_ok, a queue that does not exist (yet) reads as (0, 0).
    """
    conn = pika.BlockingConnection(pika.URLParameters(url))
    try:
        ok = conn.channel().queue_declare(queue=queue, passive=True)
        return ok.method.message_count, ok.method.consumer_count
    except pika.exceptions.ChannelClosedByBroker as exc:
        if missing_ok and exc.reply_code == 404:
            return 0, 0
        raise
    finally:
        if conn.is_open:
            conn.close()


@pytest.fixture
def rabbitmq_queue() -> str:
    """A fresh queue name, so tests sharing the session broker do not see each other."""
    return f"test-{uuid.uuid4().hex[:10]}"


def run_cli(*args: str, timeout: float = 60, env: dict[str, str] | None = None) -> Any:
    return subprocess.run(
        [sys.executable, "-m", "rabbitmq_worker", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


class Worker:
    """One `rabbitmq-worker receive` process whose JSON log goes to a file."""

    def __init__(self, proc: subprocess.Popen[bytes], log_path: Path, name: str) -> None:
        self.proc = proc
        self.log_path = log_path
        self.name = name

    def events(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        try:
            text = self.log_path.read_text()
        except FileNotFoundError:
            return out
        for line in text.splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut short by SIGKILL
        return out

    def event_names(self) -> list[str]:
        return [e["event"] for e in self.events()]

    def stderr(self) -> str:
        path = self.log_path.with_suffix(".err")
        return path.read_text() if path.exists() else ""

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def signal(self, sig: signal.Signals) -> None:
        if self.running:
            self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)


class WorkerPool:
    def __init__(self, url: str, queue: str, log_dir: Path) -> None:
        self.url = url
        self.queue = queue
        self.log_dir = log_dir
        self.workers: list[Worker] = []

    def start(self, count: int = 1, *extra: str, work_seconds: float = 0.05) -> list[Worker]:
        started = []
        for _ in range(count):
            name = f"w{len(self.workers) + 1}"
            log_path = self.log_dir / f"{name}.jsonl"
            with log_path.open("wb") as out, log_path.with_suffix(".err").open("wb") as err:
                proc = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "rabbitmq_worker",
                        "receive",
                        self.url,
                        "--queue",
                        self.queue,
                        "--work-seconds",
                        str(work_seconds),
                        "--max-backoff",
                        "1",
                        *extra,
                    ],
                    stdout=out,
                    stderr=err,
                    stdin=subprocess.DEVNULL,
                )
            worker = Worker(proc, log_path, name)
            self.workers.append(worker)
            started.append(worker)
        return started

    @property
    def running(self) -> list[Worker]:
        return [w for w in self.workers if w.running]

    def done_bodies(self) -> list[str]:
        return [e["body"] for w in self.workers for e in w.events() if e["event"] == "done"]

    def done_counts(self) -> Counter[str]:
        return Counter(self.done_bodies())

    def wait_consumers(self, count: int, timeout: float = 30) -> None:
        wait_until(
            lambda: queue_state(self.url, self.queue, missing_ok=True)[1] == count,
            timeout,
            f"{count} consumer(s) on queue {self.queue}",
        )

    def stop_all(self, timeout: float = 15) -> dict[str, int]:
        """SIGTERM every running worker; return their exit codes."""
        for worker in self.running:
            worker.signal(signal.SIGTERM)
        return {w.name: w.wait(timeout) for w in self.workers if w.proc.returncode is None}

    def kill_all(self) -> None:
        for worker in self.workers:
            if worker.running:
                worker.proc.kill()
            worker.proc.wait(timeout=10)


@pytest.fixture
def rabbitmq_workers(
    rabbitmq_broker: Any, rabbitmq_queue: str, tmp_path: Path
) -> Iterator[WorkerPool]:
    """Start consumers on the session broker and the test's queue; all are killed after."""
    pool = WorkerPool(rabbitmq_broker.url, rabbitmq_queue, tmp_path)
    yield pool
    pool.kill_all()


def send_messages(url: str, queue: str, count: int, run_id: str) -> list[str]:
    """Publish with the CLI; return the bodies it promises (`<run_id>-<seq>`)."""
    result = run_cli("send", url, str(count), "--queue", queue, "--run-id", run_id)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["event"] == "sent" and summary["confirmed"] == count, summary
    return [f"{run_id}-{seq}" for seq in range(1, count + 1)]


@pytest.fixture(scope="session")
def rabbitmq_helpers() -> SimpleNamespace:
    """Helper functions for the test modules (conftest is not importable under importlib)."""
    return SimpleNamespace(
        wait_until=wait_until,
        queue_state=queue_state,
        run_cli=run_cli,
        send_messages=send_messages,
    )
