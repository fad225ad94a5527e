"""Environment configuration: loaded from environments/<env>.yaml, validated once, returned as typed objects.

Defaults live here, in one place, and are documented per field (the JSON schema repeats them for editors).
Nothing downstream sees a dict.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

import jsonschema
import yaml

from .durations import parse_duration
from .errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SCHEMA_PATH = PROJECT_ROOT / "schemas" / "environment.schema.json"

SelectPolicy = Literal["Max", "Min", "Disabled"]
ProfileKind = Literal["steady", "step", "ramp", "spikes"]


@dataclass(frozen=True, kw_only=True)
class ResourceSpec:
    """CPU/memory requests and limits of one container."""

    cpu_request: str
    memory_request: str
    cpu_limit: str
    memory_limit: str


@dataclass(frozen=True, kw_only=True)
class NatsConfig:
    monitoring_url: str
    """HTTP monitoring endpoint of the NATS cluster, polled by the exporter."""
    namespace: str
    """Namespace NATS runs in."""
    pod_selector: dict[str, str] = field(default_factory=lambda: {"app.kubernetes.io/name": "nats"})
    """Labels of the NATS server pods. Default {app.kubernetes.io/name: nats}."""
    monitoring_port: int = 8222
    """NATS monitoring port. Default 8222."""
    cluster_size: int = 3
    """NATS servers; each reports every consumer. Default 3."""


@dataclass(frozen=True, kw_only=True)
class PrometheusConfig:
    url: str
    """Prometheus base URL the adapter queries."""
    namespace: str
    """Namespace Prometheus runs in."""
    pod_selector: dict[str, str] = field(default_factory=lambda: {"app.kubernetes.io/name": "prometheus"})
    """Labels of the Prometheus pods. Default {app.kubernetes.io/name: prometheus}."""
    rule_selector_labels: dict[str, str] = field(default_factory=lambda: {"release": "kube-prometheus-stack"})
    """Labels the operator selects PrometheusRules/ServiceMonitors by. Default {release: kube-prometheus-stack}."""
    scrape_interval: str = "15s"
    """ServiceMonitor scrape interval. Default 15s."""


@dataclass(frozen=True, kw_only=True)
class ExporterConfig:
    image: str
    """prometheus-nats-exporter image pinned by digest."""
    replicas: int = 1
    """Exporter replicas. Default 1."""
    resources: ResourceSpec = ResourceSpec(cpu_request="50m", memory_request="64Mi", cpu_limit="200m", memory_limit="128Mi")
    """Default requests 50m/64Mi, limits 200m/128Mi."""


@dataclass(frozen=True, kw_only=True)
class AdapterConfig:
    image: str
    """Prometheus Adapter image pinned by digest."""
    replicas: int = 2
    """Adapter replicas; 2 keeps the metrics API up during a rollout. Default 2."""
    metrics_relist_interval: str = "1m"
    """How often the adapter re-lists series. Default 1m."""
    resources: ResourceSpec = ResourceSpec(cpu_request="100m", memory_request="128Mi", cpu_limit="500m", memory_limit="256Mi")
    """Default requests 100m/128Mi, limits 500m/256Mi."""


@dataclass(frozen=True, kw_only=True)
class SloConfig:
    drain_p95_seconds: int = 600
    """P95 backlog drain target. Default 600."""
    drain_cap_seconds: int = 1200
    """Capped drain target. Default 1200."""
    objective: float = 0.95
    """Share of drains that must finish within drain_p95_seconds. Default 0.95."""
    cap_objective: float = 0.99
    """Share of drains that must finish within drain_cap_seconds. Default 0.99."""
    budget_window_days: int = 30
    """Error-budget window. Default 30."""


@dataclass(frozen=True, kw_only=True)
class AlertConfig:
    backlog_threshold: int = 3000
    """Backlog above which SustainedBacklog* count. Default 3000 (the seed's HPA trigger)."""
    warning_for_seconds: int = 600
    """SustainedBacklogWarning 'for'. Default 10m."""
    critical_for_seconds: int = 900
    """SustainedBacklogCritical 'for'. Default 15m."""
    ack_pending_threshold: int = 1000
    """AckPendingHigh threshold. Default 1000."""
    ack_pending_for_seconds: int = 300
    """AckPendingHigh 'for'. Default 5m."""
    exporter_down_for_seconds: int = 120
    """NatsExporterDown 'for'. Default 2m."""
    memory_pressure_ratio: float = 0.85
    """NatsMemoryPressure ratio. Default 0.85."""
    connection_pressure_ratio: float = 0.8
    """NatsConnectionPressure ratio. Default 0.8."""
    runbook_base_url: str = "https://github.com/backlog-gitops/backlog-gitops/blob/main/docs/runbook.md"
    """Base URL of docs/runbook.md."""


@dataclass(frozen=True, kw_only=True)
class GrafanaConfig:
    namespace: str
    """Namespace the Grafana sidecar watches. Default: the environment namespace."""
    sidecar_label: str = "grafana_dashboard"
    """Label key the Grafana sidecar selects dashboards by. Default grafana_dashboard."""
    folder: str = "NATS"
    """Grafana folder. Default NATS."""
    datasource_uid: str = "prometheus"
    """Prometheus datasource UID. Default prometheus."""


@dataclass(frozen=True, kw_only=True)
class ArgoConfig:
    repo_url: str
    """Git URL of this repository as Argo CD reaches it."""
    target_revision: str = "main"
    """Revision Argo CD syncs. Default main."""
    namespace: str = "argocd"
    """Argo CD namespace. Default argocd."""
    project: str = "default"
    """AppProject. Default default."""
    destination_server: str = "https://kubernetes.default.svc"
    """Cluster API URL. Default in-cluster."""


@dataclass(frozen=True, kw_only=True)
class ScalingRules:
    """One direction of HPA ``behavior``."""

    stabilization_window_seconds: int
    pods_per_period: int | None
    percent_per_period: int | None
    period_seconds: int
    select_policy: SelectPolicy


DEFAULT_SCALE_UP = ScalingRules(
    stabilization_window_seconds=0, pods_per_period=4, percent_per_period=100, period_seconds=15, select_policy="Max"
)
DEFAULT_SCALE_DOWN = ScalingRules(
    stabilization_window_seconds=300, pods_per_period=None, percent_per_period=10, period_seconds=60, select_policy="Max"
)


@dataclass(frozen=True, kw_only=True)
class LoadProfile:
    """A load shape simulate drives a consumer with."""

    name: str
    kind: ProfileKind
    base_rate: float = 0.0
    peak_rate: float = 0.0
    start_seconds: int = 60
    duration_seconds: int = 600
    period_seconds: int = 600
    horizon_seconds: int = 3600


@dataclass(frozen=True, kw_only=True)
class ConsumerConfig:
    name: str
    """Consumer id, unique in the environment; names the HPA."""
    namespace: str
    """Namespace of the Deployment and its HPA."""
    deployment: str
    """Deployment the HPA scales."""
    stream: str
    """JetStream stream."""
    consumer: str
    """Durable consumer."""
    min_replicas: int
    max_replicas: int
    throughput_per_replica: float
    """Messages/s one replica processes."""
    backlog_target_per_replica: int = 3000
    """AverageValue target of the backlog metric. Default 3000."""
    pod_startup_seconds: int = 30
    """Seconds until a new replica is ready. Default 30."""
    drain_p95_target: int | None = None
    """Optional Value target on drain P95 seconds. Default off."""
    scale_up: ScalingRules = DEFAULT_SCALE_UP
    scale_down: ScalingRules = DEFAULT_SCALE_DOWN
    load_profiles: tuple[LoadProfile, ...] = ()


@dataclass(frozen=True, kw_only=True)
class EnvironmentConfig:
    """One validated environment file."""

    name: str
    source: str
    """Path of the file it was loaded from, for messages."""
    kubernetes_version: str
    namespace: str
    nats: NatsConfig
    prometheus: PrometheusConfig
    exporter: ExporterConfig
    adapter: AdapterConfig
    slo: SloConfig
    alerts: AlertConfig
    grafana: GrafanaConfig
    argocd: ArgoConfig
    consumers: tuple[ConsumerConfig, ...]

    def consumer(self, name: str) -> ConsumerConfig:
        for consumer in self.consumers:
            if consumer.name == name:
                return consumer
        raise KeyError(name)


@cache
def environment_schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text())  # type: ignore[no-any-return]


def _json_path(parts: Any) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


@cache
def _compose(text: str) -> yaml.Node | None:
    """The YAML node tree of a file, parsed once however many errors it has."""
    try:
        return yaml.compose(text)
    except yaml.YAMLError:
        return None


def _line_of(text: str, parts: list[Any]) -> int | None:
    """Line (1-based) of the node at ``parts`` in the YAML text, for messages; None if not found."""
    node = _compose(text)
    line = node.start_mark.line + 1 if node else None
    for part in parts:
        if isinstance(node, yaml.MappingNode):
            match = [(k, v) for k, v in node.value if k.value == part]
            if not match:
                return line
            key, node = match[0]
            line = key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _fix_for(error: jsonschema.ValidationError) -> str:
    validator = error.validator
    if validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        return f"remove the key or use one of: {', '.join(allowed)}"
    if validator == "required":
        return "add the missing key (see schemas/environment.schema.json for its meaning)"
    if validator == "type":
        return f"use a value of type {error.validator_value}"
    if validator == "pattern":
        description = error.schema.get("description")
        return description or f"match the pattern {error.validator_value}"
    if validator == "enum":
        return f"use one of {error.validator_value}"
    if validator in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minItems", "minProperties"):
        return f"respect {validator} {error.validator_value}"
    return "see schemas/environment.schema.json"


def _schema_errors(raw: Any, text: str, source: str) -> list[ConfigError]:
    validator = jsonschema.Draft202012Validator(environment_schema())
    errors = sorted(validator.iter_errors(raw), key=lambda e: (list(map(str, e.absolute_path)), e.message))
    result = []
    for error in errors:
        parts = list(error.absolute_path)
        problem = error.message
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            unknown = sorted(set(error.instance) - set(error.schema.get("properties", {})))
            parts.append(unknown[0])
            problem = f"unknown key {unknown[0]!r}"
        result.append(ConfigError(source, _json_path(parts), problem, _fix_for(error), _line_of(text, parts)))
    return result


def _resources(raw: dict[str, Any] | None, default: ResourceSpec) -> ResourceSpec:
    if raw is None:
        return default
    return ResourceSpec(
        cpu_request=raw["requests"]["cpu"],
        memory_request=raw["requests"]["memory"],
        cpu_limit=raw["limits"]["cpu"],
        memory_limit=raw["limits"]["memory"],
    )


def _scaling(raw: dict[str, Any] | None, default: ScalingRules) -> ScalingRules:
    if raw is None:
        return default
    explicit_policy = "podsPerPeriod" in raw or "percentPerPeriod" in raw
    return ScalingRules(
        stabilization_window_seconds=raw.get("stabilizationWindowSeconds", default.stabilization_window_seconds),
        pods_per_period=raw.get("podsPerPeriod") if explicit_policy else default.pods_per_period,
        percent_per_period=raw.get("percentPerPeriod") if explicit_policy else default.percent_per_period,
        period_seconds=raw.get("periodSeconds", default.period_seconds),
        select_policy=raw.get("selectPolicy", default.select_policy),
    )


def _profile(raw: dict[str, Any]) -> LoadProfile:
    defaults = LoadProfile(name="", kind="steady")
    return LoadProfile(
        name=raw["name"],
        kind=raw["kind"],
        base_rate=float(raw.get("baseRate", defaults.base_rate)),
        peak_rate=float(raw.get("peakRate", defaults.peak_rate)),
        start_seconds=raw.get("startSeconds", defaults.start_seconds),
        duration_seconds=raw.get("durationSeconds", defaults.duration_seconds),
        period_seconds=raw.get("periodSeconds", defaults.period_seconds),
        horizon_seconds=raw.get("horizonSeconds", defaults.horizon_seconds),
    )


def _consumer(raw: dict[str, Any]) -> ConsumerConfig:
    defaults = ConsumerConfig(
        name="", namespace="", deployment="", stream="", consumer="", min_replicas=1, max_replicas=1, throughput_per_replica=1
    )
    return ConsumerConfig(
        name=raw["name"],
        namespace=raw["namespace"],
        deployment=raw["deployment"],
        stream=raw["stream"],
        consumer=raw["consumer"],
        min_replicas=raw["minReplicas"],
        max_replicas=raw["maxReplicas"],
        throughput_per_replica=float(raw["throughputPerReplica"]),
        backlog_target_per_replica=raw.get("backlogTargetPerReplica", defaults.backlog_target_per_replica),
        pod_startup_seconds=raw.get("podStartupSeconds", defaults.pod_startup_seconds),
        drain_p95_target=raw.get("drainP95Target"),
        scale_up=_scaling(raw.get("scaleUp"), DEFAULT_SCALE_UP),
        scale_down=_scaling(raw.get("scaleDown"), DEFAULT_SCALE_DOWN),
        load_profiles=tuple(_profile(p) for p in raw.get("loadProfiles", [])),
    )


def _build(raw: dict[str, Any], source: str) -> EnvironmentConfig:
    nats_raw, prom_raw = raw["nats"], raw["prometheus"]
    nats_defaults = NatsConfig(monitoring_url="", namespace="")
    prom_defaults = PrometheusConfig(url="", namespace="")
    slo_raw, alerts_raw = raw.get("slo", {}), raw.get("alerts", {})
    slo_d, alert_d = SloConfig(), AlertConfig()
    grafana_raw, argo_raw = raw.get("grafana", {}), raw["argocd"]
    argo_d = ArgoConfig(repo_url="")

    def dur(key: str, default: int) -> int:
        return parse_duration(alerts_raw[key]) if key in alerts_raw else default

    return EnvironmentConfig(
        name=raw["name"],
        source=source,
        kubernetes_version=raw["kubernetesVersion"],
        namespace=raw["namespace"],
        nats=NatsConfig(
            monitoring_url=nats_raw["monitoringUrl"].rstrip("/"),
            namespace=nats_raw["namespace"],
            pod_selector=nats_raw.get("podSelector", nats_defaults.pod_selector),
            monitoring_port=nats_raw.get("monitoringPort", nats_defaults.monitoring_port),
            cluster_size=nats_raw.get("clusterSize", nats_defaults.cluster_size),
        ),
        prometheus=PrometheusConfig(
            url=prom_raw["url"].rstrip("/"),
            namespace=prom_raw["namespace"],
            pod_selector=prom_raw.get("podSelector", prom_defaults.pod_selector),
            rule_selector_labels=prom_raw.get("ruleSelectorLabels", prom_defaults.rule_selector_labels),
            scrape_interval=prom_raw.get("scrapeInterval", prom_defaults.scrape_interval),
        ),
        exporter=ExporterConfig(
            image=raw["images"]["exporter"],
            replicas=raw.get("exporter", {}).get("replicas", 1),
            resources=_resources(raw.get("exporter", {}).get("resources"), ExporterConfig(image="").resources),
        ),
        adapter=AdapterConfig(
            image=raw["images"]["adapter"],
            replicas=raw.get("adapter", {}).get("replicas", 2),
            metrics_relist_interval=raw.get("adapter", {}).get("metricsRelistInterval", "1m"),
            resources=_resources(raw.get("adapter", {}).get("resources"), AdapterConfig(image="").resources),
        ),
        slo=SloConfig(
            drain_p95_seconds=slo_raw.get("drainP95Seconds", slo_d.drain_p95_seconds),
            drain_cap_seconds=slo_raw.get("drainCapSeconds", slo_d.drain_cap_seconds),
            objective=float(slo_raw.get("objective", slo_d.objective)),
            cap_objective=float(slo_raw.get("capObjective", slo_d.cap_objective)),
            budget_window_days=slo_raw.get("budgetWindowDays", slo_d.budget_window_days),
        ),
        alerts=AlertConfig(
            backlog_threshold=alerts_raw.get("backlogThreshold", alert_d.backlog_threshold),
            warning_for_seconds=dur("warningFor", alert_d.warning_for_seconds),
            critical_for_seconds=dur("criticalFor", alert_d.critical_for_seconds),
            ack_pending_threshold=alerts_raw.get("ackPendingThreshold", alert_d.ack_pending_threshold),
            ack_pending_for_seconds=dur("ackPendingFor", alert_d.ack_pending_for_seconds),
            exporter_down_for_seconds=dur("exporterDownFor", alert_d.exporter_down_for_seconds),
            memory_pressure_ratio=float(alerts_raw.get("memoryPressureRatio", alert_d.memory_pressure_ratio)),
            connection_pressure_ratio=float(alerts_raw.get("connectionPressureRatio", alert_d.connection_pressure_ratio)),
            runbook_base_url=alerts_raw.get("runbookBaseUrl", alert_d.runbook_base_url),
        ),
        grafana=GrafanaConfig(
            namespace=grafana_raw.get("namespace", raw["namespace"]),
            sidecar_label=grafana_raw.get("sidecarLabel", "grafana_dashboard"),
            folder=grafana_raw.get("folder", "NATS"),
            datasource_uid=grafana_raw.get("datasourceUid", "prometheus"),
        ),
        argocd=ArgoConfig(
            repo_url=argo_raw["repoURL"],
            target_revision=argo_raw.get("targetRevision", argo_d.target_revision),
            namespace=argo_raw.get("namespace", argo_d.namespace),
            project=argo_raw.get("project", argo_d.project),
            destination_server=argo_raw.get("destinationServer", argo_d.destination_server),
        ),
        consumers=tuple(_consumer(c) for c in raw["consumers"]),
    )


def _semantic_errors(env: EnvironmentConfig, text: str, expected_name: str) -> list[ConfigError]:
    """Invariants the schema cannot express; each message quotes the fields."""
    errors: list[ConfigError] = []

    def add(parts: list[Any], problem: str, fix: str) -> None:
        errors.append(ConfigError(env.source, _json_path(parts), problem, fix, _line_of(text, parts)))

    if env.name != expected_name:
        add(["name"], f"'name' ({env.name}) differs from the file name ({expected_name})", f"set name: {expected_name}")
    if env.slo.drain_cap_seconds <= env.slo.drain_p95_seconds:
        add(
            ["slo", "drainCapSeconds"],
            f"'drainCapSeconds' ({env.slo.drain_cap_seconds}) must be > 'drainP95Seconds' ({env.slo.drain_p95_seconds})",
            "raise drainCapSeconds or lower drainP95Seconds",
        )
    if env.alerts.critical_for_seconds <= env.alerts.warning_for_seconds:
        add(
            ["alerts", "criticalFor"],
            f"'criticalFor' ({env.alerts.critical_for_seconds}s) must be longer than 'warningFor' ({env.alerts.warning_for_seconds}s)",
            "make criticalFor longer than warningFor",
        )
    seen: dict[str, int] = {}
    pairs: dict[tuple[str, str], int] = {}
    for index, consumer in enumerate(env.consumers):
        if consumer.min_replicas > consumer.max_replicas:
            add(
                ["consumers", index, "minReplicas"],
                f"'minReplicas' ({consumer.min_replicas}) must be <= 'maxReplicas' ({consumer.max_replicas})",
                "lower minReplicas or raise maxReplicas",
            )
        if consumer.name in seen:
            add(["consumers", index, "name"], f"duplicate consumer name {consumer.name!r} (also consumers[{seen[consumer.name]}])", "give each consumer a unique name")
        seen.setdefault(consumer.name, index)
        key = (consumer.stream, consumer.consumer)
        if key in pairs:
            add(
                ["consumers", index, "consumer"],
                f"stream/consumer {key[0]}/{key[1]} is already scaled by consumers[{pairs[key]}]",
                "scale each durable consumer with one HPA only",
            )
        pairs.setdefault(key, index)
        for direction in ("scaleUp", "scaleDown"):
            rules = consumer.scale_up if direction == "scaleUp" else consumer.scale_down
            if rules.select_policy != "Disabled" and rules.pods_per_period is None and rules.percent_per_period is None:
                add(
                    ["consumers", index, direction],
                    "no scaling policy: neither podsPerPeriod nor percentPerPeriod is set",
                    "set podsPerPeriod and/or percentPerPeriod, or selectPolicy: Disabled",
                )
        names = [p.name for p in consumer.load_profiles]
        for p_index, profile in enumerate(consumer.load_profiles):
            if names.index(profile.name) != p_index:
                add(["consumers", index, "loadProfiles", p_index, "name"], f"duplicate load profile {profile.name!r}", "rename it")
    return errors


def load_environment(path: Path) -> EnvironmentConfig:
    """Load and validate one environment file; raises ConfigError with every problem found."""
    source = _display(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(source, "", f"cannot read file: {exc.strerror}", "check the path") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ConfigError(
            source, "", f"not valid YAML: {getattr(exc, 'problem', exc)}", "fix the YAML syntax", mark.line + 1 if mark else None
        ) from None
    errors = _schema_errors(raw, text, source)
    if not errors:
        env = _build(raw, source)
        errors = _semantic_errors(env, text, path.stem)
        if not errors:
            return env
    raise ConfigErrors(errors)


class ConfigErrors(ConfigError):
    """Several problems in one file; the message lists them all, one per line."""

    def __init__(self, errors: list[ConfigError]) -> None:
        first = errors[0]
        super().__init__(first.file, first.path, first.problem, first.fix, first.line)
        self.errors = errors
        self.args = ("\n".join(str(e) for e in errors),)

    def __str__(self) -> str:
        return str(self.args[0])


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def environment_files(env_dir: Path, only: str | None = None) -> list[Path]:
    """The environment files to render, sorted; ``only`` picks one by name."""
    if not env_dir.is_dir():
        raise ConfigError(_display(env_dir), "", "environments folder not found", "run from the project root or pass --environments")
    files = sorted(p for p in env_dir.glob("*.yaml") if not p.name.startswith("_"))
    if only is not None:
        files = [p for p in files if p.stem == only]
        if not files:
            known = ", ".join(p.stem for p in sorted(env_dir.glob("*.yaml"))) or "none"
            raise ConfigError(_display(env_dir), "", f"no environment named {only!r}", f"use one of: {known}")
    if not files:
        raise ConfigError(_display(env_dir), "", "no environment files (*.yaml)", "add environments/<name>.yaml")
    return files


def load_environments(env_dir: Path, only: str | None = None) -> list[EnvironmentConfig]:
    """Load every environment (or one); collects the errors of all files before raising."""
    envs: list[EnvironmentConfig] = []
    errors: list[ConfigError] = []
    for path in environment_files(env_dir, only):
        try:
            envs.append(load_environment(path))
        except ConfigErrors as exc:
            errors.extend(exc.errors)
        except ConfigError as exc:
            errors.append(exc)
    if errors:
        raise ConfigErrors(errors)
    return envs
