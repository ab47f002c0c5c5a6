"""Parse and print byte sizes such as ``150M`` or ``1.5G``."""

from __future__ import annotations

import re

# Binary multiples, like the classic `stress` and `dd` tools: 1M = 1024 * 1024 bytes.
# The Kubernetes spellings (Ki, Mi, Gi, Ti) are accepted too and mean the same.
_UNITS: dict[str, int] = {
    "": 1,
    "K": 1024,
    "M": 1024**2,
    "G": 1024**3,
    "T": 1024**4,
}

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(?:([KMGT])(?:IB|I|B)?|B)?\s*$", re.IGNORECASE)

SIZE_HELP = "a number of bytes with an optional K, M, G or T suffix (1M = 1024*1024), e.g. 150M"


class SizeError(ValueError):
    """Raised for a size string that cannot be understood."""


def parse_size(text: str) -> int:
    """Return the number of bytes that ``text`` (``150M``, ``1.5G``, ``512K``, ``4096``) means."""
    match = _SIZE_RE.match(text)
    if match is None:
        raise SizeError(f"invalid size {text!r}: use {SIZE_HELP}")
    number, unit = match.groups()
    value = int(float(number) * _UNITS[(unit or "").upper()])
    if value <= 0:
        raise SizeError(f"invalid size {text!r}: it must be more than 0 bytes")
    return value


def format_size(n_bytes: int) -> str:
    """Human form with binary units, e.g. ``150.0MiB``."""
    value = float(n_bytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f}{unit}" if unit == "B" else f"{value:.1f}{unit}"
        value /= 1024
    raise AssertionError("unreachable")
