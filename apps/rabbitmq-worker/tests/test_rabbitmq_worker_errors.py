"""User-facing errors: one line on stderr, non-zero exit, no traceback, no password."""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _assert_one_error_line(result: Any, *needles: str) -> None:
    assert result.returncode != 0
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert "Traceback" not in result.stderr + result.stdout


def test_send_to_a_closed_port_reports_unsent_messages(rabbitmq_helpers: Any) -> None:
    url = f"amqp://kube:s3cret-pw@127.0.0.1:{_closed_port()}/%2F"
    result = rabbitmq_helpers.run_cli("send", url, "7", "--connect-timeout", "0.3")
    assert result.returncode == 1
    _assert_one_error_line(
        result, "7 of 7 messages were not confirmed", "connection refused", "kube:****@"
    )
    assert "s3cret-pw" not in result.stderr + result.stdout


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("http://127.0.0.1:5672/", "bad broker URL"),
        ("amqp://127.0.0.1:70000/", "Port out of range"),
        ("amqp:///%2F", "bad broker URL"),
    ],
)
def test_bad_url_is_one_line(rabbitmq_helpers: Any, url: str, needle: str) -> None:
    for command in (["send", url, "3"], ["receive", url]):
        result = rabbitmq_helpers.run_cli(*command)
        _assert_one_error_line(result, needle)


def test_missing_url_names_the_env_variable(rabbitmq_helpers: Any) -> None:
    env = {"RABBITMQ_URL": "", "AMQP_URL": ""}
    result = rabbitmq_helpers.run_cli("send", "3", env=env)
    _assert_one_error_line(result, "RABBITMQ_URL")


def test_bad_count_is_one_line(rabbitmq_helpers: Any) -> None:
    result = rabbitmq_helpers.run_cli("send", "amqp://127.0.0.1/", "many")
    assert result.returncode == 2
    _assert_one_error_line(result, "'many' is not a whole number")


def test_url_from_env_and_refused_password(rabbitmq_broker: Any, rabbitmq_helpers: Any) -> None:
    bad = f"amqp://guest:not-the-password@127.0.0.1:{rabbitmq_broker.port}/%2F"
    for command in (["send", "2"], ["receive"]):
        result = rabbitmq_helpers.run_cli(*command, env={"RABBITMQ_URL": bad})
        _assert_one_error_line(result, "password was refused", "guest:****@")
        assert "not-the-password" not in result.stderr + result.stdout


def test_receive_gives_up_on_unreachable_broker_at_startup(rabbitmq_helpers: Any) -> None:
    url = f"amqp://guest:guest@127.0.0.1:{_closed_port()}/%2F"
    started = time.monotonic()
    result = rabbitmq_helpers.run_cli("receive", url, "--connect-timeout", "1", timeout=30)
    elapsed = time.monotonic() - started
    _assert_one_error_line(result, "cannot connect", "is the broker running?")
    assert result.returncode == 1
    assert elapsed < 15
