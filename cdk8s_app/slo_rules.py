"""SloRules: the PrometheusRule with the backlog/SLO recording rules and the alerting rules.

Burn-rate alerting follows the multi-window, multi-burn-rate method of the Google SRE workbook
("Alerting on SLOs"): a long window for significance, a short one (1/12 of it) so the alert resets fast.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cdk8s
from constructs import Construct

from .config import AlertConfig, EnvironmentConfig, SloConfig
from .durations import format_duration
from .meta import common_labels
from .metrics import BY_CONSUMER

# Recorded series (the seed's names are kept for the adapter and dashboards).
# Evaluation interval of every rule group; simulate adds it to the metric pipeline delay.
RULE_INTERVAL_SECONDS = 30
PENDING = "stream_consumer:jetstream_consumer_num_pending:max"
ACK_PENDING = "stream_consumer:jetstream_consumer_num_ack_pending:max"
BACKLOG = "jetstream_backlog"
BACKLOG_GROWTH = "stream_consumer:jetstream_backlog:deriv5m"
DRAIN_P95 = "slo_backlog_drain_p95"
DRAIN_P99 = "stream_consumer:backlog_drain_seconds:p99_rate5m"
VIOLATIONS_1H = "stream_consumer:slo_violation_events:increase1h"
ERROR_RATIO = "stream_consumer:backlog_drain_slo_errors:ratio_rate{window}"
CAP_ERROR_RATIO = "stream_consumer:backlog_drain_cap_errors:ratio_rate{window}"
BURN_RATE = "stream_consumer:backlog_drain_slo:burnrate{window}"
SEED_RATIO_ALIASES = {"5m": "slo_violation_ratio_5m", "1h": "slo_violation_ratio_1h", "6h": "slo_violation_ratio_6h", "1d": "slo_violation_ratio_24h"}

RATIO_WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
CAP_WINDOWS = ("5m", "1h")

EXPORTER_JOB = "nats-exporter"


@dataclass(frozen=True, kw_only=True)
class BurnWindow:
    """One multi-window burn-rate condition: both windows above factor x budget rate."""

    long: str
    short: str
    budget_fraction: float
    """Share of the whole error budget this condition spends over the long window."""
    severity: str


# SRE workbook table 5-8: 2 %/1h and 5 %/6h page, 10 %/1d and 10 %/3d ticket.
BURN_WINDOWS = (
    BurnWindow(long="1h", short="5m", budget_fraction=0.02, severity="critical"),
    BurnWindow(long="6h", short="30m", budget_fraction=0.05, severity="critical"),
    BurnWindow(long="1d", short="2h", budget_fraction=0.10, severity="warning"),
    BurnWindow(long="3d", short="6h", budget_fraction=0.10, severity="warning"),
)

_HOURS = {"1h": 1, "6h": 6, "1d": 24, "3d": 72}


def burn_factor(window: BurnWindow, budget_days: int) -> float:
    """Burn rate that spends ``budget_fraction`` of a ``budget_days`` budget in the long window (14.4 for 2 %/1h/30d).

    Never below 1: a burn rate under 1 is sustainable for any budget window, so it must not alert (short budget
    windows such as 7 days would otherwise ticket on a trickle that is within budget)."""
    return max(1.0, round(window.budget_fraction * budget_days * 24 / _HOURS[window.long], 4))


@dataclass(frozen=True, kw_only=True)
class RecordingRule:
    record: str
    expr: str

    def render(self) -> dict[str, Any]:
        return {"record": self.record, "expr": self.expr}


@dataclass(frozen=True, kw_only=True)
class AlertingRule:
    alert: str
    expr: str
    for_seconds: int
    severity: str
    summary: str
    description: str
    runbook_url: str

    def render(self) -> dict[str, Any]:
        rendered: dict[str, Any] = {"alert": self.alert, "expr": self.expr}
        if self.for_seconds:
            rendered["for"] = format_duration(self.for_seconds)
        rendered["labels"] = {"severity": self.severity}
        rendered["annotations"] = {"description": self.description, "runbook_url": self.runbook_url, "summary": self.summary}
        return rendered


@dataclass(frozen=True, kw_only=True)
class RuleGroup:
    name: str
    interval: str
    rules: tuple[RecordingRule | AlertingRule, ...]

    def render(self) -> dict[str, Any]:
        return {"name": self.name, "interval": self.interval, "rules": [r.render() for r in self.rules]}


def _ratio(window: str, le: int) -> str:
    return (
        f"1 - (sum by ({BY_CONSUMER}) (rate(backlog_drain_seconds_bucket{{le=\"{le}\"}}[{window}]))"
        f" / sum by ({BY_CONSUMER}) (rate(backlog_drain_seconds_count[{window}])))"
    )


def recording_groups(slo: SloConfig) -> tuple[RuleGroup, ...]:
    # max by: every NATS server reports each consumer (one series each, is_consumer_leader tells which is
    # the leader); summing would multiply the backlog by the cluster size, max survives leader elections.
    backlog = RuleGroup(
        name="backlog-gitops.jetstream.backlog",
        interval=f"{RULE_INTERVAL_SECONDS}s",
        rules=(
            RecordingRule(record=PENDING, expr=f"max by ({BY_CONSUMER}) (jetstream_consumer_num_pending)"),
            RecordingRule(record=ACK_PENDING, expr=f"max by ({BY_CONSUMER}) (jetstream_consumer_num_ack_pending)"),
            RecordingRule(record=BACKLOG, expr=f"{PENDING} + {ACK_PENDING}"),
            RecordingRule(record=BACKLOG_GROWTH, expr=f"deriv({BACKLOG}[5m])"),
        ),
    )
    budget = round(1 - slo.objective, 6)
    drain_rules: list[RecordingRule] = [
        RecordingRule(
            record=DRAIN_P95,
            expr=f"histogram_quantile(0.95, sum by (le, {BY_CONSUMER}) (rate(backlog_drain_seconds_bucket[5m])))",
        ),
        RecordingRule(
            record=DRAIN_P99,
            expr=f"histogram_quantile(0.99, sum by (le, {BY_CONSUMER}) (rate(backlog_drain_seconds_bucket[5m])))",
        ),
        RecordingRule(record=VIOLATIONS_1H, expr=f"sum by ({BY_CONSUMER}) (increase(slo_violation_events_total[1h]))"),
    ]
    for window in RATIO_WINDOWS:
        ratio = ERROR_RATIO.format(window=window)
        drain_rules.append(RecordingRule(record=ratio, expr=_ratio(window, slo.drain_p95_seconds)))
        drain_rules.append(RecordingRule(record=BURN_RATE.format(window=window), expr=f"{ratio} / {budget}"))
        if window in SEED_RATIO_ALIASES:
            drain_rules.append(RecordingRule(record=SEED_RATIO_ALIASES[window], expr=ratio))
    for window in CAP_WINDOWS:
        drain_rules.append(RecordingRule(record=CAP_ERROR_RATIO.format(window=window), expr=_ratio(window, slo.drain_cap_seconds)))
    drain = RuleGroup(name="backlog-gitops.slo.drain", interval=f"{RULE_INTERVAL_SECONDS}s", rules=tuple(drain_rules))
    return backlog, drain


def _runbook(alerts: AlertConfig, alert: str) -> str:
    return f"{alerts.runbook_base_url}#{alert.lower()}"


def alerting_group(env: EnvironmentConfig) -> RuleGroup:
    a, slo = env.alerts, env.slo
    who = "{{ $labels.stream_name }}/{{ $labels.consumer_name }}"
    exporter_up = f'up{{job="{EXPORTER_JOB}",namespace="{env.namespace}"}}'

    def alert(name: str, expr: str, for_seconds: int, severity: str, summary: str, description: str) -> AlertingRule:
        return AlertingRule(
            alert=name, expr=expr, for_seconds=for_seconds, severity=severity, summary=summary,
            description=description, runbook_url=_runbook(a, name),
        )  # fmt: skip

    rules: list[AlertingRule] = [
        alert("SustainedBacklogWarning", f"{BACKLOG} > {a.backlog_threshold}", a.warning_for_seconds, "warning",
              "JetStream backlog above threshold",
              f"Backlog of {who} is {{{{ $value }}}} messages, above {a.backlog_threshold} for {format_duration(a.warning_for_seconds)}."),
        alert("SustainedBacklogCritical", f"{BACKLOG} > {a.backlog_threshold}", a.critical_for_seconds, "critical",
              "JetStream backlog above threshold for too long",
              f"Backlog of {who} is {{{{ $value }}}} messages, above {a.backlog_threshold} for {format_duration(a.critical_for_seconds)}; the drain SLO is at risk."),
        alert("AckPendingHigh", f"{ACK_PENDING} > {a.ack_pending_threshold}", a.ack_pending_for_seconds, "warning",
              "Many messages delivered but not acknowledged",
              f"{who} has {{{{ $value }}}} unacknowledged messages (threshold {a.ack_pending_threshold}); consumers may be stuck or slow."),
    ]  # fmt: skip
    for window in BURN_WINDOWS:
        factor = burn_factor(window, slo.budget_window_days)
        long_rate, short_rate = BURN_RATE.format(window=window.long), BURN_RATE.format(window=window.short)
        speed = "Fast" if window.severity == "critical" else "Slow"
        rules.append(
            alert(f"BacklogDrainSLOBurn{speed}{window.long}", f"{long_rate} > {factor} and {short_rate} > {factor}", 120 if speed == "Fast" else 900,
                  window.severity, f"Drain SLO error budget burning {'fast' if speed == 'Fast' else 'steadily'}",
                  f"{who} burns its {slo.budget_window_days}-day error budget (P95 drain < {slo.drain_p95_seconds}s) at "
                  f"{{{{ $value | humanize }}}}x over {window.short}, above {factor}x over {window.long} as well.")
        )  # fmt: skip
    cap_budget = round(1 - slo.cap_objective, 6)
    rules += [
        alert("BacklogDrainCapBreached",
              f"{CAP_ERROR_RATIO.format(window='1h')} > {cap_budget} and {CAP_ERROR_RATIO.format(window='5m')} > {cap_budget}", 300, "critical",
              "Drains exceed the capped drain target",
              f"{{{{ $value | humanizePercentage }}}} of drains of {who} took longer than {slo.drain_cap_seconds}s (allowed {cap_budget:.2%})."),
        alert("NatsExporterDown", f"{exporter_up} == 0 or absent({exporter_up})", a.exporter_down_for_seconds, "critical",
              "prometheus-nats-exporter is down",
              "Prometheus cannot scrape the NATS exporter; backlog metrics are stale and HPAs hold their replicas."),
        alert("NatsServerUnhealthy", "gnatsd_healthz_status == 1", 120, "critical", "NATS server unhealthy",
              "NATS server {{ $labels.server_id }} answers /healthz with an error."),
        alert("JetStreamUnavailable", "jetstream_server_jetstream_disabled == 1", 120, "critical", "JetStream disabled",
              "JetStream is disabled on NATS server {{ $labels.server_name }}; consumers cannot make progress."),
        alert("NatsMemoryPressure",
              f"gnatsd_varz_jetstream_stats_memory / (gnatsd_varz_jetstream_config_max_memory > 0) > {a.memory_pressure_ratio}", 600, "warning",
              "JetStream memory storage nearly full",
              f"NATS server {{{{ $labels.server_id }}}} uses {{{{ $value | humanizePercentage }}}} of its JetStream memory (threshold {a.memory_pressure_ratio:.0%})."),
        alert("NatsConnectionPressure",
              f"gnatsd_varz_connections / (gnatsd_varz_max_connections > 0) > {a.connection_pressure_ratio}", 600, "warning",
              "NATS connections near the limit",
              f"NATS server {{{{ $labels.server_id }}}} uses {{{{ $value | humanizePercentage }}}} of max_connections (threshold {a.connection_pressure_ratio:.0%})."),
    ]  # fmt: skip
    return RuleGroup(name="backlog-gitops.alerts", interval=f"{RULE_INTERVAL_SECONDS}s", rules=tuple(rules))


def rule_groups(env: EnvironmentConfig) -> tuple[RuleGroup, ...]:
    return (*recording_groups(env.slo), alerting_group(env))


class SloRules(Construct):
    """PrometheusRule named ``backlog-slo`` in the environment namespace."""

    NAME = "backlog-slo"

    def __init__(self, scope: Construct, id: str, *, env: EnvironmentConfig) -> None:
        super().__init__(scope, id)
        self.groups = rule_groups(env)
        labels = {**common_labels(self.NAME, "slo-rules"), **env.prometheus.rule_selector_labels}
        cdk8s.ApiObject(
            self,
            "rule",
            api_version="monitoring.coreos.com/v1",
            kind="PrometheusRule",
            metadata=cdk8s.ApiObjectMetadata(name=self.NAME, namespace=env.namespace, labels=labels),
        ).add_json_patch(cdk8s.JsonPatch.add("/spec", {"groups": [g.render() for g in self.groups]}))
