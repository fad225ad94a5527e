"""Typed model of Prometheus Adapter discovery rules, and the rules this project ships.

The adapter's config format (rules / externalRules with seriesQuery, seriesFilters, resources, name, metricsQuery)
is documented in the prometheus-adapter repository, docs/config.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

from . import slo_rules
from .metrics import BY_CONSUMER, CONSUMER_LABEL, STREAM_LABEL

BACKLOG_METRIC = "backlog_current"
DRAIN_P95_METRIC = "backlog_drain_p95_seconds"
VIOLATIONS_METRIC = "slo_violations_hourly"


@dataclass(frozen=True, kw_only=True)
class SeriesFilter:
    """``is`` keeps series whose name matches the regex, ``is_not`` drops them."""

    is_: str | None = None
    is_not: str | None = None

    def render(self) -> dict[str, str]:
        return {"is": self.is_} if self.is_ is not None else {"isNot": self.is_not or ""}


@dataclass(frozen=True, kw_only=True)
class AdapterRule:
    """One adapter discovery rule."""

    series_query: str
    """Prometheus series selector the adapter lists to discover metrics."""
    metrics_query: str
    """Go template (<<.Series>>, <<.LabelMatchers>>, <<.GroupBy>>) run for each HPA request."""
    name_matches: str = "^(.*)$"
    """Regex on the series name. Default: the whole name."""
    name_as: str = "$1"
    """Name the metric is exposed as. Default: the first capture group."""
    series_filters: tuple[SeriesFilter, ...] = ()
    resource_overrides: tuple[tuple[str, str], ...] = ()
    """(label, resource) pairs mapping series labels to Kubernetes resources."""
    namespaced: bool = True
    """External rules only: False stops the adapter injecting the HPA's namespace as a label matcher."""
    external: bool = True
    """True for externalRules (external.metrics.k8s.io), False for rules (custom.metrics.k8s.io)."""

    @property
    def series_metric(self) -> str:
        """The metric name the seriesQuery selects (its bare name or __name__ matcher)."""
        match = re.match(r"^\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{|$)", self.series_query)
        if match:
            return match.group(1)
        match = re.search(r'__name__\s*=\s*"([^"]+)"', self.series_query)
        if match:
            return match.group(1)
        raise ValueError(f"cannot tell the metric of seriesQuery {self.series_query!r}")

    @property
    def exposed_name(self) -> str:
        """The metric name the HPA must use: name.as applied to the series name."""
        return re.sub(self.name_matches, self.name_as.replace("$", "\\"), self.series_metric, count=1)

    def render(self) -> dict[str, Any]:
        resources: dict[str, Any] = {}
        if self.resource_overrides:
            resources["overrides"] = {label: {"resource": resource} for label, resource in self.resource_overrides}
        if self.external and not self.namespaced:
            resources["namespaced"] = False
        rendered: dict[str, Any] = {"seriesQuery": self.series_query}
        if self.series_filters:
            rendered["seriesFilters"] = [f.render() for f in self.series_filters]
        rendered["resources"] = resources
        rendered["name"] = {"matches": self.name_matches, "as": self.name_as}
        rendered["metricsQuery"] = self.metrics_query
        return rendered


@dataclass(frozen=True, kw_only=True)
class AdapterRules:
    """The adapter's whole config file."""

    rules: tuple[AdapterRule, ...] = ()
    external_rules: tuple[AdapterRule, ...] = ()

    def render(self) -> dict[str, Any]:
        return {
            "rules": [r.render() for r in self.rules],
            "externalRules": [r.render() for r in self.external_rules],
        }

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.render(), sort_keys=False, width=200)

    def exposed(self) -> dict[str, AdapterRule]:
        return {r.exposed_name: r for r in (*self.rules, *self.external_rules)}


def _per_consumer_rule(recorded: str, exposed: str, aggregate: str) -> AdapterRule:
    # The series are per stream/consumer recordings (already de-duplicated across NATS servers),
    # aggregated again with max/sum over at most one series, so the HPA selector just narrows it.
    return AdapterRule(
        series_query=f'{recorded}{{{STREAM_LABEL}!="",{CONSUMER_LABEL}!=""}}',
        name_matches=f"^{recorded}$",
        name_as=exposed,
        metrics_query=f"{aggregate} by ({BY_CONSUMER}) (<<.Series>>{{<<.LabelMatchers>>}})",
        # NATS metrics live in the monitoring namespace, HPAs in the consumers' namespaces.
        namespaced=False,
    )


def shipped_rules() -> AdapterRules:
    """externalRules for backlog_current, backlog_drain_p95_seconds and slo_violations_hourly."""
    return AdapterRules(
        external_rules=(
            _per_consumer_rule(slo_rules.BACKLOG, BACKLOG_METRIC, "max"),
            _per_consumer_rule(slo_rules.DRAIN_P95, DRAIN_P95_METRIC, "max"),
            _per_consumer_rule(slo_rules.VIOLATIONS_1H, VIOLATIONS_METRIC, "sum"),
        )
    )


def render_metrics_query(rule: AdapterRule, matchers: dict[str, str], namespace: str | None = None) -> str:
    """Render a metricsQuery the way the adapter does for an external metric request.

    <<.Series>> is the series name, <<.LabelMatchers>> the HPA selector (plus namespace when the rule is
    namespaced), <<.GroupBy>> the labels of the resources mapped (none for our external rules).
    """
    parts = [f'{key}="{value}"' for key, value in sorted(matchers.items())]
    if rule.external and rule.namespaced and namespace:
        parts.append(f'namespace="{namespace}"')
    group_by = ",".join(label for label, _ in rule.resource_overrides)
    return (
        rule.metrics_query.replace("<<.Series>>", rule.series_metric)
        .replace("<<.LabelMatchers>>", ",".join(parts))
        .replace("<<.GroupBy>>", group_by)
    )

