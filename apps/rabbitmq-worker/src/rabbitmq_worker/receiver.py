"""`receive`: take one message at a time, simulate work, ack afterwards (at-least-once).

- SIGTERM/SIGINT: stop taking messages, finish (and ack) the message in hand — or requeue it
  when more than `shutdown_grace` seconds of work remain — then close and exit 0.
- Connection lost after having been connected: reconnect with capped exponential backoff.
- Broker unreachable at startup: retry until `connect_timeout`, then one error line.
"""

from __future__ import annotations

import contextlib
import random
import signal
import time
from dataclasses import dataclass
from types import FrameType

import pika
import pika.exceptions as pex
from pika.adapters.blocking_connection import BlockingChannel

from rabbitmq_worker.amqp import (
    Broker,
    JsonLog,
    UserError,
    auth_error,
    connect,
    describe,
    interruptible_sleep,
    is_auth_failure,
)

IDLE_POLL_SECONDS = 0.2  # how often an idle consumer looks at the stop flag
WORK_SLICE_SECONDS = 0.1  # work is simulated in slices that keep heartbeats flowing


@dataclass
class ReceiveOptions:
    queue: str = "hello"
    work_seconds: float = 1.0
    prefetch: int = 1
    connect_timeout: float = 15.0
    max_backoff: float = 10.0
    shutdown_grace: float = 20.0


@dataclass
class StopFlag:
    requested: bool = False
    signal_name: str | None = None

    def handler(self, signum: int, _frame: FrameType | None) -> None:
        # Only set flags here: writing logs from a signal handler could re-enter stdout.
        if not self.requested:
            self.requested = True
            self.signal_name = signal.Signals(signum).name

    def __call__(self) -> bool:
        return self.requested


class _Fatal(Exception):
    """Stop the consumer with a user-facing error (not a reconnectable failure)."""


class Receiver:
    def __init__(self, broker: Broker, options: ReceiveOptions, log: JsonLog) -> None:
        self.broker = broker
        self.opt = options
        self.log = log
        self.stop = StopFlag()
        self.processed = 0
        self._stop_logged = False

    def _notice_stop(self, in_hand: str | None = None) -> None:
        if self.stop.requested and not self._stop_logged:
            self._stop_logged = True
            self.log("stopping", signal=self.stop.signal_name, in_hand=in_hand)

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.stop.handler)
        signal.signal(signal.SIGINT, self.stop.handler)

    def run(self) -> int:
        """Consume until stopped. Returns the exit code; raises UserError for fatal problems."""
        self.log(
            "starting",
            queue=self.opt.queue,
            broker=self.broker.display,
            work_seconds=self.opt.work_seconds,
            prefetch=self.opt.prefetch,
        )
        connected_once = False
        failures = 0
        while not self.stop.requested:
            if not connected_once:
                conn = connect(
                    self.broker,
                    self.opt.connect_timeout,
                    should_stop=self.stop,
                    on_retry=lambda n, delay, exc: self.log(
                        "connect_retry", attempt=n, delay_s=round(delay, 3), reason=describe(exc)
                    ),
                )
            else:
                conn = self._reconnect_once(failures)
            if conn is None:
                if connected_once:
                    failures += 1
                continue
            connected_once = True
            failures = 0
            self.log("connected", broker=self.broker.display)
            try:
                self._consume(conn)
            except _Fatal as exc:
                self._close(conn)
                raise UserError(str(exc)) from None
            except (pex.AMQPError, OSError) as exc:
                if is_auth_failure(exc):
                    raise auth_error(self.broker, exc) from None
                self.log("connection_lost", reason=describe(exc))
                self._close(conn)
                failures = 1
                continue
            self._close(conn)
        self._notice_stop()
        self.log("stopped", processed=self.processed, signal=self.stop.signal_name)
        return 0

    def _backoff(self, failures: int) -> float:
        base = min(self.opt.max_backoff, 0.5 * 2 ** max(failures - 1, 0))
        return base * random.uniform(0.8, 1.0)

    def _reconnect_once(self, failures: int) -> pika.BlockingConnection | None:
        delay = self._backoff(failures)
        self.log("reconnecting", attempt=failures, delay_s=round(delay, 3))
        if interruptible_sleep(delay, self.stop):
            return None
        try:
            return pika.BlockingConnection(self.broker.params)
        except (pex.AMQPError, OSError) as exc:
            if is_auth_failure(exc):
                raise auth_error(self.broker, exc) from None
            self.log("reconnect_failed", attempt=failures, reason=describe(exc))
            return None

    @staticmethod
    def _close(conn: pika.BlockingConnection) -> None:
        if conn.is_open:
            with contextlib.suppress(pex.AMQPError, OSError):
                conn.close()

    def _consume(self, conn: pika.BlockingConnection) -> None:
        channel = conn.channel()
        try:
            channel.queue_declare(queue=self.opt.queue, durable=True)
        except pex.ChannelClosedByBroker as exc:
            if exc.reply_code in (403, 406):
                raise _Fatal(
                    f"cannot use queue {self.opt.queue!r} on {self.broker.display}: "
                    f"{exc.reply_text} — check --queue and the user's permissions"
                ) from None
            raise
        channel.basic_qos(prefetch_count=self.opt.prefetch)
        stream = channel.consume(self.opt.queue, inactivity_timeout=IDLE_POLL_SECONDS)
        for method, properties, body in stream:
            if self.stop.requested:
                self._notice_stop()
                if method is not None:
                    self._requeue(channel, method, body, reason="stopping")
                break
            if method is None:
                continue
            self._handle(conn, channel, method, properties, body)
            if self.stop.requested:
                break
        requeued = channel.cancel()
        if requeued:
            self.log("requeued_prefetched", count=requeued)

    def _handle(
        self,
        conn: pika.BlockingConnection,
        channel: BlockingChannel,
        method: pika.spec.Basic.Deliver,
        properties: pika.BasicProperties,
        body: bytes,
    ) -> None:
        text = body.decode("utf-8", errors="replace")
        started = time.monotonic()
        end = started + self.opt.work_seconds
        while True:
            remaining = end - time.monotonic()
            if remaining <= 0:
                break
            self._notice_stop(in_hand=text)
            if self.stop.requested and remaining > self.opt.shutdown_grace:
                self._requeue(channel, method, body, reason="work would outlast shutdown grace")
                return
            # conn.sleep services heartbeats and I/O while we "work"
            conn.sleep(min(remaining, WORK_SLICE_SECONDS))
        channel.basic_ack(delivery_tag=method.delivery_tag)
        self.processed += 1
        self.log(
            "done",
            body=text,
            queue=self.opt.queue,
            delivery_tag=method.delivery_tag,
            redelivered=bool(method.redelivered),
            message_id=properties.message_id,
            work_s=round(time.monotonic() - started, 4),
        )

    def _requeue(
        self,
        channel: BlockingChannel,
        method: pika.spec.Basic.Deliver,
        body: bytes,
        reason: str,
    ) -> None:
        channel.basic_reject(delivery_tag=method.delivery_tag, requeue=True)
        self.log(
            "requeued",
            body=body.decode("utf-8", errors="replace"),
            delivery_tag=method.delivery_tag,
            reason=reason,
        )
