"""A model of the Kubernetes HPA v2 controller, for one External metric with an AverageValue target.

Follows kubernetes/kubernetes pkg/controller/podautoscaler (v1.31/1.32):
- replica_calculator.go ``GetExternalPerPodMetricReplicas`` (AverageValue): usage is the sum of the metric's
  series; ``ratio = usage / (target * currentReplicas)``; when ``|1 - ratio| > tolerance`` (0.1,
  kube-controller-manager ``--horizontal-pod-autoscaler-tolerance``) the proposal is ``ceil(usage / target)``,
  otherwise current. ``GetExternalMetricReplicas`` (Value): ``ratio = usage / target``; outside the tolerance the
  proposal is ``ceil(ratio * readyPods)``. ``computeReplicasForMetrics`` takes the largest proposal; a metric
  without data is skipped while another one has data.
- horizontal.go ``reconcileAutoscaler``: current above max (below min) goes straight to max (min); otherwise
  ``normalizeDesiredReplicasWithBehaviors``: ``stabilizeRecommendationWithBehaviors`` (every unclamped proposal is
  recorded; the result is current raised to the minimum proposal inside the scale-up window and lowered to the
  maximum proposal inside the scale-down window) then ``convertDesiredReplicasWithBehaviorRate`` (policy limits from
  the replicas at the start of each policy's period, ``periodStart = current - addedInPeriod + removedInPeriod``;
  Pods ``±value``, Percent up ``ceil(start * (1 + v/100))``, Percent down ``int(start * (1 - v/100))``;
  selectPolicy Max takes the largest change, Min the smallest, Disabled none; then min/maxReplicas).
- Scale events and recommendations count when their timestamp is strictly after ``now - period``.
The controller runs every sync period (``--horizontal-pod-autoscaler-sync-period``, 15 s).
Documentation: https://kubernetes.io/docs/tasks/run-application/horizontal-pod-autoscale/ (algorithm details,
scaling policies, stabilization window, default behavior).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

PolicyType = Literal["Pods", "Percent"]
SelectPolicy = Literal["Max", "Min", "Disabled"]

SYNC_PERIOD_SECONDS = 15
TOLERANCE = 0.1


@dataclass(frozen=True)
class Policy:
    type: PolicyType
    value: int
    period_seconds: int


@dataclass(frozen=True)
class Rules:
    """One direction of ``spec.behavior``."""

    stabilization_window_seconds: int
    select_policy: SelectPolicy
    policies: tuple[Policy, ...]


# Kubernetes' defaults when behavior (or one direction of it) is omitted.
DEFAULT_SCALE_UP = Rules(0, "Max", (Policy("Pods", 4, 15), Policy("Percent", 100, 15)))
DEFAULT_SCALE_DOWN = Rules(300, "Max", (Policy("Percent", 100, 15),))


@dataclass(frozen=True)
class HpaSpec:
    name: str
    min_replicas: int
    max_replicas: int
    target_average_value: float
    """AverageValue target of the backlog metric."""
    drain_p95_target: float | None = None
    """Value target of the drain P95 metric, when the HPA has one."""
    scale_up: Rules = DEFAULT_SCALE_UP
    scale_down: Rules = DEFAULT_SCALE_DOWN

    @classmethod
    def from_manifest(cls, doc: dict[str, Any], metric: str, drain_metric: str | None = None) -> HpaSpec:
        """The spec of a rendered autoscaling/v2 HPA, scaling on the External AverageValue ``metric`` (and the
        External Value ``drain_metric``, when present)."""
        spec = doc["spec"]
        drain = [
            m["external"]["target"]["value"]
            for m in spec["metrics"]
            if drain_metric and m.get("type") == "External" and m["external"]["metric"]["name"] == drain_metric
            and m["external"]["target"]["type"] == "Value"
        ]  # fmt: skip
        target = next(
            m["external"]["target"]
            for m in spec["metrics"]
            if m.get("type") == "External" and m["external"]["metric"]["name"] == metric and m["external"]["target"]["type"] == "AverageValue"
        )
        behavior = spec.get("behavior") or {}
        return cls(
            name=doc["metadata"]["name"],
            min_replicas=int(spec.get("minReplicas", 1)),
            max_replicas=int(spec["maxReplicas"]),
            target_average_value=float(target["averageValue"]),
            drain_p95_target=float(drain[0]) if drain else None,
            scale_up=_rules(behavior.get("scaleUp"), DEFAULT_SCALE_UP),
            scale_down=_rules(behavior.get("scaleDown"), DEFAULT_SCALE_DOWN),
        )


def _rules(raw: dict[str, Any] | None, default: Rules) -> Rules:
    if not raw:
        return default
    return Rules(
        stabilization_window_seconds=int(raw.get("stabilizationWindowSeconds", default.stabilization_window_seconds)),
        select_policy=raw.get("selectPolicy", "Max"),
        policies=tuple(Policy(p["type"], int(p["value"]), int(p["periodSeconds"])) for p in raw.get("policies", [])) or default.policies,
    )


def proposal(current: int, usage: float, target: float, tolerance: float = TOLERANCE) -> int:
    """Replicas an AverageValue metric asks for (before behavior and bounds)."""
    ratio = usage / (target * current)
    if abs(1.0 - ratio) > tolerance:
        return math.ceil(usage / target)
    return current


def value_proposal(current: int, ready: int, usage: float, target: float, tolerance: float = TOLERANCE) -> int:
    """Replicas a Value metric asks for: scaled from the ready pods."""
    ratio = usage / target
    if abs(1.0 - ratio) <= tolerance:
        return current
    return math.ceil(ratio * ready)


@dataclass
class HpaController:
    """State the controller keeps per HPA: recommendations and scale events, with their times."""

    spec: HpaSpec
    tolerance: float = TOLERANCE
    recommendations: list[tuple[float, int]] = field(default_factory=list)
    up_events: list[tuple[float, int]] = field(default_factory=list)
    down_events: list[tuple[float, int]] = field(default_factory=list)

    def reconcile(self, now: float, current: int, usage: float, *, ready: int | None = None, drain_p95: float | None = None) -> int:
        """One sync: the replica count the controller sets (``current`` when it does not rescale).

        ``usage`` is the backlog metric; ``drain_p95`` the drain metric (None: no data), used when the spec has a
        drain target, with ``ready`` pods (default: all current pods).
        """
        s = self.spec
        if current == 0:
            return 0  # scaling is disabled while the target is scaled to zero
        if current > s.max_replicas:
            desired = s.max_replicas
        elif current < s.min_replicas:
            desired = s.min_replicas
        else:
            proposed = proposal(current, usage, s.target_average_value, self.tolerance)
            if s.drain_p95_target is not None and drain_p95 is not None:
                ready_pods = current if ready is None else ready
                proposed = max(proposed, value_proposal(current, ready_pods, drain_p95, s.drain_p95_target, self.tolerance))
            desired = self._normalize(now, current, proposed)
        if desired > current:
            self.up_events.append((now, desired - current))
        elif desired < current:
            self.down_events.append((now, current - desired))
        return desired

    def _normalize(self, now: float, current: int, proposed: int) -> int:
        stabilized = self._stabilize(now, current, proposed)
        return self._limit(now, current, stabilized)

    def _stabilize(self, now: float, current: int, proposed: int) -> int:
        up_cutoff = now - self.spec.scale_up.stabilization_window_seconds
        down_cutoff = now - self.spec.scale_down.stabilization_window_seconds
        up, down = proposed, proposed
        for at, rec in self.recommendations:
            if at > up_cutoff:
                up = min(up, rec)
            if at > down_cutoff:
                down = max(down, rec)
        # Samples outside both windows can never matter again; the controller overwrites them.
        self.recommendations = [(at, rec) for at, rec in self.recommendations if at > min(up_cutoff, down_cutoff)]
        self.recommendations.append((now, proposed))
        return min(max(current, up), down)

    def _change_in_period(self, events: list[tuple[float, int]], now: float, period: int) -> int:
        return sum(change for at, change in events if at > now - period)

    def _period_start(self, now: float, current: int, policy: Policy) -> int:
        return current - self._change_in_period(self.up_events, now, policy.period_seconds) + self._change_in_period(
            self.down_events, now, policy.period_seconds
        )

    def _limit(self, now: float, current: int, desired: int) -> int:
        s = self.spec
        if desired > current:
            limit = self._policy_limit(now, current, s.scale_up, up=True)
            return min(desired, s.max_replicas, max(limit, current))
        if desired < current:
            limit = min(self._policy_limit(now, current, s.scale_down, up=False), current)
            return max(desired, max(s.min_replicas, limit))
        return desired

    def _policy_limit(self, now: float, current: int, rules: Rules, up: bool) -> int:
        """The furthest the policies allow from ``current`` in one direction (current when Disabled)."""
        if rules.select_policy == "Disabled":
            return current
        proposals = []
        for p in rules.policies:
            start = self._period_start(now, current, p)
            if p.type == "Pods":
                proposals.append(start + p.value if up else start - p.value)
            else:
                proposals.append(math.ceil(start * (1 + p.value / 100)) if up else int(start * (1 - p.value / 100)))
        # Max selects the largest change (highest count up, lowest down); Min the smallest.
        largest, smallest = (max, min) if up else (min, max)
        return smallest(proposals) if rules.select_policy == "Min" else largest(proposals)
