"""SLO recording/alerting rules: shape of the expressions, and alert scenarios proven with real promtool."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from typing import Any

import pytest

from cdk8s_app import rule_tests
from cdk8s_app.config import load_environment
from cdk8s_app.slo_rules import BURN_WINDOWS, burn_factor, rule_groups

from .conftest import ENVIRONMENTS

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (scripts/setup.sh --test)")
ENVS = ["staging", "production"]


def groups_of(env_name: str) -> list[dict[str, Any]]:
    return [g.render() for g in rule_groups(load_environment(ENVIRONMENTS / f"{env_name}.yaml"))]


def find(groups: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(r for g in groups for r in g["rules"] if r.get("record") == name or r.get("alert") == name)


def test_recording_rules_follow_the_slo_definitions() -> None:
    groups = groups_of("production")
    assert find(groups, "jetstream_backlog")["expr"] == (
        "stream_consumer:jetstream_consumer_num_pending:max + stream_consumer:jetstream_consumer_num_ack_pending:max"
    )
    assert "max by (stream_name, consumer_name) (jetstream_consumer_num_pending)" in find(groups, "stream_consumer:jetstream_consumer_num_pending:max")["expr"]
    p95 = find(groups, "slo_backlog_drain_p95")["expr"]
    assert p95.startswith("histogram_quantile(0.95, sum by (le, stream_name, consumer_name) (rate(backlog_drain_seconds_bucket[5m])))")
    ratio = find(groups, "slo_violation_ratio_1h")["expr"]
    assert ratio == "stream_consumer:backlog_drain_slo_errors:ratio_rate1h"
    errors = find(groups, "stream_consumer:backlog_drain_slo_errors:ratio_rate1h")["expr"]
    assert errors.startswith('1 - (sum by (stream_name, consumer_name) (rate(backlog_drain_seconds_bucket{le="600"}[1h]))')
    assert "increase(slo_violation_events_total" not in ratio, "a ratio, not a count"
    assert find(groups, "stream_consumer:backlog_drain_slo:burnrate1h")["expr"].endswith("/ 0.05")


def test_burn_rate_factors() -> None:
    assert [burn_factor(w, 30) for w in BURN_WINDOWS] == [14.4, 6.0, 3.0, 1.0]
    assert [burn_factor(w, 7) for w in BURN_WINDOWS] == [3.36, 1.4, 1.0, 1.0]


@pytest.mark.parametrize("env_name", ENVS)
def test_every_alert_has_severity_summary_description_runbook(env_name: str) -> None:
    alerts = [r for g in groups_of(env_name) for r in g["rules"] if "alert" in r]
    names = {a["alert"] for a in alerts}
    assert {"SustainedBacklogWarning", "SustainedBacklogCritical", "AckPendingHigh", "NatsExporterDown", "NatsServerUnhealthy",
            "JetStreamUnavailable", "NatsMemoryPressure", "NatsConnectionPressure", "BacklogDrainCapBreached"} <= names  # fmt: skip
    for a in alerts:
        assert a["labels"]["severity"] in ("warning", "critical")
        assert a["annotations"]["summary"] and a["annotations"]["description"]
        assert a["annotations"]["runbook_url"].endswith(f"#{a['alert'].lower()}")


def test_thresholds_come_from_config() -> None:
    staging, production = groups_of("staging"), groups_of("production")
    assert find(staging, "SustainedBacklogWarning")["expr"] == "jetstream_backlog > 3000"
    assert find(production, "SustainedBacklogWarning")["expr"] == "jetstream_backlog > 5000"
    assert find(staging, "SustainedBacklogWarning")["for"] == "10m" and find(staging, "SustainedBacklogCritical")["for"] == "15m"


@needs_promtool
@pytest.mark.parametrize("env_name", ENVS)
def test_shipped_rules_pass_every_scenario(env_name: str) -> None:
    env = load_environment(ENVIRONMENTS / f"{env_name}.yaml")
    result = rule_tests.run(env, groups_of(env_name), PROMTOOL or "")
    assert result.ok, result.output
    assert result.scenarios == 7


def _set(name: str, **changes: Any) -> Callable[[list[dict[str, Any]]], None]:
    def edit(groups: list[dict[str, Any]]) -> None:
        find(groups, name).update(changes)

    return edit


BREAKS = [
    pytest.param(_set("SustainedBacklogWarning", **{"for": "5m"}), "SustainedBacklogWarning, time: 9m", id="warning-fires-too-early"),
    pytest.param(_set("SustainedBacklogCritical", expr="jetstream_backlog > 100000"), "SustainedBacklogCritical, time: 16m", id="critical-never-fires"),
    pytest.param(_set("SustainedBacklogWarning", **{"for": "1m"}), "a 5-minute spike fires nothing", id="spike-fires"),
    pytest.param(_set("jetstream_backlog", expr="sum by (stream_name, consumer_name) (jetstream_consumer_num_pending)"), "SustainedBacklogWarning",
                 id="backlog-double-counted"),
    pytest.param(_set("AckPendingHigh", expr="stream_consumer:jetstream_consumer_num_ack_pending:max > 1000000"), "AckPendingHigh", id="ack-pending-never-fires"),
    pytest.param(_set("NatsExporterDown", expr='up{job="nats-exporter"} == 2'), "NatsExporterDown", id="exporter-down-never-fires"),
    pytest.param(_set("BacklogDrainSLOBurnFast1h", expr="stream_consumer:backlog_drain_slo:burnrate1h > 100"), "BacklogDrainSLOBurnFast1h", id="fast-burn-never-pages"),
    pytest.param(_set("BacklogDrainSLOBurnSlow3d", expr="stream_consumer:backlog_drain_slo:burnrate3d > 0.1"), "BacklogDrainSLOBurnSlow3d", id="trickle-tickets"),
    pytest.param(_set("stream_consumer:backlog_drain_slo_errors:ratio_rate1h", expr="sum by (stream_name, consumer_name) (increase(backlog_drain_seconds_count[1h]))"),
                 "BacklogDrainSLOBurnFast1h", id="ratio-is-a-count"),
]  # fmt: skip


@needs_promtool
@pytest.mark.parametrize(("edit", "expected"), BREAKS)
def test_each_scenario_fails_when_its_rule_is_broken(edit, expected: str) -> None:
    env = load_environment(ENVIRONMENTS / "staging.yaml")
    groups = groups_of("staging")
    edit(groups)
    result = rule_tests.run(env, groups, PROMTOOL or "")
    assert not result.ok
    assert expected in result.output, result.output[-2000:]
