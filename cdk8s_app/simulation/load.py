"""Arrival profiles: messages per second, second by second, from the environment's loadProfiles or a recorded file."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from ..config import LoadProfile
from ..errors import UserError


@dataclass(frozen=True)
class Arrivals:
    name: str
    rates: tuple[float, ...]
    """Messages per second during second i; the simulation lasts len(rates) seconds."""
    start_seconds: int
    """When the load departs from its base rate (time to first scale-up is measured from here)."""

    @property
    def horizon_seconds(self) -> int:
        return len(self.rates)

    @property
    def peak_rate(self) -> float:
        return max(self.rates, default=0.0)


def from_profile(p: LoadProfile) -> Arrivals:
    """steady: baseRate throughout. step: peakRate for durationSeconds from startSeconds. ramp: linear from baseRate
    to peakRate over durationSeconds from startSeconds, then peakRate. spikes: peakRate for durationSeconds every
    periodSeconds from startSeconds. baseRate elsewhere."""
    rates = []
    for t in range(p.horizon_seconds):
        since = t - p.start_seconds
        if p.kind == "steady" or since < 0:
            rate = p.base_rate
        elif p.kind == "step":
            rate = p.peak_rate if since < p.duration_seconds else p.base_rate
        elif p.kind == "ramp":
            rate = p.base_rate + (p.peak_rate - p.base_rate) * min(since / p.duration_seconds, 1.0)
        else:  # spikes
            rate = p.peak_rate if since % p.period_seconds < p.duration_seconds else p.base_rate
        rates.append(float(rate))
    return Arrivals(name=p.name, rates=tuple(rates), start_seconds=0 if p.kind == "steady" else p.start_seconds)


def load_recorded(path: Path) -> Arrivals:
    """A recorded series: CSV with a header ``seconds,rate`` or JSON ``[{"seconds": 0, "rate": 12.5}, ...]``.

    Piecewise constant: each rate holds until the next row's time; the last row's time ends the simulation.
    """
    try:
        text = path.read_text()
    except OSError as exc:
        raise UserError(f"{path}: cannot read the load profile ({exc.strerror}); pass an existing CSV or JSON file") from None
    try:
        if path.suffix == ".json":
            rows = [(float(r["seconds"]), float(r["rate"])) for r in json.loads(text)]
        else:
            reader = csv.DictReader(text.splitlines())
            if reader.fieldnames is None or not {"seconds", "rate"} <= set(reader.fieldnames):
                raise UserError(f"{path}: line 1: the header must name the columns seconds,rate")
            rows = [(float(r["seconds"]), float(r["rate"])) for r in reader]
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(
            f"{path}: not a load series ({exc.__class__.__name__}: {exc}); use CSV 'seconds,rate' rows or JSON "
            '[{"seconds": 0, "rate": 10}, ...] with numbers'
        ) from None
    if len(rows) < 2:
        raise UserError(f"{path}: a load series needs at least two rows (the last one marks the end)")
    for i, ((t0, r0), (t1, _)) in enumerate(zip(rows, rows[1:], strict=False), start=2):
        if t1 <= t0 or r0 < 0:
            raise UserError(f"{path}: row {i}: times must increase and rates be >= 0; sort the rows by seconds")
    if rows[0][0] != 0:
        raise UserError(f"{path}: row 1: the series must start at seconds 0")
    rates: list[float] = []
    for (t0, rate), (t1, _) in zip(rows, rows[1:], strict=False):
        rates.extend([rate] * (int(t1) - int(t0)))
    base = rows[0][1]
    start = next((int(t) for t, r in rows if r != base), 0)
    return Arrivals(name=path.stem, rates=tuple(rates), start_seconds=start)
