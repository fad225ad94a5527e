"""simulate: the HPA model against the Kubernetes documentation and hand-computed cases; the consumer model; the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from cdk8s_app.cli import app
from cdk8s_app.config import LoadProfile, load_environment
from cdk8s_app.errors import UserError
from cdk8s_app.simulation import runner
from cdk8s_app.simulation.engine import ConsumerModel, Slo, simulate
from cdk8s_app.simulation.hpa import (
    DEFAULT_SCALE_DOWN,
    DEFAULT_SCALE_UP,
    HpaController,
    HpaSpec,
    Policy,
    Rules,
    proposal,
    value_proposal,
)
from cdk8s_app.simulation.load import Arrivals, from_profile, load_recorded
from cdk8s_app.synth import render

from .conftest import DIST, ENVIRONMENTS, edit

cli = CliRunner()
INSTANT_DOWN = Rules(0, "Max", (Policy("Percent", 100, 15),))


def run_controller(spec: HpaSpec, start: int, usage: float | list[float], until: int) -> list[int]:
    """Replicas after each 15 s sync from t=0 to ``until``; ``usage`` is constant or one value per sync."""
    ctl, current, out = HpaController(spec), start, []
    for i, t in enumerate(range(0, until + 1, 15)):
        current = ctl.reconcile(float(t), current, usage[i] if isinstance(usage, list) else usage)
        out.append(current)
    return out


# ---- replica calculation (docs: "Algorithm details") -------------------------------------------------------------


def test_docs_ratio_examples_double_and_halve() -> None:
    # "current metric value is 200m, desired 100m: doubled ... 50m: halved" (per pod; usage is the total)
    assert proposal(current=4, usage=4 * 200, target=100) == 8
    assert proposal(current=4, usage=4 * 50, target=100) == 2


# 1100/1000 is 1.1 in float64, and 1 - 1.1 is -0.10000000000000009: the controller (Go, float64) scales there too.
@pytest.mark.parametrize(("usage", "expected"), [(1050, 10), (950, 10), (1090, 10), (1100, 11), (1110, 12), (890, 9)])
def test_tolerance_band_skips_small_changes(usage: float, expected: int) -> None:
    assert proposal(current=10, usage=usage, target=100) == expected


def test_value_target_scales_from_ready_pods_and_the_largest_proposal_wins() -> None:
    # GetExternalMetricReplicas: ceil(usage / target * readyPods), inside the tolerance: current.
    assert value_proposal(current=3, ready=2, usage=600, target=300) == 4
    assert value_proposal(current=3, ready=2, usage=310, target=300) == 3
    spec = HpaSpec("x", 1, 20, 1000.0, drain_p95_target=300.0)
    # The backlog asks for 1, the drain P95 (900 s vs 300 s) for ceil(3 * 2) = 6: the larger wins.
    assert HpaController(spec).reconcile(0.0, 2, 1000.0, ready=2, drain_p95=900.0) == 6
    # No drain data (no drains in the window): only the backlog counts.
    assert HpaController(spec).reconcile(0.0, 2, 1000.0, ready=2, drain_p95=None) == 1


def test_bounds_clamp_the_result() -> None:
    spec = HpaSpec("x", min_replicas=2, max_replicas=5, target_average_value=100)
    assert run_controller(spec, 3, 10_000, 60)[-1] == 5
    assert run_controller(HpaSpec("x", 2, 5, 100, scale_down=INSTANT_DOWN), 3, 0, 0) == [2]
    assert run_controller(spec, 9, 0, 0) == [5]  # above max goes straight to max
    assert run_controller(spec, 1, 0, 0) == [2]  # below min goes straight to min


# ---- behavior (docs: "Configurable scaling behavior") ------------------------------------------------------------


def test_default_scale_up_adds_4_pods_or_doubles_every_15s() -> None:
    spec = HpaSpec("x", 1, 100, 1.0, scale_up=DEFAULT_SCALE_UP, scale_down=DEFAULT_SCALE_DOWN)
    # 1 -> max(1+4, 2) = 5 -> max(9, 10) = 10 -> max(14, 20) = 20 -> 40 -> 80 -> 100 (maxReplicas)
    assert run_controller(spec, 1, 1000.0, 75) == [5, 10, 20, 40, 80, 100]


def test_docs_scale_down_policy_example_80_to_10() -> None:
    # Docs: Pods 4 / 60s and Percent 10 / 60s, selectPolicy Max: 80 -> 72 (8 pods) -> 64 (7.2 rounded up to 8) ...
    rules = Rules(0, "Max", (Policy("Pods", 4, 60), Policy("Percent", 10, 60)))
    spec = HpaSpec("x", 1, 100, 1.0, scale_down=rules)
    seq = run_controller(spec, 80, 10.0, 300)
    assert seq[::4] == [72, 64, 57, 51, 45, 40]
    assert seq[1:4] == [72, 72, 72]  # nothing more inside the 60 s period
    # Below 40 replicas the Pods policy allows the bigger change (4 > 10%).
    assert run_controller(spec, 30, 10.0, 0) == [26]


def test_select_policy_min_takes_the_smaller_change_and_disabled_none() -> None:
    policies = (Policy("Pods", 4, 60), Policy("Percent", 10, 60))
    assert run_controller(HpaSpec("x", 1, 100, 1.0, scale_down=Rules(0, "Min", policies)), 80, 10.0, 0) == [76]
    assert run_controller(HpaSpec("x", 1, 100, 1.0, scale_down=Rules(0, "Disabled", policies)), 80, 10.0, 600) == [80] * 41
    assert run_controller(HpaSpec("x", 1, 100, 1.0, scale_up=Rules(0, "Disabled", policies)), 2, 1000.0, 600) == [2] * 41


def test_scale_down_stabilization_window_holds_the_highest_recent_recommendation() -> None:
    spec = HpaSpec("x", 1, 20, 100.0, scale_down=Rules(300, "Max", (Policy("Percent", 100, 15),)))
    usage = [1000.0] + [100.0] * 30  # wants 10 at t=0, then 1
    seq = run_controller(spec, 10, usage, 450)
    assert seq[:20] == [10] * 20  # t=0..285: the t=0 recommendation (10) is inside the 300 s window
    assert seq[20] == 1  # t=300: it left the window (strictly after now-300 is required)


def test_scale_up_stabilization_window_uses_the_lowest_recent_recommendation() -> None:
    spec = HpaSpec("x", 1, 20, 100.0, scale_up=Rules(60, "Max", (Policy("Pods", 100, 15),)), scale_down=INSTANT_DOWN)
    usage = [100.0, 1000.0, 1000.0, 1000.0, 1000.0, 1000.0]  # a spike after one low sample at t=0
    # Up to t=45 the t=0 recommendation (1) is inside the 60 s window; at t=60 it is not (strictly after now-60).
    assert run_controller(spec, 1, usage, 75) == [1, 1, 1, 1, 10, 10]


def test_scale_events_inside_the_period_count_against_the_policy() -> None:
    spec = HpaSpec("x", 1, 100, 1.0, scale_up=Rules(0, "Max", (Policy("Pods", 2, 60),)), scale_down=INSTANT_DOWN)
    # +2 per 60 s: 1 -> 3 at t=0, held until t=60 -> 5 at t=60 -> 7 at t=120.
    seq = run_controller(spec, 1, 50.0, 120)
    assert seq == [3, 3, 3, 3, 5, 5, 5, 5, 7]


def test_spec_is_read_from_the_rendered_hpa() -> None:
    doc = yaml.safe_load((DIST / "staging" / "HorizontalPodAutoscaler.orders-processor.k8s.yaml").read_text())
    spec = HpaSpec.from_manifest(doc, "backlog_current")
    assert (spec.min_replicas, spec.max_replicas, spec.target_average_value) == (1, 6, 3000.0)
    assert spec.scale_up == Rules(0, "Max", (Policy("Pods", 4, 15), Policy("Percent", 100, 15)))
    assert spec.scale_down == Rules(300, "Max", (Policy("Percent", 10, 60),))


# ---- consumer model ------------------------------------------------------------------------------------------------

FIXED = ConsumerModel(throughput_per_replica=10, pod_startup_seconds=30, scrape_interval_seconds=15, rule_interval_seconds=30)
SLO = Slo(drain_p95_seconds=600, drain_cap_seconds=1200)


def test_fifo_drain_times_match_a_hand_computed_queue() -> None:
    # One replica of 10 msg/s, 20 msg/s for 100 s: the message published at a is processed at 2a, so it waits a.
    spec = HpaSpec("x", 1, 1, 1e9)
    out = simulate(spec, FIXED, Arrivals("hand", tuple([20.0] * 100 + [0.0] * 200), 0), SLO)
    assert out.peak_backlog == pytest.approx(1000, abs=10)
    assert out.drain_max_seconds == pytest.approx(100, abs=2)
    assert out.drain_p95_seconds == pytest.approx(95, abs=2)
    assert out.undrained_messages == pytest.approx(0, abs=1e-6)
    assert out.messages == pytest.approx(2000)


def test_steady_load_within_capacity_never_queues_or_scales() -> None:
    spec = HpaSpec("x", 1, 5, 100.0)
    out = simulate(spec, FIXED, from_profile(LoadProfile(name="s", kind="steady", base_rate=8, horizon_seconds=600)), SLO)
    assert out.peak_backlog == 0 and out.first_scale_up_seconds is None and out.peak_replicas == 1
    assert out.drain_max_seconds < 1 and out.replica_minutes == pytest.approx(10)


def test_scale_up_waits_for_the_metric_pipeline_and_pod_startup() -> None:
    spec = HpaSpec("x", 1, 10, 100.0)
    out = simulate(spec, FIXED, Arrivals("step", tuple([0.0] * 10 + [100.0] * 590), 10), SLO)
    # The backlog is first scraped at 15 s, recorded at 30 s and seen by the sync at 30 s: 20 s after the start.
    assert out.first_scale_up_seconds == 20
    ready = out.trace.ready
    assert ready[59] == 1 and ready[60] > 1  # ready 30 s after the scale-up at t=30


def test_drain_target_below_the_backlog_equilibrium_buys_lower_drain_times() -> None:
    # A backlog target of 1000 at 10 msg/s per replica settles near 100 s of drain; a 30 s drain target scales further.
    load = Arrivals("step", tuple([5.0] * 60 + [50.0] * 1200 + [5.0] * 900), 60)
    plain = simulate(HpaSpec("x", 1, 20, 1000.0), FIXED, load, SLO)
    with_drain = simulate(HpaSpec("x", 1, 20, 1000.0, drain_p95_target=30.0), FIXED, load, SLO)
    assert plain.drain_p95_seconds > 80
    assert with_drain.drain_p95_seconds < 0.9 * plain.drain_p95_seconds  # lags: the P95 window is 5 minutes
    assert with_drain.peak_replicas > plain.peak_replicas


def test_spec_reads_the_drain_target_of_a_rendered_hpa() -> None:
    doc = yaml.safe_load((DIST / "production" / "HorizontalPodAutoscaler.orders-processor.k8s.yaml").read_text())
    assert HpaSpec.from_manifest(doc, "backlog_current", "backlog_drain_p95_seconds").drain_p95_target == 300.0
    assert HpaSpec.from_manifest(doc, "backlog_current").drain_p95_target is None


def test_recorded_series_from_csv_and_json(tmp_path: Path) -> None:
    csv_file = tmp_path / "friday.csv"
    csv_file.write_text("seconds,rate\n0,5\n60,50\n120,5\n180,0\n")
    a = load_recorded(csv_file)
    assert a.horizon_seconds == 180 and a.rates[59] == 5 and a.rates[60] == 50 and a.start_seconds == 60
    json_file = tmp_path / "friday.json"
    json_file.write_text(json.dumps([{"seconds": 0, "rate": 1}, {"seconds": 10, "rate": 0}]))
    assert load_recorded(json_file).rates == (1.0,) * 10
    for text, problem in [("t,r\n0,1\n1,1\n", "header"), ("seconds,rate\n0,1\n", "at least two"), ("seconds,rate\n0,1\n0,2\n", "increase"),
                          ("seconds,rate\n0,x\n1,1\n", "not a load series")]:  # fmt: skip
        csv_file.write_text(text)
        with pytest.raises(UserError, match=problem):
            load_recorded(csv_file)


def test_shipped_environments_meet_the_slo_under_their_envelope() -> None:
    for name in ("staging", "production"):
        results = runner.run(runner.plan(load_environment(ENVIRONMENTS / f"{name}.yaml"), DIST))
        assert results and all(r.outcome.passed for r in results), runner.as_text(results)


def test_underprovisioned_config_fails_with_numbers_and_advice(env_copy, tmp_path: Path) -> None:
    envs = env_copy(lambda d: d["consumers"][0].update(maxReplicas=1, minReplicas=1))
    dist = tmp_path / "dist"
    render(envs, dist, "staging")
    results = runner.run(runner.plan(load_environment(envs / "staging.yaml"), dist, consumer="orders-processor"))
    (r,) = results
    assert not r.outcome.passed
    message = runner.failure_message(r)
    assert "staging/orders-processor under burst" in message
    assert "needs 4 replicas at 40 msg/s each, but maxReplicas is 1: raise maxReplicas" in message
    assert r.outcome.seconds_at_max_replicas > 0


def test_cli_table_json_plot_and_exit_codes(env_copy, tmp_path: Path) -> None:
    base = ["--environments", str(ENVIRONMENTS), "--dist", str(DIST)]
    png = tmp_path / "sim.png"
    ok = cli.invoke(app, ["simulate", "--env", "staging", "--plot", str(png), *base])
    assert ok.exit_code == 0, ok.output
    assert "orders-processor  burst" in ok.output and "PASS" in ok.output and "FAIL" not in ok.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    js = cli.invoke(app, ["simulate", "--env", "production", "--consumer", "payments-settler", "-o", "json", *base])
    (doc,) = json.loads(js.stdout)
    assert doc["passed"] and doc["profile"] == "month-end-ramp" and doc["maxReplicas"] == 12
    recorded = tmp_path / "series.csv"
    recorded.write_text("seconds,rate\n0,10\n60,1000\n660,10\n3600,0\n")
    bad = cli.invoke(app, ["simulate", "--env", "staging", "--consumer", "orders-processor", "--profile", str(recorded), *base])
    assert bad.exit_code == 1 and "FAIL staging/orders-processor under series" in bad.output
    for args, text in [(["--profile", "nope"], "no load profile 'nope'"), (["--consumer", "nope"], "no consumer"),
                       (["--plot", "x.svg"], "PNG"), (["--profile", str(tmp_path / "missing.csv")], "cannot read")]:  # fmt: skip
        res = cli.invoke(app, ["simulate", "--env", "staging", *args, *base])
        assert res.exit_code == 2 and text in res.output and "Traceback" not in res.output, res.output


def test_load_beyond_max_capacity_at_the_end_fails_even_inside_the_horizon() -> None:
    spec = HpaSpec("x", 1, 2, 100.0)
    out = simulate(spec, FIXED, Arrivals("overload", tuple([25.0] * 300), 0), SLO)
    assert out.drain_max_seconds < SLO.drain_cap_seconds  # the horizon is too short to see it in drain times
    assert out.overloaded_at_end and not out.passed
    assert "grow without bound" in out.violations[-1]


def test_base_comparison_shows_what_an_hpa_change_does(repo: Path) -> None:
    args = ["simulate", "--environments", str(repo / "environments"), "--dist", str(repo / "dist"), "--base", "HEAD", "-o", "markdown"]
    same = cli.invoke(app, args)
    assert same.exit_code == 0 and "No HPA changes; all 6 consumer-profiles pass." in same.output
    edit(repo, "production", lambda d: d["consumers"][1].update(maxReplicas=9))
    cli.invoke(app, ["synth", "--environments", str(repo / "environments"), "--dist", str(repo / "dist")])
    changed = cli.invoke(app, args)
    assert changed.exit_code == 1, changed.output
    (row,) = [line for line in changed.output.splitlines() if line.startswith("| production | payments-settler")]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2] == "month-end-ramp" and " → " in cells[3] and cells[6] == "10 → 9/9" and cells[8] == "PASS → **FAIL**"
    assert "5 other consumer-profiles: HPA unchanged, SLO met." in changed.output
    text = cli.invoke(app, args[:-2])
    assert "vs base: production/payments-settler under month-end-ramp: P95 drain 83s → " in text.output


def test_markdown_table_is_bounded_for_fleet_wide_changes() -> None:
    spec = HpaSpec("x", 1, 2, 100.0)
    cases = [runner.Case("fleet", f"c{i:03d}", "ns", spec, FIXED, Arrivals("tiny", (1.0,) * 60, 0), SLO) for i in range(runner.MARKDOWN_ROWS + 10)]
    md = runner.as_markdown(runner.run(cases))
    assert sum(1 for line in md.splitlines() if line.startswith("| fleet |")) == runner.MARKDOWN_ROWS
    assert "… and 10 more changed consumer-profiles" in md
