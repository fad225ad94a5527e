"""Simulate one consumer under one arrival profile: the backlog, the HPA's decisions, and every message's drain time.

Model, one-second steps:
- Arrivals at the profile's rate; each ready replica processes ``throughput`` messages/s (fluid FIFO queue).
- The HPA sees the backlog metric through the pipeline: the exporter is scraped every ``scrape_interval`` and the
  recording rule (``jetstream_backlog``) is evaluated every ``rule_interval`` on the latest scrape; the adapter
  queries that recording at each HPA sync (it does not cache external metrics).
- New replicas become ready ``pod_startup_seconds`` after the HPA scales; scale-down removes not-yet-ready pods
  first (the ReplicaSet controller's deletion order), then ready ones, at once.
- Drain time is publish-to-ack per message (the ``backlog_drain_seconds`` histogram of the metrics contract):
  FIFO, so the messages processed in second t are those that arrived when the cumulative arrivals crossed the
  cumulative processed count. Messages still queued at the end count with their wait so far (a lower bound).
- An HPA that also has a drain P95 target sees the P95 of the drain times of the messages processed in the
  5 minutes before each scrape (``slo_backlog_drain_p95`` is ``histogram_quantile`` over a 5m rate; the model uses
  exact times, not buckets), through the same pipeline; no drains in the window means no data (NaN upstream).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from .hpa import SYNC_PERIOD_SECONDS, HpaController, HpaSpec
from .load import Arrivals


DRAIN_WINDOW_SECONDS = 300  # the [5m] of the slo_backlog_drain_p95 recording


@dataclass(frozen=True)
class ConsumerModel:
    throughput_per_replica: float
    pod_startup_seconds: int
    scrape_interval_seconds: int
    rule_interval_seconds: int
    sync_period_seconds: int = SYNC_PERIOD_SECONDS


@dataclass(frozen=True)
class Slo:
    drain_p95_seconds: float
    drain_cap_seconds: float


@dataclass(frozen=True)
class Trace:
    """Per-second series, for plots."""

    backlog: tuple[float, ...]
    replicas: tuple[int, ...]
    ready: tuple[int, ...]
    arrival_rate: tuple[float, ...]
    drain_seconds: tuple[float | None, ...]
    """Drain time of the messages processed during each second (None when nothing was processed)."""


@dataclass(frozen=True)
class Outcome:
    profile: str
    horizon_seconds: int
    peak_backlog: float
    peak_backlog_at: int
    drain_p95_seconds: float
    drain_max_seconds: float
    first_scale_up_seconds: int | None
    """Seconds from the profile's start to the HPA's first scale-up (None: never scaled up)."""
    peak_replicas: int
    seconds_at_max_replicas: int
    replica_minutes: float
    """Sum over time of existing pods (ready or starting): what the profile costs."""
    undrained_messages: float
    messages: float
    required_replicas: int
    """Replicas the peak arrival rate needs at the configured throughput."""
    overloaded_at_end: bool
    """The load at the end of the horizon exceeds what maxReplicas can process: the backlog grows without bound."""
    slo: Slo
    trace: Trace

    @property
    def violations(self) -> tuple[str, ...]:
        out = []
        if self.drain_p95_seconds >= self.slo.drain_p95_seconds:
            out.append(f"P95 drain {self.drain_p95_seconds:.0f}s is not under the {self.slo.drain_p95_seconds:.0f}s target")
        if self.drain_max_seconds >= self.slo.drain_cap_seconds:
            out.append(f"max drain {self.drain_max_seconds:.0f}s is not under the {self.slo.drain_cap_seconds:.0f}s cap")
        if self.overloaded_at_end:
            out.append("the load at the end outruns maxReplicas, so the backlog and drain times grow without bound")
        return tuple(out)

    @property
    def passed(self) -> bool:
        return not self.violations


def _weighted_percentile(pieces: list[tuple[float, float]], q: float) -> float:
    total = sum(w for _, w in pieces)
    if total <= 0:
        return 0.0
    acc = 0.0
    for wait, weight in sorted(pieces):
        acc += weight
        if acc >= q * total:
            return wait
    return max(wait for wait, _ in pieces)


def _fifo_arrivals(cum_arrived: list[float], ptr: int, start: float, end: float) -> tuple[list[tuple[float, float]], int]:
    """The messages numbered (start, end] as (mean arrival time, count), one chunk per arrival second they span.

    ``cum_arrived[i]`` counts arrivals before second i; ``ptr`` is the first second not yet fully consumed, advanced
    and returned so the whole run stays linear in time.
    """
    chunks = []
    end = min(end, cum_arrived[-1])
    while start < end - 1e-9:
        while ptr + 2 < len(cum_arrived) and cum_arrived[ptr + 1] <= start + 1e-9:
            ptr += 1
        lo, hi = cum_arrived[ptr], cum_arrived[ptr + 1]
        take = min(end, hi) - start
        chunks.append((ptr + (start + take / 2 - lo) / (hi - lo), take))
        start += take
    return chunks, ptr


def simulate(spec: HpaSpec, model: ConsumerModel, arrivals: Arrivals, slo: Slo) -> Outcome:
    ctl = HpaController(spec)
    horizon = arrivals.horizon_seconds
    pods: list[int] = [0] * spec.min_replicas  # ready-at times; the run starts settled at minReplicas
    backlog = 0.0
    cum_arrived = [0.0]
    cum_done = 0.0
    arrival_ptr = 0  # first second whose arrivals are not fully processed
    pieces: list[tuple[float, float]] = []  # (drain seconds, messages)
    trace_backlog: list[float] = []
    trace_replicas: list[int] = []
    trace_ready: list[int] = []
    trace_drain: list[float | None] = []
    scraped = 0.0  # the exporter's value at the latest scrape
    recorded = 0.0  # the recording rule's value at its latest evaluation
    recent: deque[tuple[int, float, float]] = deque()  # (second, drain seconds, messages) of the last 5 minutes
    scraped_drain: float | None = None
    recorded_drain: float | None = None
    first_up: int | None = None
    at_max = 0
    for t in range(horizon):
        if t % model.sync_period_seconds == 0:
            current = len(pods)
            ready_now = sum(1 for r in pods if r <= t)
            desired = ctl.reconcile(float(t), current, recorded, ready=ready_now, drain_p95=recorded_drain)
            if desired > current:
                pods.extend([t + model.pod_startup_seconds] * (desired - current))
                if first_up is None and t >= arrivals.start_seconds:
                    first_up = t - arrivals.start_seconds
            elif desired < current:
                pods.sort()  # latest ready-at last: starting pods go first
                del pods[desired:]
        ready = sum(1 for r in pods if r <= t)
        cum_arrived.append(cum_arrived[-1] + arrivals.rates[t])
        # The backlog is derived from the two counters, never accumulated on its own, so they cannot drift apart.
        done = min(cum_arrived[-1] - cum_done, ready * model.throughput_per_replica)
        # FIFO: the messages numbered (cum_done, cum_done + done] are the oldest ones queued.
        chunks, arrival_ptr = _fifo_arrivals(cum_arrived, arrival_ptr, cum_done, cum_done + done)
        waits = [(max(t + 0.5 - arrived_at, 0.0), count) for arrived_at, count in chunks]
        pieces += waits
        if spec.drain_p95_target is not None:
            recent.extend((t, w, n) for w, n in waits)
        cum_done += done
        backlog = max(cum_arrived[-1] - cum_done, 0.0)
        trace_drain.append(sum(w * n for w, n in waits) / done if done > 0 else None)
        # At the end of the second: a scrape, then a rule evaluation on the latest scrape, seen by the next HPA sync.
        if (t + 1) % model.scrape_interval_seconds == 0:
            scraped = backlog
            if spec.drain_p95_target is not None:
                while recent and recent[0][0] <= t - DRAIN_WINDOW_SECONDS:
                    recent.popleft()
                scraped_drain = _weighted_percentile([(w, n) for _, w, n in recent], 0.95) if recent else None
        if (t + 1) % model.rule_interval_seconds == 0:
            recorded, recorded_drain = scraped, scraped_drain
        trace_backlog.append(backlog)
        trace_replicas.append(len(pods))
        trace_ready.append(ready)
        at_max += len(pods) >= spec.max_replicas
    # Messages still queued: their drain time is at least their wait so far.
    undrained = cum_arrived[-1] - cum_done
    queued, _ = _fifo_arrivals(cum_arrived, arrival_ptr, cum_done, cum_arrived[-1])
    pieces += [(horizon - arrived_at, count) for arrived_at, count in queued]
    peak = max(trace_backlog, default=0.0)
    return Outcome(
        profile=arrivals.name,
        horizon_seconds=horizon,
        peak_backlog=peak,
        peak_backlog_at=trace_backlog.index(peak) if trace_backlog else 0,
        drain_p95_seconds=_weighted_percentile(pieces, 0.95),
        drain_max_seconds=max((w for w, m in pieces if m > 1e-6), default=0.0),
        first_scale_up_seconds=first_up,
        peak_replicas=max(trace_replicas, default=spec.min_replicas),
        seconds_at_max_replicas=at_max,
        replica_minutes=sum(trace_replicas) / 60.0,
        undrained_messages=max(undrained, 0.0),
        messages=cum_arrived[-1],
        required_replicas=math.ceil(arrivals.peak_rate / model.throughput_per_replica),
        overloaded_at_end=bool(arrivals.rates) and arrivals.rates[-1] > spec.max_replicas * model.throughput_per_replica,
        slo=slo,
        trace=Trace(
            backlog=tuple(trace_backlog),
            replicas=tuple(trace_replicas),
            ready=tuple(trace_ready),
            arrival_rate=arrivals.rates,
            drain_seconds=tuple(trace_drain),
        ),
    )
