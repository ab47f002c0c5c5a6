"""Settings from environment variables, checked once at start-up."""

from __future__ import annotations

import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass

# Colour name -> the shade the page paints. Any "#rrggbb" value works too.
PALETTE: dict[str, str] = {
    "blue": "#2563eb",
    "green": "#16a34a",
    "yellow": "#eab308",
    "orange": "#ea580c",
    "purple": "#9333ea",
}

_HEX_RE = re.compile(r"^#[0-9a-fA-F]{6}$")


class ConfigError(ValueError):
    """A setting that cannot be used; the message says what to do."""


def parse_error_rate(text: str, source: str) -> float:
    """A percentage 0-100 from ``text``; ``source`` names where it came from for the message."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 100.0:
        raise ConfigError(f"{source} must be a percentage from 0 to 100, got {text!r}")
    return value


@dataclass(frozen=True)
class Settings:
    color: str
    hex: str
    version: str
    error_rate: float = 0.0
    host: str = "0.0.0.0"
    port: int = 8080
    access_log: bool = False
    hostname: str = "localhost"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        color = env.get("COLOR", "blue").strip()
        if color.lower() in PALETTE:
            color = color.lower()
            hex_value = PALETTE[color]
        elif _HEX_RE.match(color):
            hex_value = color.lower()
        else:
            names = ", ".join(PALETTE)
            raise ConfigError(f"COLOR must be one of {names} or #rrggbb, got {color!r}")
        port_text = env.get("PORT", "8080")
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise ConfigError(f"PORT must be a port number from 1 to 65535, got {port_text!r}")
        return cls(
            color=color,
            hex=hex_value,
            version=env.get("APP_VERSION", "").strip() or color,
            error_rate=parse_error_rate(env.get("ERROR_RATE", "0"), "ERROR_RATE"),
            host=env.get("HOST", "0.0.0.0"),
            port=int(port_text),
            access_log=env.get("ACCESS_LOG", "").lower() in {"1", "true", "yes"},
            hostname=socket.gethostname(),
        )
