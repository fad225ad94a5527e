"""ConsumerAutoscaler: one autoscaling/v2 HPA per consumer on its external backlog metric.

Backlog = pending + ack pending (KEDA's JetStream scaler calls it lag). AverageValue divides the backlog by the
current replica count, so the target reads "messages per replica".
"""

from __future__ import annotations

from dataclasses import dataclass

from cdk8s_plus_32 import k8s
from constructs import Construct

from .adapter_rules import BACKLOG_METRIC, DRAIN_P95_METRIC
from .config import ConsumerConfig, ScalingRules
from .meta import common_labels
from .metrics import CONSUMER_LABEL, STREAM_LABEL
from .prometheus_adapter import SYNC_WAVE


@dataclass(frozen=True, kw_only=True)
class ConsumerAutoscalerProps:
    consumer: ConsumerConfig
    """The consumer to scale."""
    backlog_metric: str = BACKLOG_METRIC
    """External metric carrying the backlog. Default backlog_current."""
    drain_metric: str = DRAIN_P95_METRIC
    """External metric carrying drain P95 seconds, used when the consumer sets drain_p95_target."""


def _rules(rules: ScalingRules) -> k8s.HpaScalingRulesV2:
    policies = []
    if rules.pods_per_period is not None:
        policies.append(k8s.HpaScalingPolicyV2(type="Pods", value=rules.pods_per_period, period_seconds=rules.period_seconds))
    if rules.percent_per_period is not None:
        policies.append(k8s.HpaScalingPolicyV2(type="Percent", value=rules.percent_per_period, period_seconds=rules.period_seconds))
    return k8s.HpaScalingRulesV2(
        stabilization_window_seconds=rules.stabilization_window_seconds,
        select_policy=rules.select_policy,
        policies=policies,
    )


class ConsumerAutoscaler(Construct):
    def __init__(self, scope: Construct, id: str, *, props: ConsumerAutoscalerProps) -> None:
        super().__init__(scope, id)
        c = props.consumer
        selector = k8s.LabelSelector(match_labels={STREAM_LABEL: c.stream, CONSUMER_LABEL: c.consumer})
        metrics = [
            k8s.MetricSpecV2(
                type="External",
                external=k8s.ExternalMetricSourceV2(
                    metric=k8s.MetricIdentifierV2(name=props.backlog_metric, selector=selector),
                    target=k8s.MetricTargetV2(type="AverageValue", average_value=k8s.Quantity.from_number(c.backlog_target_per_replica)),
                ),
            )
        ]
        if c.drain_p95_target is not None:
            metrics.append(
                k8s.MetricSpecV2(
                    type="External",
                    external=k8s.ExternalMetricSourceV2(
                        metric=k8s.MetricIdentifierV2(name=props.drain_metric, selector=selector),
                        target=k8s.MetricTargetV2(type="Value", value=k8s.Quantity.from_number(c.drain_p95_target)),
                    ),
                )
            )
        labels = {**common_labels(c.name, "autoscaler"), "backlog-gitops.dev/stream": c.stream, "backlog-gitops.dev/consumer": c.consumer}
        self.hpa = k8s.KubeHorizontalPodAutoscalerV2(
            self,
            "hpa",
            # After the APIServices (wave 1), so the HPA never starts with an unknown metric.
            metadata=k8s.ObjectMeta(name=c.name, namespace=c.namespace, labels=labels, annotations={SYNC_WAVE: "2"}),
            spec=k8s.HorizontalPodAutoscalerSpecV2(
                scale_target_ref=k8s.CrossVersionObjectReferenceV2(api_version="apps/v1", kind="Deployment", name=c.deployment),
                min_replicas=c.min_replicas,
                max_replicas=c.max_replicas,
                metrics=metrics,
                behavior=k8s.HorizontalPodAutoscalerBehaviorV2(scale_up=_rules(c.scale_up), scale_down=_rules(c.scale_down)),
            ),
        )
