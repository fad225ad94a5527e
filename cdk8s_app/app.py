"""Composition: one chart per environment plus the Argo CD chart, built into a cdk8s App."""

from __future__ import annotations

from pathlib import Path

import cdk8s
from cdk8s_plus_32 import k8s
from constructs import Construct

from .adapter_rules import shipped_rules
from .argo_application import ArgoApplication, ArgoApplicationProps
from .config import EnvironmentConfig
from .consumer_autoscaler import ConsumerAutoscaler, ConsumerAutoscalerProps
from .meta import common_labels
from .nats_exporter import NatsExporter
from .prometheus_adapter import SYNC_WAVE, PrometheusAdapter, PrometheusAdapterProps
from .slo_dashboard import SloDashboard
from .slo_rules import SloRules

ARGOCD_CHART = "argocd"
DIST_PREFIX = "dist"


class EnvironmentChart(cdk8s.Chart):
    """Everything one environment runs; synthesized into dist/<env>/."""

    def __init__(self, scope: Construct, env: EnvironmentConfig) -> None:
        super().__init__(scope, env.name, disable_resource_name_hashes=True)
        namespaces = sorted({env.namespace, env.grafana.namespace})
        for ns in namespaces:
            k8s.KubeNamespace(
                self,
                f"namespace-{ns}",
                metadata=k8s.ObjectMeta(
                    name=ns,
                    labels={**common_labels(ns, "namespace"), "pod-security.kubernetes.io/enforce": "restricted"},
                    annotations={SYNC_WAVE: "-1"},
                ),
            )
        self.exporter = NatsExporter(self, "nats-exporter", env=env)
        self.adapter = PrometheusAdapter(self, "prometheus-adapter", env=env, props=PrometheusAdapterProps(rules=shipped_rules()))
        self.rules = SloRules(self, "slo-rules", env=env)
        self.dashboard = SloDashboard(self, "slo-dashboard", env=env)
        self.autoscalers = [
            ConsumerAutoscaler(self, f"autoscaler-{c.name}", props=ConsumerAutoscalerProps(consumer=c)) for c in env.consumers
        ]


class ArgoChart(cdk8s.Chart):
    """The root app-of-apps and one Application per environment; synthesized into dist/argocd/."""

    def __init__(self, scope: Construct, envs: list[EnvironmentConfig]) -> None:
        super().__init__(scope, ARGOCD_CHART, disable_resource_name_hashes=True)
        root = envs[0].argocd
        ArgoApplication(
            self,
            "root",
            props=ArgoApplicationProps(
                name="backlog-gitops", path=f"{DIST_PREFIX}/{ARGOCD_CHART}", argo=root, destination_namespace=root.namespace, ignore_ca_bundle=False
            ),
        )
        for env in envs:
            ArgoApplication(
                self,
                f"app-{env.name}",
                props=ArgoApplicationProps(
                    name=f"backlog-gitops-{env.name}", path=f"{DIST_PREFIX}/{env.name}", argo=env.argocd, destination_namespace=env.namespace
                ),
            )


def build_app(envs: list[EnvironmentConfig], outdir: Path, *, with_argocd: bool = True) -> cdk8s.App:
    """Compose the App; the caller decides when to synth (tests, diff and validate synth into temp folders)."""
    app = cdk8s.App(outdir=str(outdir), yaml_output_type=cdk8s.YamlOutputType.FOLDER_PER_CHART_FILE_PER_RESOURCE)
    for env in envs:
        EnvironmentChart(app, env)
    if with_argocd:
        ArgoChart(app, envs)
    return app
