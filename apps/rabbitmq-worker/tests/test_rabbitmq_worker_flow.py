"""send/receive against a real private RabbitMQ node: delivery, SIGTERM, broker restart."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from typing import Any


def test_plain_run_processes_each_message_exactly_once(
    rabbitmq_broker: Any, rabbitmq_workers: Any, rabbitmq_helpers: Any
) -> None:
    h = rabbitmq_helpers
    workers = rabbitmq_workers.start(2, work_seconds=0.02)
    rabbitmq_workers.wait_consumers(2)
    expected = h.send_messages(rabbitmq_broker.url, rabbitmq_workers.queue, 50, "plain")

    h.wait_until(
        lambda: set(rabbitmq_workers.done_bodies()) >= set(expected), 60, "50 messages done"
    )
    h.wait_until(
        lambda: h.queue_state(rabbitmq_broker.url, rabbitmq_workers.queue)[0] == 0,
        10,
        "an empty queue",
    )
    codes = rabbitmq_workers.stop_all()

    counts = rabbitmq_workers.done_counts()
    assert sorted(counts) == sorted(expected)
    assert {body: n for body, n in counts.items() if n != 1} == {}
    assert codes == {"w1": 0, "w2": 0}
    for worker in workers:
        done = [e for e in worker.events() if e["event"] == "done"]
        assert done, f"{worker.name} processed nothing: both consumers should share the work"
        first = done[0]
        assert {"ts", "pid", "host", "delivery_tag", "redelivered", "body"} <= set(first)
        assert first["redelivered"] is False
        assert worker.event_names()[-1] == "stopped"
        assert worker.stderr() == ""


def test_sigterm_finishes_and_acks_the_message_in_hand(
    rabbitmq_broker: Any, rabbitmq_workers: Any, rabbitmq_helpers: Any
) -> None:
    h = rabbitmq_helpers
    url, queue = rabbitmq_broker.url, rabbitmq_workers.queue
    (worker,) = rabbitmq_workers.start(1, work_seconds=1.5)
    rabbitmq_workers.wait_consumers(1)
    expected = h.send_messages(url, queue, 2, "term")
    # prefetch 1: one message in hand (unacked), the other still ready in the queue
    h.wait_until(lambda: h.queue_state(url, queue)[0] == 1, 10, "one message taken")
    assert "done" not in worker.event_names()

    sent_at = time.monotonic()
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=10) == 0
    elapsed = time.monotonic() - sent_at

    names = worker.event_names()
    done = [e["body"] for e in worker.events() if e["event"] == "done"]
    assert done == [expected[0]], names
    assert names.index("stopping") < names.index("done") < names.index("stopped")
    assert elapsed < 5, f"took {elapsed:.1f}s to stop"
    assert h.queue_state(url, queue) == (1, 0)  # the other message waits for the next consumer


def test_sigterm_requeues_long_work_and_it_is_redelivered(
    rabbitmq_broker: Any, rabbitmq_workers: Any, rabbitmq_helpers: Any
) -> None:
    h = rabbitmq_helpers
    url, queue = rabbitmq_broker.url, rabbitmq_workers.queue
    (slow,) = rabbitmq_workers.start(1, "--shutdown-grace", "0.5", work_seconds=60)
    rabbitmq_workers.wait_consumers(1)
    (body,) = h.send_messages(url, queue, 1, "long")
    h.wait_until(lambda: h.queue_state(url, queue)[0] == 0, 10, "the message taken")

    slow.signal(signal.SIGTERM)
    assert slow.wait(timeout=10) == 0
    requeued = [e for e in slow.events() if e["event"] == "requeued"]
    assert [e["body"] for e in requeued] == [body]
    assert h.queue_state(url, queue) == (1, 0)

    (quick,) = rabbitmq_workers.start(1, work_seconds=0)
    events = h.wait_until(
        lambda: [e for e in quick.events() if e["event"] == "done"], 15, "the redelivery"
    )
    assert events[0]["body"] == body
    assert events[0]["redelivered"] is True


def test_consumers_reconnect_after_broker_restart(
    rabbitmq_broker: Any, rabbitmq_workers: Any, rabbitmq_helpers: Any
) -> None:
    h = rabbitmq_helpers
    url, queue = rabbitmq_broker.url, rabbitmq_workers.queue
    expected = h.send_messages(url, queue, 60, "restart")
    workers = rabbitmq_workers.start(2, work_seconds=0.1)
    h.wait_until(lambda: len(rabbitmq_workers.done_bodies()) >= 10, 30, "10 messages done")

    # a publisher that is mid-way when the broker goes away reports what was not confirmed
    flood_queue = f"{queue}-flood"
    flood = subprocess.Popen(
        [sys.executable, "-m", "rabbitmq_worker", "send", url, "1000000", "--queue", flood_queue],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        h.wait_until(
            lambda: h.queue_state(url, flood_queue, missing_ok=True)[0] >= 20,
            30,
            "the flood publisher to get going",
        )
        rabbitmq_broker.stop()
        flood_out, flood_err = flood.communicate(timeout=30)
        h.wait_until(
            lambda: all("connection_lost" in w.event_names() for w in workers),
            15,
            "both consumers to notice the lost connection",
        )
        # while the broker is down, a publisher fails with one clear line
        down = h.run_cli("send", url, "5", "--queue", queue, "--connect-timeout", "0.5")
        assert all(w.running for w in workers), "consumers must keep retrying, not exit"
    finally:
        if flood.poll() is None:
            flood.kill()
            flood.wait()
        rabbitmq_broker.start()  # no-op if running; keeps the session broker usable

    assert flood.returncode == 1
    assert flood_err.count("\n") == 1 and "messages were not confirmed" in flood_err, flood_err
    assert "Traceback" not in flood_err
    confirmed = json.loads(flood_out.strip().splitlines()[-1])["confirmed"]
    assert 20 <= confirmed < 1_000_000
    assert f"{1_000_000 - confirmed} of 1000000 messages were not confirmed" in flood_err
    # every confirmed (persistent, durable-queue) message survived the restart
    assert h.queue_state(url, flood_queue)[0] >= confirmed

    assert down.returncode == 1
    assert down.stderr.count("\n") == 1 and "5 of 5 messages were not confirmed" in down.stderr
    assert "connection refused" in down.stderr and "Traceback" not in down.stderr

    h.wait_until(
        lambda: set(rabbitmq_workers.done_bodies()) >= set(expected), 90, "all 60 messages done"
    )
    codes = rabbitmq_workers.stop_all()
    assert set(codes.values()) == {0}
    assert set(rabbitmq_workers.done_bodies()) == set(expected)  # none lost, nothing foreign
    for worker in workers:
        names = worker.event_names()
        assert names.count("connected") >= 2, names
        assert "reconnecting" in names
        assert worker.stderr() == ""
