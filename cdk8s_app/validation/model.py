"""Findings, results and the rendered manifests a validation runs over."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from ..adapter_rules import AdapterRule, AdapterRules, SeriesFilter

# libyaml's safe parser when PyYAML was built with it: several times faster on a fleet's dist/.
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True, kw_only=True)
class Finding:
    rule: str
    """Rule id, e.g. XREF001."""
    env: str
    file: str
    obj: str
    """Kind/namespace/name (Kind/name for cluster-scoped objects)."""
    message: str
    fix: str


@dataclass(kw_only=True)
class Result:
    findings: list[Finding] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)
    """Rule ids that ran, in order."""

    @property
    def ok(self) -> bool:
        return not self.findings


@dataclass(frozen=True, kw_only=True)
class Manifest:
    path: Path
    doc: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.doc.get("kind", ""))

    @property
    def name(self) -> str:
        return str(self.doc.get("metadata", {}).get("name", ""))

    @property
    def namespace(self) -> str | None:
        return self.doc.get("metadata", {}).get("namespace")

    @property
    def ref(self) -> str:
        return "/".join(x for x in (self.kind, self.namespace, self.name) if x)

    @property
    def spec(self) -> dict[str, Any]:
        return self.doc.get("spec") or {}


@dataclass(frozen=True, kw_only=True)
class RecordedRule:
    record: str
    expr: str


@dataclass(frozen=True, kw_only=True)
class AlertRule:
    alert: str
    expr: str


@dataclass(kw_only=True)
class EnvManifests:
    """Every rendered manifest of one environment, with accessors for the parts cross-checks need."""

    env: str
    folder: Path
    manifests: list[Manifest]

    def of(self, kind: str) -> list[Manifest]:
        return [m for m in self.manifests if m.kind == kind]

    def find(self, kind: str, name: str, namespace: str | None = None) -> Manifest | None:
        return next((m for m in self.of(kind) if m.name == name and (namespace is None or m.namespace == namespace)), None)

    def rel(self, manifest: Manifest) -> str:
        return f"{self.folder.name}/{manifest.path.name}"

    @cached_property
    def adapter_configs(self) -> list[tuple[Manifest, AdapterRules]]:
        """ConfigMaps that hold a Prometheus Adapter config.yaml, parsed into the typed rule model."""
        found = []
        for cm in self.of("ConfigMap"):
            text = (cm.doc.get("data") or {}).get("config.yaml")
            if text is None:
                continue
            raw = yaml.load(text, Loader=YAML_LOADER) or {}
            if not isinstance(raw, dict) or not ({"rules", "externalRules"} & set(raw)):
                continue
            found.append((cm, AdapterRules(rules=_parse_rules(raw.get("rules"), False), external_rules=_parse_rules(raw.get("externalRules"), True))))
        return found

    @cached_property
    def rule_groups(self) -> list[tuple[Manifest, list[dict[str, Any]]]]:
        return [(m, list(m.spec.get("groups") or [])) for m in self.of("PrometheusRule")]

    @cached_property
    def recorded(self) -> dict[str, RecordedRule]:
        out: dict[str, RecordedRule] = {}
        for _, groups in self.rule_groups:
            for group in groups:
                for rule in group.get("rules") or []:
                    if "record" in rule:
                        out.setdefault(rule["record"], RecordedRule(record=rule["record"], expr=str(rule["expr"])))
        return out

    @cached_property
    def alerts(self) -> list[AlertRule]:
        return [
            AlertRule(alert=rule["alert"], expr=str(rule["expr"]))
            for _, groups in self.rule_groups
            for group in groups
            for rule in group.get("rules") or []
            if "alert" in rule
        ]

    @cached_property
    def dashboards(self) -> list[tuple[Manifest, str, dict[str, Any]]]:
        out = []
        for cm in self.of("ConfigMap"):
            for key, text in sorted((cm.doc.get("data") or {}).items()):
                if key.endswith(".json"):
                    out.append((cm, key, json.loads(text)))
        return out


def _parse_rules(raw: Any, external: bool) -> tuple[AdapterRule, ...]:
    rules = []
    for item in raw or []:
        resources = item.get("resources") or {}
        overrides = tuple((label, spec.get("resource", "")) for label, spec in sorted((resources.get("overrides") or {}).items()))
        filters = tuple(SeriesFilter(is_=f.get("is"), is_not=f.get("isNot")) for f in item.get("seriesFilters") or [])
        name = item.get("name") or {}
        rules.append(
            AdapterRule(
                series_query=str(item.get("seriesQuery", "")),
                metrics_query=str(item.get("metricsQuery", "")),
                name_matches=name.get("matches", "^(.*)$"),
                name_as=name.get("as", "$1"),
                series_filters=filters,
                resource_overrides=overrides,
                namespaced=resources.get("namespaced", True),
                external=external,
            )
        )
    return tuple(rules)


def load_env_manifests(folder: Path) -> EnvManifests:
    manifests = []
    for path in sorted(folder.glob("*.yaml")):
        for doc in yaml.load_all(path.read_text(), Loader=YAML_LOADER):
            if doc:
                manifests.append(Manifest(path=path, doc=doc))
    return EnvManifests(env=folder.name, folder=folder, manifests=manifests)


# --- PromQL helpers -----------------------------------------------------------------------------------

_KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "inf", "nan", "atan2"}
_STRIP = [
    (re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\''), '""'),
    (re.compile(r"\{[^{}]*\}"), ""),
    (re.compile(r"\[[^\]]*\]"), ""),
    (re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)"), ""),
]
_IDENT = re.compile(r"(?<![\w:.$])([a-zA-Z_:][a-zA-Z0-9_:]*)(?![\w:])(\s*\()?")


def referenced_metrics(expr: str) -> set[str]:
    """Metric names a PromQL expression reads (function names, keywords and label names excluded).

    A lexical approximation of the PromQL grammar, sufficient for rule and dashboard expressions: strings,
    label matchers, ranges and grouping clauses are removed first, then bare identifiers not followed by
    '(' are metric names. Grafana variables ($var) are skipped.
    """
    text = expr
    for pattern, repl in _STRIP:
        text = pattern.sub(repl, text)
    return {m.group(1) for m in _IDENT.finditer(text) if not m.group(2) and m.group(1).lower() not in _KEYWORDS}


_BY = re.compile(r"\bby\s*\(([^)]*)\)")


def output_labels(expr: str, known: dict[str, frozenset[str]]) -> frozenset[str] | None:
    """Labels of the series an expression yields: its first 'by (...)' grouping (minus 'le' under
    histogram_quantile), else the labels of the first metric it reads. None when unknown."""
    match = _BY.search(expr)
    if match:
        labels = {label.strip() for label in match.group(1).split(",") if label.strip()}
        if "histogram_quantile" in expr:
            labels.discard("le")
        return frozenset(labels)
    for name in sorted(referenced_metrics(expr), key=expr.find):
        if name in known:
            return known[name]
    return None


def selector_label_matchers(series_query: str) -> set[str]:
    """Label names a series selector constrains (e.g. {stream_name!=""} -> {'stream_name'})."""
    braces = re.search(r"\{([^}]*)\}", series_query)
    if not braces:
        return set()
    return {m.group(1) for m in re.finditer(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)", braces.group(1))} - {"__name__"}
