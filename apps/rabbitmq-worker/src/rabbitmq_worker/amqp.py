"""Broker URL handling, connection and error wording shared by `send` and `receive`."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO
from urllib.parse import urlsplit

import pika
import pika.exceptions as pex

URL_ENV_VARS = ("RABBITMQ_URL", "AMQP_URL")

# pika logs connection failures itself; our messages replace them (one line, no traceback).
logging.getLogger("pika").addHandler(logging.NullHandler())
logging.getLogger("pika").propagate = False


class UserError(Exception):
    """A problem the user must fix; shown as one `error: ...` line."""


class AuthRefused(UserError):
    """The broker refused the credentials or the virtual host."""


@dataclass(frozen=True)
class Broker:
    """A parsed broker URL: connection parameters plus a password-free form for messages."""

    url: str
    display: str
    params: pika.URLParameters


def mask_url(url: str) -> str:
    """The URL with its password replaced by ****, safe to print."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if parts.password is None:
        return url
    userinfo = f"{parts.username or ''}:****"
    host = parts.netloc.rsplit("@", 1)[-1]
    return parts._replace(netloc=f"{userinfo}@{host}").geturl()


def resolve_url(cli_url: str | None) -> str:
    """The positional URL wins; otherwise RABBITMQ_URL, then AMQP_URL."""
    if cli_url:
        return cli_url
    for name in URL_ENV_VARS:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    raise UserError(
        "no broker URL — pass AMQP_URL (e.g. amqp://user:pass@rabbitmq:5672/%2F) "
        "or set RABBITMQ_URL"
    )


def parse_broker(url: str, socket_timeout: float = 5.0) -> Broker:
    display = mask_url(url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UserError(
            f"bad broker URL {display!r}: {exc} — expected amqp://user:pass@host:5672/vhost"
        ) from None
    if parts.scheme not in ("amqp", "amqps") or not parts.hostname:
        raise UserError(
            f"bad broker URL {display!r} — expected amqp://user:pass@host:5672/vhost "
            "(scheme amqp or amqps, with a host)"
        )
    if port == 0:
        raise UserError(f"bad broker URL {display!r}: port 0 — use the broker's port (5672)")
    try:
        params = pika.URLParameters(url)
    except (ValueError, TypeError, KeyError) as exc:
        raise UserError(f"bad broker URL {display!r}: {exc}") from None
    params.connection_attempts = 1  # our own loops retry, with messages
    params.retry_delay = 0
    params.socket_timeout = socket_timeout
    params.stack_timeout = socket_timeout * 2
    params.blocked_connection_timeout = 60
    return Broker(url=url, display=display, params=params)


def describe(exc: BaseException) -> str:
    """Short, human wording of a pika / socket failure."""
    text = f"{type(exc).__name__} {exc!r} {exc}".lower()
    if isinstance(exc, pex.AuthenticationError) or (
        isinstance(exc, pex.ProbableAuthenticationError) and is_auth_failure(exc)
    ):
        return "the user name or password was refused"
    if isinstance(exc, pex.ProbableAccessDeniedError) and is_auth_failure(exc):
        if "not found" in text:
            return "the virtual host does not exist"
        return "access to the virtual host was refused"
    if "access_refused" in text:
        return "access refused"
    if isinstance(exc, pex.ConnectionClosedByBroker):
        return f"the broker closed the connection ({exc.reply_code} {exc.reply_text})"
    if isinstance(exc, pex.ChannelClosedByBroker):
        return f"the broker closed the channel ({exc.reply_code} {exc.reply_text})"
    if isinstance(exc, pex.StreamLostError):
        return "the connection was lost"
    if isinstance(exc, pex.AMQPHeartbeatTimeout):
        return "the broker stopped answering heartbeats"
    if "refused" in text:
        return "connection refused"
    if "timed out" in text or "timeout" in text:
        return "timed out"
    if "name or service not known" in text or "gaierror" in text or "nodename" in text:
        return "the host name does not resolve"
    if isinstance(exc, pex.IncompatibleProtocolError):
        return "the port does not speak AMQP 0-9-1"
    detail = str(exc).strip() or type(exc).__name__
    return detail.splitlines()[0][:200]


def is_auth_failure(exc: BaseException) -> bool:
    """True only when the broker said so (403/530); pika's "probable" errors also cover a
    connection dropped during the handshake, e.g. by a broker that is shutting down."""
    if isinstance(exc, pex.AuthenticationError):
        return True
    if isinstance(exc, pex.ConnectionClosedByBroker):
        return exc.reply_code in (403, 530)
    if isinstance(exc, pex.ProbableAuthenticationError | pex.ProbableAccessDeniedError):
        text = str(exc).lower()
        return "access_refused" in text or "not_allowed" in text or "(403)" in text
    return False


def auth_error(broker: Broker, exc: BaseException) -> AuthRefused:
    return AuthRefused(
        f"broker at {broker.display} refused the login: {describe(exc)} — check the user, "
        "password and virtual host in the URL (or in RABBITMQ_URL)"
    )


def connect(
    broker: Broker,
    timeout: float,
    should_stop: Callable[[], bool] = lambda: False,
    on_retry: Callable[[int, float, BaseException], None] | None = None,
) -> pika.BlockingConnection | None:
    """Connect, retrying refused/unreachable brokers until `timeout` seconds have passed.

    Returns None if `should_stop()` became true while waiting. Raises AuthRefused at once on
    refused credentials and UserError once the time is up.
    """
    deadline = time.monotonic() + max(timeout, 0.0)
    attempt = 0
    while True:
        attempt += 1
        try:
            return pika.BlockingConnection(broker.params)
        except (pex.AMQPError, OSError) as exc:
            if is_auth_failure(exc):
                raise auth_error(broker, exc) from None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                hint = " — is the broker running?" if "refused" in describe(exc) else ""
                raise UserError(
                    f"cannot connect to {broker.display}: {describe(exc)}{hint} "
                    f"(gave up after {timeout:g}s, {attempt} attempt(s))"
                ) from None
            delay = min(0.25 * 2 ** min(attempt - 1, 5), 2.0, remaining)
            if on_retry is not None:
                on_retry(attempt, delay, exc)
            if interruptible_sleep(delay, should_stop):
                return None


def interruptible_sleep(seconds: float, should_stop: Callable[[], bool]) -> bool:
    """Sleep up to `seconds`; return True early if `should_stop()` turns true."""
    end = time.monotonic() + seconds
    while True:
        if should_stop():
            return True
        remaining = end - time.monotonic()
        if remaining <= 0:
            return False
        time.sleep(min(remaining, 0.1))


class JsonLog:
    """One JSON object per line, with timestamp, pid and hostname."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self.pid = os.getpid()
        self.host = socket.gethostname()

    def __call__(self, event: str, **fields: Any) -> None:
        record = {
            "ts": dt.datetime.now(dt.UTC).isoformat(timespec="microseconds"),
            "event": event,
            "pid": self.pid,
            "host": self.host,
            **fields,
        }
        self.stream.write(json.dumps(record, separators=(",", ":")) + "\n")
        self.stream.flush()
