"""Prometheus-style durations ('90s', '10m', '1h', '3d') <-> seconds."""

from __future__ import annotations

import re

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_PATTERN = re.compile(r"^([0-9]+)([smhd])$")


def parse_duration(text: str) -> int:
    """'10m' -> 600. The schema has already checked the form; this raises ValueError otherwise."""
    match = _PATTERN.match(text)
    if not match:
        raise ValueError(f"not a duration: {text!r}")
    return int(match.group(1)) * _UNITS[match.group(2)]


def format_duration(seconds: int) -> str:
    """600 -> '10m'; picks the largest unit that divides exactly, so output is canonical."""
    if seconds <= 0:
        raise ValueError(f"duration must be positive, got {seconds}")
    for unit in ("d", "h", "m"):
        if seconds % _UNITS[unit] == 0:
            return f"{seconds // _UNITS[unit]}{unit}"
    return f"{seconds}s"
