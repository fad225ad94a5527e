"""Alert-scenario tests for `promtool test rules`, generated from the same config that produced the rules.

Each scenario feeds input series (promtool's expanding notation, e.g. '4000x24 0x20') and states which alerts
must be firing at given times, with their labels and annotations, so a changed threshold, duration or label
breaks the test. Run against the rule groups as rendered in dist/, not as the code would render them.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .config import EnvironmentConfig
from .slo_rules import BURN_WINDOWS, EXPORTER_JOB, AlertingRule, alerting_group, burn_factor

STEP = "30s"
EXPORTER_POD = {"job": EXPORTER_JOB, "instance": "10.0.0.7:7777"}


@dataclass(frozen=True, kw_only=True)
class Scenario:
    name: str
    series: tuple[tuple[str, str], ...]
    """(series selector, values in expanding notation, one sample per 30 s)."""
    expect: tuple[tuple[str, str, tuple[dict[str, Any], ...]], ...]
    """(eval time, alertname, expected alerts) — an empty tuple asserts the alert is not firing."""


def _fmt(value: float) -> str:
    """Format like Go's %v for float64 (what '{{ $value }}' prints)."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _humanize(value: float) -> str:
    return _fmt(round(value, 4)) if abs(value) < 1000 else f"{value / 1000:.4g}k"


def _expand(template: str, labels: dict[str, str], value: float) -> str:
    """Expand the subset of Prometheus alert templating our rules use."""
    out = re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels.get(m.group(1), ""), template)
    out = out.replace("{{ $value | humanizePercentage }}", f"{_humanize(value * 100)}%")
    out = out.replace("{{ $value | humanize }}", _humanize(value))
    return out.replace("{{ $value }}", _fmt(value))


def _alert(rule: AlertingRule, labels: dict[str, str], value: float) -> dict[str, Any]:
    return {
        "exp_labels": {"severity": rule.severity, **labels},
        "exp_annotations": {
            "description": _expand(rule.description, labels, value),
            "runbook_url": rule.runbook_url,
            "summary": _expand(rule.summary, labels, value),
        },
    }


def _minutes(seconds: int) -> str:
    return f"{seconds // 60}m" if seconds % 60 == 0 else f"{seconds}s"


def scenarios(env: EnvironmentConfig) -> list[Scenario]:
    rules = {r.alert: r for r in alerting_group(env).rules if isinstance(r, AlertingRule)}
    a = env.alerts
    c = env.consumers[0]
    who = {"stream_name": c.stream, "consumer_name": c.consumer}
    server = lambda sid, leader: f'{{server_id="{sid}",is_consumer_leader="{leader}",stream_name="{c.stream}",consumer_name="{c.consumer}"}}'  # noqa: E731
    high = a.backlog_threshold + 1000
    samples = lambda seconds: seconds // 30  # noqa: E731
    warn, crit = a.warning_for_seconds, a.critical_for_seconds

    def backlog(values: str, ack: str = "0x200") -> tuple[tuple[str, str], ...]:
        # Two NATS servers report the same consumer; the rules must not double it.
        return (
            (f"jetstream_consumer_num_pending{server('n1', 'true')}", values),
            (f"jetstream_consumer_num_pending{server('n2', 'false')}", values),
            (f"jetstream_consumer_num_ack_pending{server('n1', 'true')}", ack),
            (f"jetstream_consumer_num_ack_pending{server('n2', 'false')}", ack),
        )

    sustained = f"{high}x{samples(crit) + 20}"
    out = [
        Scenario(
            name="sustained backlog: warning after warningFor, critical after criticalFor, not before",
            series=backlog(sustained),
            expect=(
                (_minutes(warn - 60), "SustainedBacklogWarning", ()),
                (_minutes(warn + 60), "SustainedBacklogWarning", (_alert(rules["SustainedBacklogWarning"], who, high),)),
                (_minutes(crit - 60), "SustainedBacklogCritical", ()),
                (_minutes(crit + 60), "SustainedBacklogCritical", (_alert(rules["SustainedBacklogCritical"], who, high),)),
            ),
        ),
        Scenario(
            name="a 5-minute spike fires nothing",
            series=backlog(f"{high}x10 0x{samples(crit) + 20}"),
            expect=tuple((t, name, ()) for t in ("4m", "6m", _minutes(warn + 60), _minutes(crit + 60)) for name in ("SustainedBacklogWarning", "SustainedBacklogCritical")),
        ),
        Scenario(
            name="backlog draining clears the alert",
            series=backlog(f"{high}x{samples(warn) + 4} 0x40"),
            expect=(
                (_minutes(warn + 60), "SustainedBacklogWarning", (_alert(rules["SustainedBacklogWarning"], who, high),)),
                (_minutes(warn + 240), "SustainedBacklogWarning", ()),
            ),
        ),
        Scenario(
            name="ack pending high fires after ackPendingFor",
            series=backlog("0x60", f"{a.ack_pending_threshold + 500}x60"),
            expect=(
                (_minutes(a.ack_pending_for_seconds - 60), "AckPendingHigh", ()),
                (_minutes(a.ack_pending_for_seconds + 60), "AckPendingHigh", (_alert(rules["AckPendingHigh"], who, a.ack_pending_threshold + 500),)),
            ),
        ),
    ]
    up = f'up{{job="{EXPORTER_JOB}",namespace="{env.namespace}",instance="{EXPORTER_POD["instance"]}"}}'
    exporter_labels = {"job": EXPORTER_JOB, "namespace": env.namespace, "instance": EXPORTER_POD["instance"]}
    out.append(
        Scenario(
            name="exporter down fires after exporterDownFor",
            series=((up, "1x4 0x30"),),
            expect=(
                ("1m", "NatsExporterDown", ()),
                (_minutes(120 + a.exporter_down_for_seconds + 60), "NatsExporterDown", (_alert(rules["NatsExporterDown"], exporter_labels, 0),)),
            ),
        )
    )
    fast = BURN_WINDOWS[0]
    fast_rule = rules[f"BacklogDrainSLOBurnFast{fast.long}"]
    burn = 1 / round(1 - env.slo.objective, 6)
    drains = lambda le600, le1200: (  # noqa: E731
        (f'backlog_drain_seconds_bucket{{le="{env.slo.drain_p95_seconds}",{_labels(who)}}}', le600),
        (f'backlog_drain_seconds_bucket{{le="{env.slo.drain_cap_seconds}",{_labels(who)}}}', le1200),
        (f'backlog_drain_seconds_bucket{{le="+Inf",{_labels(who)}}}', "0+10x240"),
        (f'backlog_drain_seconds_count{{{_labels(who)}}}', "0+10x240"),
    )
    assert burn > burn_factor(fast, env.slo.budget_window_days)
    out.append(
        Scenario(
            name="fast burn (every drain over the target) pages",
            series=drains("0x240", "0+10x240"),
            expect=(("15m", fast_rule.alert, (_alert(fast_rule, who, burn),)),),
        )
    )
    slow_names = [f"BacklogDrainSLOBurn{'Fast' if w.severity == 'critical' else 'Slow'}{w.long}" for w in BURN_WINDOWS]
    out.append(
        Scenario(
            name="a slow trickle within budget stays quiet",
            # 2 % of drains miss the target, under the 5 % budget.
            series=drains("0+9.8x240", "0+10x240"),
            expect=tuple(("110m", name, ()) for name in [*slow_names, "BacklogDrainCapBreached"]),
        )
    )
    return out


def _labels(labels: dict[str, str]) -> str:
    return ",".join(f'{k}="{v}"' for k, v in labels.items())


def test_file(env: EnvironmentConfig, rule_file: str) -> dict[str, Any]:
    """The promtool test file for ``env`` (one test per scenario)."""
    tests = []
    for scenario in scenarios(env):
        tests.append(
            {
                "name": scenario.name,
                "interval": STEP,
                "input_series": [{"series": s, "values": v} for s, v in scenario.series],
                "alert_rule_test": [{"eval_time": t, "alertname": name, "exp_alerts": list(alerts)} for t, name, alerts in scenario.expect],
            }
        )
    return {"rule_files": [rule_file], "evaluation_interval": STEP, "tests": tests}


@dataclass(frozen=True, kw_only=True)
class RuleTestResult:
    ok: bool
    output: str
    scenarios: int


def run(env: EnvironmentConfig, groups: list[dict[str, Any]], promtool: str) -> RuleTestResult:
    """Write the rendered groups and the generated tests to a temp folder and run `promtool test rules`."""
    with tempfile.TemporaryDirectory(prefix="backlog-gitops-rules-") as tmp:
        rules_path = Path(tmp) / "rules.yaml"
        rules_path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
        test_path = Path(tmp) / "tests.yaml"
        spec = test_file(env, rules_path.name)
        test_path.write_text(yaml.safe_dump(spec, sort_keys=False, width=200))
        proc = subprocess.run([promtool, "test", "rules", test_path.name], cwd=tmp, capture_output=True, text=True)
    return RuleTestResult(ok=proc.returncode == 0, output=(proc.stdout + proc.stderr).strip(), scenarios=len(spec["tests"]))
