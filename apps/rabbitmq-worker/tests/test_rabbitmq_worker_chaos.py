"""Chaos: consumers are SIGTERMed and SIGKILLed while they work; no message may be lost.

Defaults are the acceptance figure (500 messages, 3 consumers, 6 rounds); override with
RABBITMQ_CHAOS_MESSAGES / _CONSUMERS / _ROUNDS / _WORK_SECONDS.
"""

from __future__ import annotations

import os
import signal
from typing import Any

import pytest

MESSAGES = int(os.environ.get("RABBITMQ_CHAOS_MESSAGES", "500"))
CONSUMERS = int(os.environ.get("RABBITMQ_CHAOS_CONSUMERS", "3"))
ROUNDS = int(os.environ.get("RABBITMQ_CHAOS_ROUNDS", "6"))
WORK_SECONDS = float(os.environ.get("RABBITMQ_CHAOS_WORK_SECONDS", "0.05"))


def _two_busy(pool: Any) -> list[Any] | None:
    """The two oldest running consumers that have processed something, if there are two."""
    running = pool.running
    if len(running) < CONSUMERS:
        pytest.fail(f"only {len(running)} of {CONSUMERS} consumers running: one exited on its own")
    busy = [w for w in running if "done" in w.event_names()]
    return busy[:2] if len(busy) >= 2 else None


def test_chaos_no_message_lost(
    rabbitmq_broker: Any,
    rabbitmq_workers: Any,
    rabbitmq_helpers: Any,
    record_property: Any,
) -> None:
    assert CONSUMERS >= 2, "each round stops two consumers"
    h = rabbitmq_helpers
    url, queue = rabbitmq_broker.url, rabbitmq_workers.queue
    expected = h.send_messages(url, queue, MESSAGES, "chaos")
    rabbitmq_workers.start(CONSUMERS, work_seconds=WORK_SECONDS)

    terminated = []
    killed = []
    for round_no in range(1, ROUNDS + 1):
        # spread the rounds over the run: round k fires after k/(ROUNDS+2) of the work is done
        target = MESSAGES * round_no // (ROUNDS + 2)
        h.wait_until(
            lambda target=target: len(set(rabbitmq_workers.done_bodies())) >= target,
            60,
            f"{target} messages done before chaos round {round_no}",
        )
        # the two oldest consumers that have already taken work
        busy = h.wait_until(
            lambda: _two_busy(rabbitmq_workers), 30, "two consumers that have taken work"
        )
        term, kill = busy[0], busy[1]
        term.signal(signal.SIGTERM)
        kill.proc.kill()
        terminated.append(term)
        killed.append(kill)
        rabbitmq_workers.start(2, work_seconds=WORK_SECONDS)  # replacements, like a Deployment
        assert term.wait(timeout=10) == 0, f"{term.name} did not exit 0 after SIGTERM"
        assert kill.wait(timeout=10) == -signal.SIGKILL

    h.wait_until(
        lambda: set(rabbitmq_workers.done_bodies()) >= set(expected),
        120,
        f"all {MESSAGES} messages processed",
    )
    h.wait_until(lambda: h.queue_state(url, queue)[0] == 0, 10, "an empty queue")
    codes = rabbitmq_workers.stop_all()

    counts = rabbitmq_workers.done_counts()
    lost = sorted(set(expected) - set(counts))
    foreign = sorted(set(counts) - set(expected))
    duplicates = {body: n for body, n in counts.items() if n > 1}
    redelivered = sum(
        1
        for w in rabbitmq_workers.workers
        for e in w.events()
        if e["event"] == "done" and e["redelivered"]
    )
    summary = (
        f"chaos: messages={MESSAGES} consumers={CONSUMERS} rounds={ROUNDS} "
        f"work_seconds={WORK_SECONDS} processes={len(rabbitmq_workers.workers)} "
        f"lost={len(lost)} duplicates={len(duplicates)} redelivered_done={redelivered}"
    )
    print(summary)
    if duplicates:
        print("duplicates:", ", ".join(f"{b} x{n}" for b, n in sorted(duplicates.items())))
    record_property("chaos_summary", summary)

    assert lost == [], f"lost messages: {lost}"
    assert foreign == []
    assert set(codes.values()) <= {0}
    for worker in terminated:
        assert worker.event_names()[-1] == "stopped"
