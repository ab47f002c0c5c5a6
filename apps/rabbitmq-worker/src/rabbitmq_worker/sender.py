"""`send`: publish COUNT persistent messages to a durable queue with publisher confirms."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

import pika
import pika.exceptions as pex

from rabbitmq_worker.amqp import (
    AuthRefused,
    Broker,
    JsonLog,
    UserError,
    connect,
    describe,
    is_auth_failure,
)


@dataclass
class SendResult:
    count: int
    confirmed: int
    failure: str | None  # why the rest were not confirmed, if any

    @property
    def not_confirmed(self) -> int:
        return self.count - self.confirmed


def message_body(run_id: str, seq: int) -> str:
    return f"{run_id}-{seq}"


def send(
    broker: Broker,
    queue: str,
    count: int,
    run_id: str,
    connect_timeout: float,
    log: JsonLog,
) -> SendResult:
    """Publish messages `<run_id>-1` .. `<run_id>-<count>`; each waits for its confirm."""
    try:
        conn = connect(
            broker,
            connect_timeout,
            on_retry=lambda n, delay, exc: log(
                "connect_retry", attempt=n, delay_s=round(delay, 3), reason=describe(exc)
            ),
        )
    except AuthRefused:
        raise
    except UserError as exc:
        raise UserError(f"{exc}; {count} of {count} messages were not confirmed") from None
    assert conn is not None  # no stop condition given, so connect() returns or raises
    confirmed = 0
    failure: str | None = None
    started = time.monotonic()
    try:
        channel = conn.channel()
        channel.queue_declare(queue=queue, durable=True)
        channel.confirm_delivery()
        for seq in range(1, count + 1):
            body = message_body(run_id, seq)
            props = pika.BasicProperties(
                delivery_mode=pika.DeliveryMode.Persistent,
                content_type="text/plain",
                message_id=body,
            )
            try:
                channel.basic_publish(
                    exchange="", routing_key=queue, body=body, properties=props, mandatory=True
                )
            except (pex.NackError, pex.UnroutableError) as exc:
                failure = f"the broker did not accept message {body} ({type(exc).__name__})"
                continue
            confirmed += 1
    except pex.ChannelClosedByBroker as exc:
        if exc.reply_code == 406:
            raise UserError(
                f"queue {queue!r} exists with other settings ({exc.reply_text}) — delete it or "
                "use another --queue"
            ) from None
        failure = describe(exc)
    except (pex.AMQPError, OSError) as exc:
        if is_auth_failure(exc):
            raise
        failure = describe(exc)
    finally:
        if conn.is_open:
            with contextlib.suppress(pex.AMQPError, OSError):
                conn.close()
    log(
        "sent",
        queue=queue,
        run_id=run_id,
        count=count,
        confirmed=confirmed,
        not_confirmed=count - confirmed,
        seconds=round(time.monotonic() - started, 3),
    )
    return SendResult(count=count, confirmed=confirmed, failure=failure)
