"""SloDashboard: the Grafana SLO dashboard, built with grafana-foundation-sdk, shipped as a sidecar ConfigMap."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from cdk8s_plus_32 import k8s
from constructs import Construct
from grafana_foundation_sdk.builders import dashboard as gdash
from grafana_foundation_sdk.builders import gauge, prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef, Threshold, ThresholdsMode

from . import slo_rules
from .config import EnvironmentConfig
from .meta import common_labels

CONSUMER_VAR = '{stream_name=~"$stream", consumer_name=~"$consumer"}'


@dataclass(frozen=True, kw_only=True)
class SloDashboardProps:
    name: str = "backlog-slo-dashboard"
    """ConfigMap name. Default backlog-slo-dashboard."""
    uid: str = "backlog-slo"
    """Dashboard UID prefix; the environment name is appended. Default backlog-slo."""


def _thresholds(*steps: tuple[float | None, str]) -> gdash.ThresholdsConfig:
    return gdash.ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE).steps([Threshold(value=v, color=c) for v, c in steps])


def _query(expr: str, legend: str, ref: str) -> prometheus.Dataquery:
    return prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref)


def build_dashboard(env: EnvironmentConfig, props: SloDashboardProps = SloDashboardProps()) -> dict[str, Any]:
    """The dashboard model as JSON-able data (stable key order)."""
    ds = DataSourceRef(type_val="prometheus", uid=env.grafana.datasource_uid)
    slo = env.slo
    who = "{{stream_name}}/{{consumer_name}}"
    budget = round(1 - slo.objective, 6)
    burn = lambda w: slo_rules.BURN_RATE.format(window=w)  # noqa: E731
    fast = slo_rules.burn_factor(slo_rules.BURN_WINDOWS[0], slo.budget_window_days)

    board = (
        gdash.Dashboard(f"NATS backlog SLO ({env.name})")
        .uid(f"{props.uid}-{env.name}")
        .tags(["nats", "jetstream", "slo", env.name])
        .refresh("30s")
        .time("now-6h", "now")
        .timezone("utc")
        .with_variable(
            gdash.QueryVariable("stream").label("Stream").datasource(ds).query("label_values(jetstream_backlog, stream_name)").multi(True).include_all(True)
        )
        .with_variable(
            gdash.QueryVariable("consumer").label("Consumer").datasource(ds)
            .query('label_values(jetstream_backlog{stream_name=~"$stream"}, consumer_name)').multi(True).include_all(True)
        )  # fmt: skip
        .with_row(gdash.Row("Drain SLO"))
        .with_panel(
            gauge.Panel().title(f"P95 drain time (target < {slo.drain_p95_seconds}s)").datasource(ds).unit("s").min(0)
            .max(slo.drain_cap_seconds).span(6).height(8)
            .thresholds(_thresholds((None, "green"), (slo.drain_p95_seconds * 0.8, "orange"), (slo.drain_p95_seconds, "red")))
            .with_target(_query(f"max({slo_rules.DRAIN_P95}{CONSUMER_VAR})", "P95", "A"))
        )  # fmt: skip
        .with_panel(
            stat.Panel().title(f"P99 drain time (cap {slo.drain_cap_seconds}s)").datasource(ds).unit("s").span(6).height(8)
            .thresholds(_thresholds((None, "green"), (slo.drain_cap_seconds * 0.8, "orange"), (slo.drain_cap_seconds, "red")))
            .with_target(_query(f"max({slo_rules.DRAIN_P99}{CONSUMER_VAR})", "P99", "A"))
        )  # fmt: skip
        .with_panel(
            timeseries.Panel().title(f"SLO violation ratio (budget {budget:.0%})").datasource(ds).unit("percentunit").min(0)
            .span(12).height(8).thresholds(_thresholds((None, "green"), (budget, "red")))
            .with_target(_query(f"max by (stream_name, consumer_name) ({slo_rules.SEED_RATIO_ALIASES['1h']}{CONSUMER_VAR})", f"1h {who}", "A"))
            .with_target(_query(f"max by (stream_name, consumer_name) ({slo_rules.SEED_RATIO_ALIASES['6h']}{CONSUMER_VAR})", f"6h {who}", "B"))
            .with_target(_query(f"max by (stream_name, consumer_name) ({slo_rules.SEED_RATIO_ALIASES['1d']}{CONSUMER_VAR})", f"24h {who}", "C"))
        )  # fmt: skip
        .with_panel(
            timeseries.Panel().title(f"Burn rate: fast (5m/1h) vs slow (6h/3d), page at {fast}x").datasource(ds).unit("x").min(0)
            .span(12).height(8).thresholds(_thresholds((None, "green"), (1, "orange"), (fast, "red")))
            .with_target(_query(f"{burn('5m')}{CONSUMER_VAR}", f"5m {who}", "A"))
            .with_target(_query(f"{burn('1h')}{CONSUMER_VAR}", f"1h {who}", "B"))
            .with_target(_query(f"{burn('6h')}{CONSUMER_VAR}", f"6h {who}", "C"))
            .with_target(_query(f"{burn('3d')}{CONSUMER_VAR}", f"3d {who}", "D"))
        )  # fmt: skip
        .with_panel(
            timeseries.Panel().title("Drains over the capped target").datasource(ds).unit("percentunit").min(0).span(12).height(6)
            .with_target(_query(f"{slo_rules.CAP_ERROR_RATIO.format(window='1h')}{CONSUMER_VAR}", f"1h {who}", "A"))
        )  # fmt: skip
        .with_row(gdash.Row("Backlog"))
        .with_panel(
            timeseries.Panel().title(f"Backlog per consumer (alert at {env.alerts.backlog_threshold})").datasource(ds).unit("short")
            .min(0).span(12).height(8)
            .thresholds(_thresholds((None, "green"), (env.alerts.backlog_threshold, "red")))
            .with_target(_query(f"{slo_rules.BACKLOG}{CONSUMER_VAR}", who, "A"))
        )  # fmt: skip
        .with_panel(
            timeseries.Panel().title("Ack pending").datasource(ds).unit("short").min(0).span(6).height(8)
            .with_target(_query(f"{slo_rules.ACK_PENDING}{CONSUMER_VAR}", who, "A"))
        )  # fmt: skip
        .with_panel(
            timeseries.Panel().title("Backlog growth (msg/s)").datasource(ds).unit("short").span(6).height(8)
            .with_target(_query(f"{slo_rules.BACKLOG_GROWTH}{CONSUMER_VAR}", who, "A"))
        )  # fmt: skip
        .with_row(gdash.Row("Scaling and health"))
        .with_panel(
            timeseries.Panel().title("HPA desired vs current replicas").datasource(ds).unit("short").min(0).span(12).height(8)
            .with_target(_query("kube_horizontalpodautoscaler_status_desired_replicas", "desired {{namespace}}/{{horizontalpodautoscaler}}", "A"))
            .with_target(_query("kube_horizontalpodautoscaler_status_current_replicas", "current {{namespace}}/{{horizontalpodautoscaler}}", "B"))
        )  # fmt: skip
        .with_panel(
            stat.Panel().title("Exporter up").datasource(ds).span(4).height(6)
            .thresholds(_thresholds((None, "red"), (1, "green")))
            .with_target(_query(f'sum(up{{job="{slo_rules.EXPORTER_JOB}",namespace="{env.namespace}"}})', "up", "A"))
        )  # fmt: skip
        .with_panel(
            stat.Panel().title("Unhealthy NATS servers").datasource(ds).span(4).height(6)
            .thresholds(_thresholds((None, "green"), (1, "red")))
            .with_target(_query("sum(gnatsd_healthz_status)", "unhealthy", "A"))
        )  # fmt: skip
        .with_panel(
            stat.Panel().title("Servers with JetStream disabled").datasource(ds).span(4).height(6)
            .thresholds(_thresholds((None, "green"), (1, "red")))
            .with_target(_query("sum(jetstream_server_jetstream_disabled)", "disabled", "A"))
        )  # fmt: skip
    )
    model: dict[str, Any] = json.loads(json.dumps(board.build(), cls=JSONEncoder, sort_keys=True))
    # The SDK leaves every panel id 0; unique ids in layout order keep ?viewPanel=N links stable across renders.
    for number, panel in enumerate(model.get("panels", []), start=1):
        panel["id"] = number
    return model


class SloDashboard(Construct):
    def __init__(self, scope: Construct, id: str, *, env: EnvironmentConfig, props: SloDashboardProps = SloDashboardProps()) -> None:
        super().__init__(scope, id)
        self.model = build_dashboard(env, props)
        labels = {**common_labels(props.name, "dashboard"), env.grafana.sidecar_label: "1"}
        k8s.KubeConfigMap(
            self,
            "configmap",
            metadata=k8s.ObjectMeta(
                name=props.name,
                namespace=env.grafana.namespace,
                labels=labels,
                annotations={"grafana_folder": env.grafana.folder},
            ),
            data={f"backlog-slo-{env.name}.json": json.dumps(self.model, indent=2, sort_keys=True) + "\n"},
        )
