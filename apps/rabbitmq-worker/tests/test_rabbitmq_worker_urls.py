"""URL resolution and masking (no broker needed)."""

from __future__ import annotations

import pytest
from rabbitmq_worker.amqp import UserError, mask_url, parse_broker, resolve_url


def test_positional_url_overrides_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RABBITMQ_URL", "amqp://from-rabbitmq-url")
    monkeypatch.setenv("AMQP_URL", "amqp://from-amqp-url")
    assert resolve_url("amqp://cli") == "amqp://cli"
    assert resolve_url(None) == "amqp://from-rabbitmq-url"
    monkeypatch.setenv("RABBITMQ_URL", "  ")
    assert resolve_url(None) == "amqp://from-amqp-url"
    monkeypatch.delenv("AMQP_URL")
    with pytest.raises(UserError, match="set RABBITMQ_URL"):
        resolve_url(None)


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("amqp://admin:hunter2@rabbitmq:5672/%2F", "amqp://admin:****@rabbitmq:5672/%2F"),
        ("amqps://u:p%40ss@h/vh?heartbeat=30", "amqps://u:****@h/vh?heartbeat=30"),
        ("amqp://rabbitmq:5672/", "amqp://rabbitmq:5672/"),
        ("amqp://:only-pass@h/", "amqp://:****@h/"),
    ],
)
def test_mask_url_hides_the_password(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_parse_broker_keeps_the_password_out_of_errors() -> None:
    with pytest.raises(UserError) as info:
        parse_broker("amqp://u:topsecret@h:notaport/")
    assert "topsecret" not in str(info.value)
    assert "u:****@h:notaport" in str(info.value)
