"""validate: the shipped dist/ is clean, and every rule catches its broken case with a precise message."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from cdk8s_app.cli import app
from cdk8s_app.validation.runner import RULE_TITLES, validate

from .conftest import DIST, ENVIRONMENTS

NS = "nats-autoscaling"
Edit = Callable[[dict[str, Any]], None]


def broken(tmp_path: Path, file: str, edit: Edit) -> Path:
    """A copy of dist/ with one staging manifest edited."""
    dist = tmp_path / "dist"
    shutil.copytree(DIST, dist)
    path = dist / "staging" / file
    doc = yaml.safe_load(path.read_text())
    edit(doc)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return dist


def adapter_config(edit: Callable[[dict[str, Any]], None]) -> Edit:
    def apply(doc: dict[str, Any]) -> None:
        config = yaml.safe_load(doc["data"]["config.yaml"])
        edit(config)
        doc["data"]["config.yaml"] = yaml.safe_dump(config, sort_keys=False)

    return apply


def container(edit: Callable[[dict[str, Any]], None]) -> Edit:
    return lambda doc: edit(doc["spec"]["template"]["spec"]["containers"][0])


def rule_group(edit: Callable[[list[dict[str, Any]]], None], group: int = 0) -> Edit:
    return lambda doc: edit(doc["spec"]["groups"][group]["rules"])


def dashboard(edit: Callable[[dict[str, Any]], None]) -> Edit:
    def apply(doc: dict[str, Any]) -> None:
        key = next(iter(doc["data"]))
        board = json.loads(doc["data"][key])
        edit(board)
        doc["data"][key] = json.dumps(board)

    return apply


HPA = "HorizontalPodAutoscaler.orders-processor.k8s.yaml"
EXPORTER = "Deployment.nats-exporter.k8s.yaml"
ADAPTER_CM = "ConfigMap.prometheus-adapter-config.k8s.yaml"
RULES = "PrometheusRule.backlog-slo.k8s.yaml"
EXTERNAL_API = "APIService.v1beta1.external.metrics.k8s.io.k8s.yaml"


def _metric(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["spec"]["metrics"][0]["external"]["metric"]


CASES = [
    # kubeconform
    pytest.param(HPA, lambda d: d["spec"].update(maxReplica=3), "KCF001", "additional properties 'maxReplica' not allowed", id="kubeconform-unknown-field"),
    pytest.param(RULES, lambda d: d["spec"]["groups"][0].update(interval=30), "KCF001", "/spec/groups/0/interval", id="kubeconform-crd-type"),
    pytest.param(HPA, lambda d: d.update(apiVersion="autoscaling/v3"), "KCF002", "no schema for HorizontalPodAutoscaler autoscaling/v3", id="kubeconform-missing-schema"),
    # cross-references
    pytest.param(HPA, lambda d: _metric(d).update(name="backlog_curent"), "XREF001", "'backlog_curent' is not exposed", id="hpa-metric-typo"),
    pytest.param(HPA, lambda d: _metric(d)["selector"]["matchLabels"].update(queue="orders"), "XREF002", "label(s) ['queue']", id="hpa-label-not-on-series"),
    pytest.param(ADAPTER_CM, adapter_config(lambda c: c["externalRules"][0].update(seriesQuery='jetstream_backlogg{stream_name!=""}')),
                 "XREF003", "'jetstream_backlogg', which no recording rule", id="adapter-series-nothing-produces"),
    pytest.param(RULES, rule_group(lambda rules: rules[0].update(expr="max by (stream_name, consumer_name) (jetstream_consumer_num_pendingg)")),
                 "XREF004", "reads ['jetstream_consumer_num_pendingg']", id="recording-input-unknown"),
    pytest.param(ADAPTER_CM, adapter_config(lambda c: c["externalRules"][0].update(metricsQuery="max by (stream_name (<<.Series>>{<<.LabelMatchers>>})")),
                 "XREF005", "does not parse", id="metrics-query-does-not-parse"),
    pytest.param(HPA, lambda d: d["spec"]["scaleTargetRef"].update(name="orders-procesor"), "XREF006", "orders/orders-procesor is not a consumer declared", id="hpa-target-undeclared"),
    pytest.param(HPA, lambda d: d["spec"].update(minReplicas=9), "XREF006", "minReplicas (9) > maxReplicas (6)", id="hpa-min-gt-max"),
    pytest.param(HPA, lambda d: d["spec"]["behavior"]["scaleUp"].update(selectPolicy="Disabled"), "XREF006", "scaleUp is Disabled", id="hpa-scale-up-disabled"),
    pytest.param("Service.nats-exporter.k8s.yaml", lambda d: d["spec"]["ports"][0].update(targetPort="metric"), "XREF007", "targets 'metric'", id="service-wrong-target-port"),
    pytest.param("Service.prometheus-adapter.k8s.yaml", lambda d: d["spec"]["selector"].update({"app.kubernetes.io/name": "adapter"}), "XREF007",
                 "matches the pods of no Deployment", id="service-selects-nothing"),
    pytest.param("ServiceMonitor.nats-exporter.k8s.yaml", lambda d: d["spec"]["endpoints"][0].update(port="http-metrics"), "XREF008",
                 "'http-metrics' is not a port name", id="servicemonitor-wrong-port-name"),
    pytest.param(EXTERNAL_API, lambda d: d["spec"]["service"].update(name="prometheus-adaptor"), "XREF009", "Service nats-autoscaling/prometheus-adaptor, which is not rendered",
                 id="apiservice-missing-service"),
    pytest.param("ClusterRoleBinding.prometheus-adapter-auth-delegator.k8s.yaml", lambda d: d["subjects"][0].update(name="adapter"), "XREF010",
                 "ServiceAccount nats-autoscaling/adapter is not rendered", id="rbac-subject-wrong-sa"),
    pytest.param("NetworkPolicy.nats-exporter.k8s.yaml", lambda d: d["spec"]["ingress"][0]["ports"][0].update(port=9999), "XREF011",
                 "no ingress rule lets Prometheus reach Service/nats-autoscaling/nats-exporter on port 7777", id="networkpolicy-blocks-prometheus"),
    pytest.param("NetworkPolicy.prometheus-adapter.k8s.yaml", lambda d: d["spec"]["ingress"][0]["ports"][0].update(port=443), "XREF011",
                 "no ingress rule lets the API server reach", id="networkpolicy-blocks-apiserver"),
    pytest.param("ConfigMap.backlog-slo-dashboard.k8s.yaml", dashboard(lambda b: b["panels"][1]["targets"][0].update(expr="max(slo_backlog_drain_p959)")),
                 "XREF012", "queries ['slo_backlog_drain_p959']", id="dashboard-unknown-metric"),
    pytest.param(RULES, rule_group(lambda rules: rules[0].update(expr="jetstream_backlogg > 3000"), 2), "XREF004",
                 "rule 'SustainedBacklogWarning' reads ['jetstream_backlogg']", id="alert-expr-unknown-metric"),
    pytest.param(ADAPTER_CM, adapter_config(lambda c: c["externalRules"][0].update(
        seriesQuery='jetstream_consumer_num_pending{stream_name!="",consumer_name!=""}', metricsQuery="sum(<<.Series>>{<<.LabelMatchers>>}) by (stream_name, consumer_name)")),
        "XREF013", "multiplied by the cluster size", id="bare-sum-over-consumer-series"),
    pytest.param(ADAPTER_CM, adapter_config(lambda c: c["externalRules"][0].update(resources={})), "XREF014",
                 "adds namespace=\"orders\"", id="external-rule-namespaced"),
    pytest.param(EXTERNAL_API, lambda d: d["spec"].update(insecureSkipTLSVerify=True), "XREF016", "insecureSkipTLSVerify: true", id="apiservice-insecure"),
    pytest.param("ConfigMap.backlog-slo-dashboard.k8s.yaml", dashboard(lambda b: b["panels"][1]["datasource"].update(uid="grafanacloud-prom")),
                 "XREF017", "uses datasource 'grafanacloud-prom'", id="dashboard-wrong-datasource"),
    pytest.param(RULES, rule_group(lambda rules: rules[0].update(expr="max by (stream_name) (rate(jetstream_consumer_num_pending[5m])")), "PROM001",
                 "could not parse expression", id="promtool-rule-syntax"),
    pytest.param(RULES, rule_group(lambda rules: rules[0].update({"for": "5m"}), 2), "PROM002", "alertname: SustainedBacklogWarning, time: 9m",
                 id="promtool-scenario-warning-too-early"),
    # security policy
    pytest.param(EXPORTER, container(lambda c: c["securityContext"].update(allowPrivilegeEscalation=True)), "SEC001", "allows privilege escalation", id="privilege-escalation"),
    pytest.param(EXPORTER, container(lambda c: c["securityContext"].update(readOnlyRootFilesystem=False)), "SEC001", "writable root filesystem", id="writable-rootfs"),
    pytest.param(EXPORTER, lambda d: d["spec"]["template"]["spec"].update(hostNetwork=True), "SEC001", "hostNetwork: true", id="host-network"),
    pytest.param(EXPORTER, container(lambda c: c.update(image="natsio/prometheus-nats-exporter:latest")), "SEC002", "is not pinned by digest", id="latest-image"),
    pytest.param(EXPORTER, container(lambda c: c["resources"].pop("limits")), "SEC003", "sets no limits", id="no-limits"),
    pytest.param(EXPORTER, container(lambda c: c.pop("readinessProbe")), "SEC004", "no readinessProbe", id="no-probe"),
    pytest.param("ClusterRole.prometheus-adapter-resource-reader.k8s.yaml", lambda d: d["rules"][0].update(verbs=["*"]), "SEC005", "verbs contains '*'", id="rbac-wildcard"),
    pytest.param(EXPORTER, container(lambda c: c.update(env=[{"name": "NATS_PASSWORD", "value": "hunter2"}])), "SEC006", "sets NATS_PASSWORD inline", id="inline-secret"),
    # simulate: one replica of 40 msg/s cannot drain the declared 150 msg/s burst within the cap
    pytest.param(HPA, lambda d: d["spec"].update(maxReplicas=1), "SIM001", "is not under the 1200s cap", id="simulate-underprovisioned"),
]  # fmt: skip


def test_shipped_dist_is_clean() -> None:
    result = validate(ENVIRONMENTS, DIST)
    assert result.ok, "\n".join(f"{f.rule} {f.obj}: {f.message}" for f in result.findings)
    assert {"ENV001", "KCF001", "KCF002", "XREF001", "XREF016", "PROM001", "SEC006"} <= set(result.checks)


@pytest.mark.parametrize(("file", "edit", "rule", "message"), CASES)
def test_rule_catches_broken_manifest(tmp_path: Path, file: str, edit: Edit, rule: str, message: str) -> None:
    result = validate(ENVIRONMENTS, broken(tmp_path, file, edit), "staging")
    hits = [f for f in result.findings if f.rule == rule]
    assert hits, f"{rule} did not fire; findings: {[(f.rule, f.message) for f in result.findings]}"
    assert any(message in f.message for f in hits), [f.message for f in hits]
    assert all(f.fix for f in hits)


def test_every_rule_has_a_breaking_test() -> None:
    tested = {p.values[2] for p in CASES} | {"ENV001", "XREF015"}
    assert set(RULE_TITLES) <= tested, sorted(set(RULE_TITLES) - tested)


def test_duplicate_metrics_apiservice_is_caught(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    shutil.copytree(DIST, dist)
    keda = yaml.safe_load((dist / "staging" / EXTERNAL_API).read_text())
    keda["metadata"]["name"] = "v1beta1.external.metrics.k8s.io-keda"
    keda["spec"]["service"] = {"name": "prometheus-adapter", "namespace": NS, "port": 443}
    (dist / "staging" / "APIService.keda.k8s.yaml").write_text(yaml.safe_dump(keda))
    result = validate(ENVIRONMENTS, dist, "staging")
    assert any(f.rule == "XREF015" and "also registered by" in f.message for f in result.findings)


def test_environment_schema_errors_are_findings(env_copy, tmp_path: Path) -> None:
    folder = env_copy(lambda d: d["consumers"][0].update(maxReplicas="ten"))
    result = validate(folder, DIST, "staging")
    env_findings = [f for f in result.findings if f.rule == "ENV001"]
    assert env_findings and env_findings[0].obj == "consumers[0].maxReplicas" and "staging.yaml:" in env_findings[0].file


def test_cli_outputs_and_exit_codes(tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(app, ["validate"])
    assert ok.exit_code == 0 and ok.output.startswith("OK:")
    dist = broken(tmp_path, HPA, lambda d: _metric(d).update(name="backlog_curent"))
    text = runner.invoke(app, ["validate", "--dist", str(dist), "--env", "staging"])
    assert text.exit_code == 1
    assert "staging/HorizontalPodAutoscaler.orders-processor.k8s.yaml" in text.output
    assert "XREF001 HorizontalPodAutoscaler/orders/orders-processor:" in text.output and "fix:" in text.output
    as_json = runner.invoke(app, ["validate", "--dist", str(dist), "--env", "staging", "--output", "json"])
    payload = json.loads(as_json.output)
    assert payload["ok"] is False and payload["findings"][0]["rule"] == "XREF001"
    junit = runner.invoke(app, ["validate", "--dist", str(dist), "--env", "staging", "-o", "junit"])
    assert '<testsuite name="backlog-gitops validate"' in junit.output and "failures=\"1\"" in junit.output
    missing = runner.invoke(app, ["validate", "--dist", str(tmp_path / "nowhere")])
    assert missing.exit_code == 2 and "run 'backlog-gitops synth' first" in missing.output


def test_missing_tool_exits_2(monkeypatch: pytest.MonkeyPatch) -> None:
    from cdk8s_app.validation import tools

    monkeypatch.setattr(tools, "TOOLS_BIN", Path("/nonexistent"))
    monkeypatch.setenv("PATH", "/nonexistent")
    result = CliRunner().invoke(app, ["validate"])
    assert result.exit_code == 2 and "kubeconform not found; install it with: scripts/setup.sh --test" in result.output
