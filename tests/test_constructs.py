"""Important properties of each construct's output."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cdk8s_app.adapter_rules import BACKLOG_METRIC, shipped_rules
from cdk8s_app.config import load_environment
from cdk8s_app.synth import render

from .conftest import ENVIRONMENTS, load_docs

ENVS = ["staging", "production"]


@pytest.fixture(scope="module", params=ENVS)
def env_docs(request: pytest.FixtureRequest, rendered: Path) -> tuple[str, dict]:
    return request.param, load_docs(rendered / request.param)


def workloads(docs: dict) -> list[dict]:
    return [d for d in docs.values() if d["kind"] == "Deployment"]


def test_services_select_their_deployment_pods(env_docs) -> None:
    _, docs = env_docs
    ns = "nats-autoscaling"
    for name in ("nats-exporter", "prometheus-adapter"):
        service = docs[f"Service/{ns}/{name}"]
        deployment = docs[f"Deployment/{ns}/{name}"]
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= pod_labels.items()
        assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
        assert "app.kubernetes.io/version" not in deployment["spec"]["selector"]["matchLabels"]
        port_names = {p["name"] for c in deployment["spec"]["template"]["spec"]["containers"] for p in c["ports"]}
        assert service["spec"]["ports"][0]["targetPort"] in port_names


def test_hpa_targets_the_consumer_deployment_and_backlog_metric(env_docs) -> None:
    name, docs = env_docs
    env = load_environment(ENVIRONMENTS / f"{name}.yaml")
    for consumer in env.consumers:
        hpa = docs[f"HorizontalPodAutoscaler/{consumer.namespace}/{consumer.name}"]
        assert hpa["apiVersion"] == "autoscaling/v2"
        assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": consumer.deployment}
        assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (consumer.min_replicas, consumer.max_replicas)
        backlog = hpa["spec"]["metrics"][0]["external"]
        assert backlog["metric"]["name"] == BACKLOG_METRIC
        assert backlog["metric"]["selector"]["matchLabels"] == {"stream_name": consumer.stream, "consumer_name": consumer.consumer}
        assert backlog["target"] == {"type": "AverageValue", "averageValue": consumer.backlog_target_per_replica}
        behavior = hpa["spec"]["behavior"]
        assert behavior["scaleUp"]["stabilizationWindowSeconds"] < behavior["scaleDown"]["stabilizationWindowSeconds"]


def test_second_metric_on_drain_p95_only_when_configured(rendered: Path) -> None:
    docs = load_docs(rendered / "production")
    assert [m["external"]["metric"]["name"] for m in docs["HorizontalPodAutoscaler/orders/orders-processor"]["spec"]["metrics"]] == [
        "backlog_current",
        "backlog_drain_p95_seconds",
    ]
    assert len(docs["HorizontalPodAutoscaler/payments/payments-settler"]["spec"]["metrics"]) == 1


def test_workloads_are_hardened(env_docs) -> None:
    _, docs = env_docs
    for deployment in workloads(docs):
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for container in pod["containers"]:
            sc = container["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["capabilities"] == {"drop": ["ALL"]}
            assert "@sha256:" in container["image"]
            assert set(container["resources"]) == {"requests", "limits"}
            assert "livenessProbe" in container and "readinessProbe" in container


def test_exporter_polls_jetstream_and_health_endpoints(env_docs) -> None:
    _, docs = env_docs
    args = docs["Deployment/nats-autoscaling/nats-exporter"]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert {"-jsz=all", "-varz", "-connz", "-healthz"} <= set(args)
    assert args[-1] == "http://nats.nats.svc:8222/"  # the exporter's healthz collector needs the slash (see test_e2e)


def test_servicemonitor_scrapes_the_service_port(env_docs) -> None:
    _, docs = env_docs
    monitor = docs["ServiceMonitor/nats-autoscaling/nats-exporter"]
    service = docs["Service/nats-autoscaling/nats-exporter"]
    assert monitor["spec"]["endpoints"][0]["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_apiservices_verify_tls_through_cert_manager(env_docs) -> None:
    _, docs = env_docs
    for group in ("custom.metrics.k8s.io", "external.metrics.k8s.io"):
        api = docs[f"APIService/v1beta1.{group}"]
        assert api["spec"]["insecureSkipTLSVerify"] is False
        assert api["spec"]["service"] == {"name": "prometheus-adapter", "namespace": "nats-autoscaling", "port": 443}
        ns, cert = api["metadata"]["annotations"]["cert-manager.io/inject-ca-from"].split("/")
        assert f"Certificate/{ns}/{cert}" in docs
        assert int(api["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"]) > int(
            docs["Deployment/nats-autoscaling/prometheus-adapter"]["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"]
        )


def test_adapter_rbac_is_complete_and_names_its_service_account(env_docs) -> None:
    _, docs = env_docs
    sa = {"kind": "ServiceAccount", "name": "prometheus-adapter", "namespace": "nats-autoscaling"}
    assert docs["ClusterRoleBinding/prometheus-adapter-auth-delegator"]["roleRef"]["name"] == "system:auth-delegator"
    reader = docs["RoleBinding/kube-system/prometheus-adapter-auth-reader"]
    assert reader["roleRef"]["name"] == "extension-apiserver-authentication-reader"
    for binding in ("ClusterRoleBinding/prometheus-adapter-auth-delegator", "ClusterRoleBinding/prometheus-adapter-resource-reader"):
        assert docs[binding]["subjects"] == [sa]
    hpa = docs["ClusterRoleBinding/prometheus-adapter-hpa-metrics-reader"]
    assert hpa["subjects"] == [{"kind": "ServiceAccount", "name": "horizontal-pod-autoscaler", "namespace": "kube-system"}]
    rules = docs["ClusterRole/prometheus-adapter-metrics-reader"]["rules"]
    assert rules == [
        {"apiGroups": ["external.metrics.k8s.io"], "resources": sorted(shipped_rules().exposed()), "verbs": ["get", "list", "watch"]}
    ]


def test_adapter_config_checksum_rolls_the_deployment(env_copy, tmp_path: Path, rendered: Path) -> None:
    docs = load_docs(rendered / "staging")
    deployment = docs["Deployment/nats-autoscaling/prometheus-adapter"]
    config = docs["ConfigMap/nats-autoscaling/prometheus-adapter-config"]["data"]["config.yaml"]
    rules = yaml.safe_load(config)
    assert [r["name"]["as"] for r in rules["externalRules"]] == ["backlog_current", "backlog_drain_p95_seconds", "slo_violations_hourly"]
    assert all(r["resources"] == {"namespaced": False} for r in rules["externalRules"])
    assert deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
    assert deployment["spec"]["replicas"] == 2
    assert docs["PodDisruptionBudget/nats-autoscaling/prometheus-adapter"]["spec"]["minAvailable"] == 1


def test_adapter_rules_never_bare_sum_consumer_series() -> None:
    for rule in shipped_rules().external_rules:
        assert not rule.series_metric.startswith("jetstream_consumer_"), "adapter must read the de-duplicated recording"


def test_network_policies_open_the_right_paths(env_docs) -> None:
    _, docs = env_docs
    exporter = docs["NetworkPolicy/nats-autoscaling/nats-exporter"]["spec"]
    peer = exporter["ingress"][0]["from"][0]
    assert peer["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "monitoring"}
    assert exporter["ingress"][0]["ports"] == [{"port": 7777, "protocol": "TCP"}]
    assert exporter["egress"][0]["ports"] == [{"port": 8222, "protocol": "TCP"}]
    adapter = docs["NetworkPolicy/nats-autoscaling/prometheus-adapter"]["spec"]
    assert adapter["ingress"][0]["ports"] == [{"port": 6443, "protocol": "TCP"}]
    assert adapter["egress"][0]["ports"] == [{"port": 9090, "protocol": "TCP"}]


def test_dashboard_configmap_is_picked_up_by_the_sidecar(env_docs) -> None:
    name, docs = env_docs
    cm = docs["ConfigMap/nats-autoscaling/backlog-slo-dashboard"]
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    board = yaml.safe_load(cm["data"][f"backlog-slo-{name}.json"])
    gauge = next(p for p in board["panels"] if p.get("type") == "gauge")
    steps = gauge["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert steps[-1] == {"color": "red", "value": 600}


def test_argocd_applications_sync_each_environment_folder(rendered: Path) -> None:
    docs = load_docs(rendered / "argocd")
    for env in ENVS:
        appl = docs[f"Application/argocd/backlog-gitops-{env}"]
        assert appl["spec"]["source"]["path"] == f"dist/{env}"
        assert appl["spec"]["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
        assert appl["spec"]["ignoreDifferences"][0]["jsonPointers"] == ["/spec/caBundle"]
    assert docs["Application/argocd/backlog-gitops"]["spec"]["source"]["path"] == "dist/argocd"


def test_sync_waves_order_dependencies(env_docs) -> None:
    """Namespace, then the adapter (Argo CD waits for it to be Available), then the APIServices, then the HPAs."""
    _, docs = env_docs

    def wave(key: str) -> int:
        return int(docs[key]["metadata"].get("annotations", {}).get("argocd.argoproj.io/sync-wave", "0"))

    hpas = [k for k in docs if k.startswith("HorizontalPodAutoscaler/")]
    assert hpas
    assert wave("Namespace/nats-autoscaling") < wave("Deployment/nats-autoscaling/prometheus-adapter")
    for group in ("custom.metrics.k8s.io", "external.metrics.k8s.io"):
        assert wave("Deployment/nats-autoscaling/prometheus-adapter") < wave(f"APIService/v1beta1.{group}") < min(map(wave, hpas))


def test_rule_change_changes_checksum(env_copy, tmp_path: Path, rendered: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cdk8s_app import adapter_rules, app

    original = adapter_rules.shipped_rules()
    changed = adapter_rules.AdapterRules(external_rules=original.external_rules[:1])
    monkeypatch.setattr(app, "shipped_rules", lambda: changed)
    out = tmp_path / "out"
    render(ENVIRONMENTS, out, "staging")
    annotation = lambda root: load_docs(root / "staging")["Deployment/nats-autoscaling/prometheus-adapter"]["spec"]["template"]["metadata"][
        "annotations"
    ]["checksum/config"]  # noqa: E731
    assert annotation(out) != annotation(rendered)
