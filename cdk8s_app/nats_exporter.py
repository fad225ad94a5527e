"""NatsExporter: prometheus-nats-exporter with JetStream metrics, its Service, ServiceMonitor, PDB and NetworkPolicy."""

from __future__ import annotations

from dataclasses import dataclass

import cdk8s
from cdk8s_plus_32 import k8s
from constructs import Construct

from .config import EnvironmentConfig
from .meta import (
    common_labels,
    dns_egress,
    namespace_peer,
    image_version,
    resource_requirements,
    restricted_container_security,
    restricted_pod_security,
    selector_labels,
    tcp,
)
from .slo_rules import EXPORTER_JOB


@dataclass(frozen=True, kw_only=True)
class NatsExporterProps:
    name: str = EXPORTER_JOB
    """Name of every object; also the Prometheus job label. Default nats-exporter."""
    port: int = 7777
    """Metrics port. Default 7777 (the exporter's default)."""
    port_name: str = "metrics"
    """Name of the metrics port, referenced by the ServiceMonitor. Default metrics."""
    endpoints: tuple[str, ...] = ("-varz", "-connz", "-healthz", "-jsz=all")
    """Monitoring endpoints polled: varz/connz for memory and connection alerts, healthz for server health,
    jsz=all for per-consumer JetStream metrics."""


class NatsExporter(Construct):
    def __init__(self, scope: Construct, id: str, *, env: EnvironmentConfig, props: NatsExporterProps = NatsExporterProps()) -> None:
        super().__init__(scope, id)
        self.props = props
        labels = common_labels(props.name, "metrics-exporter", image_version(env.exporter.image))
        self.selector = selector_labels(labels)
        meta = k8s.ObjectMeta(name=props.name, namespace=env.namespace, labels=labels)
        # The trailing slash matters: the exporter's healthz collector appends "healthz" to the URL as given
        # (found by the end-to-end test), while the other collectors add "/<endpoint>" (NATS redirects "//").
        self.args = (*props.endpoints, f"-port={props.port}", f"{env.nats.monitoring_url}/")
        probe = k8s.HttpGetAction(path="/metrics", port=k8s.IntOrString.from_string(props.port_name))

        k8s.KubeServiceAccount(self, "sa", metadata=meta, automount_service_account_token=False)
        k8s.KubeDeployment(
            self,
            "deployment",
            metadata=meta,
            spec=k8s.DeploymentSpec(
                replicas=env.exporter.replicas,
                revision_history_limit=3,
                selector=k8s.LabelSelector(match_labels=self.selector),
                template=k8s.PodTemplateSpec(
                    metadata=k8s.ObjectMeta(labels=labels),
                    spec=k8s.PodSpec(
                        service_account_name=props.name,
                        automount_service_account_token=False,
                        security_context=restricted_pod_security(),
                        containers=[
                            k8s.Container(
                                name="exporter",
                                image=env.exporter.image,
                                image_pull_policy="IfNotPresent",
                                args=list(self.args),
                                ports=[k8s.ContainerPort(name=props.port_name, container_port=props.port, protocol="TCP")],
                                security_context=restricted_container_security(),
                                resources=resource_requirements(
                                    env.exporter.resources.cpu_request,
                                    env.exporter.resources.memory_request,
                                    env.exporter.resources.cpu_limit,
                                    env.exporter.resources.memory_limit,
                                ),
                                liveness_probe=k8s.Probe(http_get=probe, initial_delay_seconds=10, period_seconds=20, timeout_seconds=5),
                                readiness_probe=k8s.Probe(http_get=probe, initial_delay_seconds=5, period_seconds=10, timeout_seconds=5),
                            )
                        ],
                    ),
                ),
            ),
        )
        k8s.KubeService(
            self,
            "service",
            metadata=meta,
            spec=k8s.ServiceSpec(
                selector=self.selector,
                ports=[
                    k8s.ServicePort(
                        name=props.port_name,
                        port=props.port,
                        target_port=k8s.IntOrString.from_string(props.port_name),
                        protocol="TCP",
                    )
                ],
            ),
        )
        monitor = cdk8s.ApiObject(
            self,
            "servicemonitor",
            api_version="monitoring.coreos.com/v1",
            kind="ServiceMonitor",
            metadata=cdk8s.ApiObjectMetadata(
                name=props.name, namespace=env.namespace, labels={**labels, **env.prometheus.rule_selector_labels}
            ),
        )
        monitor.add_json_patch(
            cdk8s.JsonPatch.add(
                "/spec",
                {
                    "endpoints": [{"interval": env.prometheus.scrape_interval, "path": "/metrics", "port": props.port_name}],
                    "jobLabel": "app.kubernetes.io/name",
                    "namespaceSelector": {"matchNames": [env.namespace]},
                    "selector": {"matchLabels": self.selector},
                },
            )
        )
        # One replica by default: a PDB with maxUnavailable 1 keeps drains possible while documenting intent.
        k8s.KubePodDisruptionBudget(
            self,
            "pdb",
            metadata=meta,
            spec=k8s.PodDisruptionBudgetSpec(
                max_unavailable=k8s.IntOrString.from_number(1), selector=k8s.LabelSelector(match_labels=self.selector)
            ),
        )
        k8s.KubeNetworkPolicy(
            self,
            "networkpolicy",
            metadata=meta,
            spec=k8s.NetworkPolicySpec(
                pod_selector=k8s.LabelSelector(match_labels=self.selector),
                policy_types=["Ingress", "Egress"],
                ingress=[
                    k8s.NetworkPolicyIngressRule(
                        from_=[
                            namespace_peer(env.prometheus.namespace, env.prometheus.pod_selector)
                        ],
                        ports=[tcp(props.port)],
                    )
                ],
                egress=[
                    k8s.NetworkPolicyEgressRule(
                        to=[
                            namespace_peer(env.nats.namespace, env.nats.pod_selector)
                        ],
                        ports=[tcp(env.nats.monitoring_port)],
                    ),
                    dns_egress(),
                ],
            ),
        )

