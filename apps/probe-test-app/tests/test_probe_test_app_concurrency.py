"""Many concurrent toggles and reads: no server errors, and a state that adds up."""

from __future__ import annotations

import http.client
import json
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from prometheus_client.parser import text_string_to_metric_families

if TYPE_CHECKING:  # the fixtures' helper class; conftest is not importable at run time
    from conftest import ProbeApp

TOTAL_REQUESTS = 4000
CLIENT_THREADS = 16
OK = {"status": 200, "title": "OK"}
UNHEALTHY = {"status": 500, "title": "Unhealthy"}
OPERATIONS = [("POST", "readyz")] * 3 + [("POST", "livez")] * 3
OPERATIONS += [("GET", "/readyz")] * 5 + [("GET", "/livez")] * 5 + [("GET", "/")] * 4


@dataclass
class Outcome:
    answered: int = 0
    errors: list[str] = field(default_factory=list)
    toggles: dict[str, int] = field(default_factory=lambda: {"livez": 0, "readyz": 0})
    lock: threading.Lock = field(default_factory=threading.Lock)


def mixed_load(port: int, total: int, threads: int, seed: int) -> Outcome:
    """``total`` requests from ``threads`` keep-alive clients; records every server error."""
    outcome = Outcome()
    # Some clients reconnect for every request so that all workers get a share.
    fresh_each_time = {i for i in range(threads) if i % 4 == 0}

    def client(index: int, count: int) -> None:
        rng = random.Random(seed * 100 + index)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for _ in range(count):
            method, target = rng.choice(OPERATIONS)
            if index in fresh_each_time:
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
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
            except (OSError, http.client.HTTPException) as exc:
                with outcome.lock:
                    outcome.errors.append(f"{method} {target}: {exc!r}")
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                continue
            problem = None
            if method == "POST":
                if response.status == 303:
                    with outcome.lock:
                        outcome.toggles[target] += 1
                else:
                    problem = f"POST {target}: HTTP {response.status}"
            elif target == "/":
                if response.status != 200:
                    problem = f"GET /: HTTP {response.status}"
            else:
                try:
                    payload = json.loads(body)
                except ValueError:
                    payload = None
                if (response.status, payload) not in ((200, OK), (500, UNHEALTHY)):
                    problem = f"GET {target}: HTTP {response.status} {body[:80]!r}"
            with outcome.lock:
                outcome.answered += 1
                if problem:
                    outcome.errors.append(problem)
        conn.close()

    shares = [total // threads + (1 if i < total % threads else 0) for i in range(threads)]
    workers = [threading.Thread(target=client, args=(i, n)) for i, n in enumerate(shares)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return outcome


def probe_status(app: ProbeApp, name: str) -> int:
    status, _, body = app.request("GET", f"/{name}")
    assert json.loads(body) == (OK if status == 200 else UNHEALTHY)
    return status


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


@pytest.mark.parametrize("workers", [1, 2])
def test_mixed_concurrent_load_has_no_server_errors(
    probe_app_factory: Callable[..., ProbeApp], workers: int
) -> None:
    app = probe_app_factory({"WORKERS": str(workers)})
    if workers > 1:
        children = Path(f"/proc/{app.proc.pid}/task/{app.proc.pid}/children").read_text().split()
        assert len(children) == workers
        ticks_before = {pid: cpu_ticks(int(pid)) for pid in children}

    outcome = mixed_load(app.port, TOTAL_REQUESTS, CLIENT_THREADS, seed=workers)

    assert outcome.errors == [], outcome.errors[:5]
    assert outcome.answered == TOTAL_REQUESTS
    # Every acknowledged toggle flipped the state exactly once, whichever worker took it.
    for probe, count in outcome.toggles.items():
        assert count > 0
        assert probe_status(app, probe) == (200 if count % 2 == 0 else 500), (probe, count)

    # /metrics adds up all workers: every request of the load is counted exactly once.
    _, _, body = app.request("GET", "/metrics")
    counted = 0.0
    toggles: dict[str, float] = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if sample.name == "http_requests_total" and sample.labels["path"] != "/metrics":
                counted += sample.value
            if sample.name == "probe_toggles_total":
                toggles[sample.labels["probe"]] = sample.value
    # the fixture's readiness polls and probe_status() above add a few /livez and /readyz hits
    assert TOTAL_REQUESTS + 2 <= counted <= TOTAL_REQUESTS + 2 + 1000
    assert toggles == {probe: float(count) for probe, count in outcome.toggles.items()}

    if workers > 1:  # both workers really served part of the load
        for pid, before in ticks_before.items():
            assert cpu_ticks(int(pid)) > before, f"worker {pid} did no work"


def test_toggle_is_seen_by_every_worker(probe_app_factory: Callable[..., ProbeApp]) -> None:
    app = probe_app_factory({"WORKERS": "2"})
    for expected in (500, 200, 500):
        assert app.toggle("readyz") == 303
        # each request is a new connection, so they are spread over the workers
        assert {probe_status(app, "readyz") for _ in range(40)} == {expected}
        assert {probe_status(app, "livez") for _ in range(10)} == {200}
