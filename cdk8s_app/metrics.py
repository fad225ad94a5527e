"""The metrics contract: every series name the rules, adapter, dashboard and validator may use.

Documented for humans in docs/metrics-contract.md; this module is the single source the code reads.
"""

from __future__ import annotations

from dataclasses import dataclass

STREAM_LABEL = "stream_name"
CONSUMER_LABEL = "consumer_name"
BY_CONSUMER = f"{STREAM_LABEL}, {CONSUMER_LABEL}"


@dataclass(frozen=True, kw_only=True)
class ContractMetric:
    name: str
    source: str
    """'exporter', 'application', 'kube-state-metrics' or 'prometheus'."""
    labels: tuple[str, ...]
    help: str


_EXPORTER_CONSUMER_LABELS = (
    "server_id", "server_name", "cluster", "domain", "meta_leader", "is_meta_leader", "account", "account_id",
    "stream_name", "stream_leader", "is_stream_leader", "consumer_name", "consumer_leader", "is_consumer_leader",
    "consumer_desc",
)  # fmt: skip

CONTRACT: tuple[ContractMetric, ...] = (
    ContractMetric(name="jetstream_consumer_num_pending", source="exporter", labels=_EXPORTER_CONSUMER_LABELS,
                   help="Messages in the stream not yet delivered to the consumer; one series per NATS server."),
    ContractMetric(name="jetstream_consumer_num_ack_pending", source="exporter", labels=_EXPORTER_CONSUMER_LABELS,
                   help="Messages delivered but not yet acknowledged; one series per NATS server."),
    ContractMetric(name="jetstream_consumer_num_redelivered", source="exporter", labels=_EXPORTER_CONSUMER_LABELS,
                   help="Messages redelivered to the consumer."),
    ContractMetric(name="jetstream_server_jetstream_disabled", source="exporter", labels=("server_id", "server_name", "cluster"),
                   help="1 when JetStream is disabled on the server."),
    ContractMetric(name="gnatsd_healthz_status", source="exporter", labels=("server_id",),
                   help="0 when the server's /healthz answers ok, 1 otherwise."),
    ContractMetric(name="gnatsd_varz_connections", source="exporter", labels=("server_id",), help="Current client connections."),
    ContractMetric(name="gnatsd_varz_max_connections", source="exporter", labels=("server_id",), help="Configured connection limit."),
    ContractMetric(name="gnatsd_varz_jetstream_stats_memory", source="exporter", labels=("server_id",),
                   help="Bytes of JetStream memory storage in use."),
    ContractMetric(name="gnatsd_varz_jetstream_config_max_memory", source="exporter", labels=("server_id",),
                   help="Configured JetStream memory storage limit."),
    ContractMetric(name="backlog_drain_seconds_bucket", source="application", labels=(STREAM_LABEL, CONSUMER_LABEL, "le"),
                   help="Histogram of seconds from publish to ack; must have buckets at the P95 and cap targets (600, 1200)."),
    ContractMetric(name="backlog_drain_seconds_count", source="application", labels=(STREAM_LABEL, CONSUMER_LABEL),
                   help="Total drains observed (the histogram's count)."),
    ContractMetric(name="backlog_drain_seconds_sum", source="application", labels=(STREAM_LABEL, CONSUMER_LABEL),
                   help="Sum of drain seconds (the histogram's sum)."),
    ContractMetric(name="slo_violation_events_total", source="application", labels=(STREAM_LABEL, CONSUMER_LABEL),
                   help="Drains the application saw exceed the P95 target."),
    ContractMetric(name="kube_horizontalpodautoscaler_status_current_replicas", source="kube-state-metrics",
                   labels=("namespace", "horizontalpodautoscaler"), help="HPA current replicas."),
    ContractMetric(name="kube_horizontalpodautoscaler_status_desired_replicas", source="kube-state-metrics",
                   labels=("namespace", "horizontalpodautoscaler"), help="HPA desired replicas."),
    ContractMetric(name="up", source="prometheus", labels=("job", "namespace", "instance"), help="Scrape health of a target."),
)  # fmt: skip

CONTRACT_NAMES = frozenset(m.name for m in CONTRACT)
