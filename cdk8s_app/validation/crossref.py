"""Cross-reference checks: would the rendered objects work together? Each function is one named rule."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

from ..config import EnvironmentConfig
from ..metrics import CONTRACT
from .model import EnvManifests, Finding, Manifest, output_labels, referenced_metrics, selector_label_matchers

Check = Callable[[EnvManifests, EnvironmentConfig | None], Iterator[Finding]]
CHECKS: list[tuple[str, str, Check]] = []

CONTRACT_LABELS = {m.name: frozenset(m.labels) for m in CONTRACT}
# Subjects that are not rendered here but exist in every cluster.
BUILTIN_SERVICE_ACCOUNTS = {("kube-system", "horizontal-pod-autoscaler")}


def rule(rule_id: str, title: str) -> Callable[[Check], Check]:
    def register(fn: Check) -> Check:
        CHECKS.append((rule_id, title, fn))
        return fn

    return register


def _finding(rule_id: str, em: EnvManifests, m: Manifest, message: str, fix: str) -> Finding:
    return Finding(rule=rule_id, env=em.env, file=em.rel(m), obj=m.ref, message=message, fix=fix)


def series_labels(em: EnvManifests) -> dict[str, frozenset[str]]:
    """Labels of every series the rules can read: contract metrics, then recorded series in dependency order."""
    known = dict(CONTRACT_LABELS)
    pending = dict(em.recorded)
    while pending:
        progressed = False
        for name, rec in list(pending.items()):
            labels = output_labels(rec.expr, known)
            if labels is not None:
                known[name] = labels
                del pending[name]
                progressed = True
        if not progressed:
            break
    return known


def _hpa_metrics(hpa: Manifest) -> Iterator[tuple[str, str, dict[str, str]]]:
    """(type, metric name, selector matchLabels) for each metric of an HPA."""
    for metric in hpa.spec.get("metrics") or []:
        kind = metric.get("type", "")
        source = metric.get(kind[:1].lower() + kind[1:]) or {}
        ident = source.get("metric") or {}
        if ident.get("name"):
            yield kind, ident["name"], (ident.get("selector") or {}).get("matchLabels") or {}


@rule("XREF001", "HPA metric is exposed by an adapter rule")
def hpa_metric_exposed(em: EnvManifests, env: EnvironmentConfig | None) -> Iterator[Finding]:
    external = {r.exposed_name for _, rules in em.adapter_configs for r in rules.external_rules}
    custom = {r.exposed_name for _, rules in em.adapter_configs for r in rules.rules}
    for hpa in em.of("HorizontalPodAutoscaler"):
        for kind, name, _ in _hpa_metrics(hpa):
            pool, other = (external, custom) if kind == "External" else (custom, external)
            if kind not in ("External", "Pods", "Object"):
                continue
            if name not in pool:
                hint = f"it is exposed as a {'custom' if kind == 'External' else 'external'} metric; change the metric type" if name in other else (
                    f"use one of: {', '.join(sorted(pool)) or 'none exposed'}"
                )
                yield _finding("XREF001", em, hpa, f"{kind} metric {name!r} is not exposed by any adapter rule (the HPA would show <unknown>)", hint)


@rule("XREF002", "HPA selector labels exist on the adapter rule's series")
def hpa_selector_labels(em: EnvManifests, env: EnvironmentConfig | None) -> Iterator[Finding]:
    labels = series_labels(em)
    rules = {r.exposed_name: r for _, rs in em.adapter_configs for r in (*rs.rules, *rs.external_rules)}
    for hpa in em.of("HorizontalPodAutoscaler"):
        for _, name, selector in _hpa_metrics(hpa):
            rule_ = rules.get(name)
            if rule_ is None:
                continue
            available = labels.get(rule_.series_metric)
            if available is None:
                continue  # XREF003 reports the unknown series
            missing = sorted(set(selector) - available)
            if missing:
                yield _finding(
                    "XREF002", em, hpa,
                    f"selector of {name!r} uses label(s) {missing} that series {rule_.series_metric!r} does not carry (it has {sorted(available)})",
                    "select on labels the series carries, or add them to the recording rule's 'by' clause",
                )  # fmt: skip


@rule("XREF003", "adapter seriesQuery reads a recorded or contracted metric")
def adapter_series_produced(em: EnvManifests, env: EnvironmentConfig | None) -> Iterator[Finding]:
    labels = series_labels(em)
    for cm, rules in em.adapter_configs:
        for r in (*rules.rules, *rules.external_rules):
            try:
                metric = r.series_metric
            except ValueError as exc:
                yield _finding("XREF003", em, cm, str(exc), "select one metric by name in seriesQuery")
                continue
            if metric not in labels:
                yield _finding(
                    "XREF003", em, cm,
                    f"adapter rule {r.exposed_name!r} selects series {metric!r}, which no recording rule or contract metric produces",
                    "record it in the PrometheusRule or fix the name (see docs/metrics-contract.md)",
                )  # fmt: skip
                continue
            missing = sorted(selector_label_matchers(r.series_query) - labels[metric])
            if missing:
                yield _finding("XREF003", em, cm, f"seriesQuery of {r.exposed_name!r} filters on label(s) {missing} that {metric!r} does not carry",
                               "filter on labels the series carries")  # fmt: skip


@rule("XREF004", "recording and alerting rules read known metrics")
def rule_inputs_known(em: EnvManifests, env: EnvironmentConfig | None) -> Iterator[Finding]:
    known = set(CONTRACT_LABELS) | set(em.recorded)
    for m, groups in em.rule_groups:
        for group in groups:
            for r in group.get("rules") or []:
                unknown = sorted(referenced_metrics(str(r.get("expr", ""))) - known)
                if unknown:
                    name = r.get("record") or r.get("alert")
                    yield _finding("XREF004", em, m, f"rule {name!r} reads {unknown}, produced by no recording rule and absent from the metrics contract",
                                   "fix the metric name or add it to the contract (cdk8s_app/metrics.py)")  # fmt: skip


@rule("XREF006", "HPA targets a declared Deployment with sane bounds and behaviour")
def hpa_target_and_behaviour(em: EnvManifests, env: EnvironmentConfig | None) -> Iterator[Finding]:
    declared = {(c.namespace, c.deployment) for c in env.consumers} if env else None
    for hpa in em.of("HorizontalPodAutoscaler"):
        ref = hpa.spec.get("scaleTargetRef") or {}
        if ref.get("kind") != "Deployment" or ref.get("apiVersion") != "apps/v1":
            yield _finding("XREF006", em, hpa, f"scaleTargetRef is {ref.get('apiVersion')}/{ref.get('kind')}, not apps/v1 Deployment", "target the consumer Deployment")
        elif declared is not None and (hpa.namespace, ref.get("name")) not in declared:
            yield _finding("XREF006", em, hpa, f"scaleTargetRef Deployment {hpa.namespace}/{ref.get('name')} is not a consumer declared in the environment",
                           "fix the deployment name or declare the consumer")  # fmt: skip
        lo, hi = hpa.spec.get("minReplicas", 1), hpa.spec.get("maxReplicas", 0)
        if lo > hi:
            yield _finding("XREF006", em, hpa, f"minReplicas ({lo}) > maxReplicas ({hi})", "lower minReplicas or raise maxReplicas")
        behavior = hpa.spec.get("behavior") or {}
        up, down = behavior.get("scaleUp") or {}, behavior.get("scaleDown") or {}
        if up.get("selectPolicy") == "Disabled":
            yield _finding("XREF006", em, hpa, "scaleUp is Disabled: the consumer never scales out on backlog", "enable scale-up")
        for direction, rules in (("scaleUp", up), ("scaleDown", down)):
            for policy in rules.get("policies") or []:
                if not 1 <= policy.get("periodSeconds", 0) <= 1800 or policy.get("value", 0) <= 0:
                    yield _finding("XREF006", em, hpa, f"{direction} policy {policy} is out of range (periodSeconds 1..1800, value > 0)", "fix the policy")
        if down and up and down.get("stabilizationWindowSeconds", 300) < up.get("stabilizationWindowSeconds", 0):
            yield _finding("XREF006", em, hpa, "scaleDown stabilizes for less time than scaleUp: replicas would flap", "scale down more conservatively than up")


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and selector.items() <= labels.items()


def _pod_templates(em: EnvManifests) -> Iterator[tuple[Manifest, dict[str, Any]]]:
    for d in em.of("Deployment"):
        yield d, (d.spec.get("template") or {})


@rule("XREF007", "Services select the pods of a Deployment and target a declared port")
def services_select_pods(em: EnvManifests, env: EnvironmentConfig | None) -> Iterator[Finding]:
    for svc in em.of("Service"):
        selector = svc.spec.get("selector") or {}
        pods = [(d, t) for d, t in _pod_templates(em) if d.namespace == svc.namespace and _selects(selector, (t.get("metadata") or {}).get("labels") or {})]
        if not pods:
            yield _finding("XREF007", em, svc, f"selector {selector} matches the pods of no Deployment in {svc.namespace}", "align the selector with the pod labels")
            continue
        ports = {p.get("name") for _, t in pods for c in (t.get("spec") or {}).get("containers", []) for p in c.get("ports") or []}
        numbers = {p.get("containerPort") for _, t in pods for c in (t.get("spec") or {}).get("containers", []) for p in c.get("ports") or []}
        for port in svc.spec.get("ports") or []:
            target = port.get("targetPort", port.get("port"))
            if target not in ports and target not in numbers:
                yield _finding("XREF007", em, svc, f"port {port.get('name')!r} targets {target!r}, which no selected container declares",
                               f"use one of {sorted(str(p) for p in ports | numbers)}")  # fmt: skip


@rule("XREF008", "ServiceMonitor selects a Service and names one of its ports")
def servicemonitor_port(em: EnvManifests, env: EnvironmentConfig | None) -> Iterator[Finding]:
    for sm in em.of("ServiceMonitor"):
        selector = (sm.spec.get("selector") or {}).get("matchLabels") or {}
        namespaces = (sm.spec.get("namespaceSelector") or {}).get("matchNames") or [sm.namespace]
        services = [s for s in em.of("Service") if s.namespace in namespaces and _selects(selector, s.doc["metadata"].get("labels") or {})]
        if not services:
            yield _finding("XREF008", em, sm, f"selector {selector} matches no Service in {namespaces}", "align the selector with the Service labels")
            continue
        names = {p.get("name") for s in services for p in s.spec.get("ports") or []}
        for endpoint in sm.spec.get("endpoints") or []:
            if endpoint.get("port") not in names:
                yield _finding("XREF008", em, sm, f"endpoint port {endpoint.get('port')!r} is not a port name of the selected Service(s)", f"use one of {sorted(names)}")


@rule("XREF009", "APIServices point at a rendered Service port")
def apiservice_service(em: EnvManifests, env: EnvironmentConfig | None) -> Iterator[Finding]:
    for api in em.of("APIService"):
        ref = api.spec.get("service") or {}
        svc = em.find("Service", ref.get("name", ""), ref.get("namespace"))
        if svc is None:
            yield _finding("XREF009", em, api, f"points at Service {ref.get('namespace')}/{ref.get('name')}, which is not rendered", "point it at the adapter Service")
        elif ref.get("port", 443) not in {p.get("port") for p in svc.spec.get("ports") or []}:
            yield _finding("XREF009", em, api, f"port {ref.get('port', 443)} is not a port of Service {svc.ref}", "use the Service's HTTPS port")


@rule("XREF010", "RBAC subjects and pod service accounts exist")
def rbac_subjects(em: EnvManifests, env: EnvironmentConfig | None) -> Iterator[Finding]:
    accounts = {(m.namespace, m.name) for m in em.of("ServiceAccount")} | BUILTIN_SERVICE_ACCOUNTS
    for binding in (*em.of("RoleBinding"), *em.of("ClusterRoleBinding")):
        for subject in binding.doc.get("subjects") or []:
            if subject.get("kind") == "ServiceAccount" and (subject.get("namespace"), subject.get("name")) not in accounts:
                yield _finding("XREF010", em, binding, f"subject ServiceAccount {subject.get('namespace')}/{subject.get('name')} is not rendered",
                               "name the adapter's ServiceAccount")  # fmt: skip
        role = binding.doc.get("roleRef") or {}
        if role.get("kind") == "ClusterRole" and role.get("name", "").startswith("prometheus-adapter") and em.find("ClusterRole", role["name"]) is None:
            yield _finding("XREF010", em, binding, f"roleRef ClusterRole {role['name']} is not rendered", "fix the roleRef name")
    for d, template in _pod_templates(em):
        sa = (template.get("spec") or {}).get("serviceAccountName")
        if sa and (d.namespace, sa) not in accounts:
            yield _finding("XREF010", em, d, f"serviceAccountName {sa!r} is not rendered in {d.namespace}", "render the ServiceAccount or fix the name")


@rule("XREF011", "NetworkPolicies let Prometheus reach the exporter and the API server reach the adapter")
def network_paths(em: EnvManifests, env: EnvironmentConfig | None) -> Iterator[Finding]:
    for svc, monitor in ((s, sm) for sm in em.of("ServiceMonitor") for s in em.of("Service") if s.namespace == sm.namespace):
        if not _selects((monitor.spec.get("selector") or {}).get("matchLabels") or {}, svc.doc["metadata"].get("labels") or {}):
            continue
        yield from _ingress_open(em, svc, env.prometheus.namespace if env else None, "Prometheus", "XREF011")
    for api in em.of("APIService"):
        ref = api.spec.get("service") or {}
        svc = em.find("Service", ref.get("name", ""), ref.get("namespace"))
        if svc is not None:
            yield from _ingress_open(em, svc, None, "the API server", "XREF011")


def _ingress_open(em: EnvManifests, svc: Manifest, from_namespace: str | None, who: str, rule_id: str) -> Iterator[Finding]:
    selector = svc.spec.get("selector") or {}
    pods = [t for d, t in _pod_templates(em) if d.namespace == svc.namespace and _selects(selector, (t.get("metadata") or {}).get("labels") or {})]
    if not pods:
        return
    pod_labels = (pods[0].get("metadata") or {}).get("labels") or {}
    container_ports = {p.get("name"): p.get("containerPort") for c in (pods[0].get("spec") or {}).get("containers", []) for p in c.get("ports") or []}
    wanted = {container_ports.get(p.get("targetPort"), p.get("targetPort")) for p in svc.spec.get("ports") or []}
    policies = [
        np for np in em.of("NetworkPolicy")
        if np.namespace == svc.namespace and (np.spec.get("podSelector") or {}).get("matchLabels", {}).items() <= pod_labels.items()
        and "Ingress" in (np.spec.get("policyTypes") or ["Ingress"])
    ]  # fmt: skip
    if not policies:
        return  # no policy selects the pods: ingress is open
    for port in wanted:
        if not any(_allows(np, port, from_namespace) for np in policies):
            yield _finding(rule_id, em, policies[0], f"no ingress rule lets {who} reach {svc.ref} on port {port}",
                           f"allow TCP {port}" + (f" from namespace {from_namespace}" if from_namespace else ""))  # fmt: skip


def _allows(np: Manifest, port: Any, from_namespace: str | None) -> bool:
    for ingress in np.spec.get("ingress") or []:
        ports = {p.get("port") for p in ingress.get("ports") or []}
        if ports and port not in ports:
            continue
        peers = ingress.get("from") or []
        if not peers or from_namespace is None:
            return True if not peers else from_namespace is None
        for peer in peers:
            ns = ((peer.get("namespaceSelector") or {}).get("matchLabels") or {}).get("kubernetes.io/metadata.name")
            if ns in (None, from_namespace) and "ipBlock" not in peer:
                return True
    return False


@rule("XREF012", "dashboard queries and alert expressions read recorded or contracted metrics")
def queries_reference_known(em: EnvManifests, env: EnvironmentConfig | None) -> Iterator[Finding]:
    known = set(CONTRACT_LABELS) | set(em.recorded)
    for cm, key, board in em.dashboards:
        for panel in board.get("panels") or []:
            for target in panel.get("targets") or []:
                unknown = sorted(referenced_metrics(str(target.get("expr", ""))) - known)
                if unknown:
                    yield _finding("XREF012", em, cm, f"{key}: panel {panel.get('title')!r} queries {unknown}, which nothing records",
                                   "query a recording rule or contract metric")  # fmt: skip
    # Alert expressions are covered by XREF004 (they live in the PrometheusRule).


_BARE_SUM = re.compile(r"\bsum\b")


@rule("XREF013", "adapter rules on per-server consumer series de-duplicate (leader filter or max by)")
def leader_dedup(em: EnvManifests, env: EnvironmentConfig | None) -> Iterator[Finding]:
    for cm, rules in em.adapter_configs:
        for r in (*rules.rules, *rules.external_rules):
            try:
                metric = r.series_metric
            except ValueError:
                continue
            if not metric.startswith("jetstream_consumer_"):
                continue
            leader = "is_consumer_leader" in r.metrics_query or "is_consumer_leader" in r.series_query
            if _BARE_SUM.search(r.metrics_query) and not leader:
                yield _finding("XREF013", em, cm, f"rule {r.exposed_name!r} sums {metric}, reported once per NATS server: the backlog is multiplied by the cluster size",
                               'aggregate with max by (...) or filter is_consumer_leader="true"; better, read jetstream_backlog')  # fmt: skip
            elif not leader and not re.search(r"\bmax\b", r.metrics_query):
                yield _finding("XREF013", em, cm, f"rule {r.exposed_name!r} reads {metric} without de-duplicating NATS servers",
                               'aggregate with max by (...) or filter is_consumer_leader="true"')  # fmt: skip


@rule("XREF014", "external rules read from another namespace set namespaced: false")
def namespaced_external(em: EnvManifests, env: EnvironmentConfig | None) -> Iterator[Finding]:
    metrics_ns = env.namespace if env else None
    by_name = {r.exposed_name: (cm, r) for cm, rules in em.adapter_configs for r in rules.external_rules}
    for hpa in em.of("HorizontalPodAutoscaler"):
        for kind, name, _ in _hpa_metrics(hpa):
            if kind != "External" or name not in by_name:
                continue
            cm, r = by_name[name]
            if r.namespaced and hpa.namespace != metrics_ns:
                yield _finding("XREF014", em, cm, f"external rule {name!r} is namespaced: the adapter adds namespace=\"{hpa.namespace}\" (from {hpa.ref}) "
                               f"but the series live in {metrics_ns}, so the query matches nothing", "set resources.namespaced: false")  # fmt: skip


@rule("XREF015", "one owner per metrics APIService")
def apiservice_unique(em: EnvManifests, env: EnvironmentConfig | None) -> Iterator[Finding]:
    owners: dict[tuple[str, str], Manifest] = {}
    for api in em.of("APIService"):
        key = (api.spec.get("group", ""), api.spec.get("version", ""))
        if key in owners:
            yield _finding("XREF015", em, api, f"{key[1]}.{key[0]} is also registered by {em.rel(owners[key])}: the two metrics servers would replace each other",
                           "keep one metrics server (adapter or KEDA) per API group")  # fmt: skip
        owners.setdefault(key, api)
    for kind in ("ScaledObject", "ScaledJob"):
        for m in em.of(kind):
            if any(a.spec.get("group") == "external.metrics.k8s.io" for a in em.of("APIService")):
                yield _finding("XREF015", em, m, "KEDA objects next to the Prometheus Adapter: both serve external.metrics.k8s.io", "use one of them")


@rule("XREF016", "APIServices verify the adapter's TLS certificate")
def apiservice_tls(em: EnvManifests, env: EnvironmentConfig | None) -> Iterator[Finding]:
    for api in em.of("APIService"):
        if api.spec.get("insecureSkipTLSVerify"):
            yield _finding("XREF016", em, api, "insecureSkipTLSVerify: true lets anyone who can hijack the Service serve metrics to the HPA controller",
                           "set it to false and provide caBundle or cert-manager.io/inject-ca-from")  # fmt: skip
        elif not api.spec.get("caBundle") and "cert-manager.io/inject-ca-from" not in (api.doc["metadata"].get("annotations") or {}):
            yield _finding("XREF016", em, api, "no caBundle and no cert-manager CA injection: the API server cannot verify the adapter",
                           "add cert-manager.io/inject-ca-from or caBundle")  # fmt: skip


@rule("XREF017", "dashboard panels use the environment's datasource")
def dashboard_datasource(em: EnvManifests, env: EnvironmentConfig | None) -> Iterator[Finding]:
    if env is None:
        return
    for cm, key, board in em.dashboards:
        for panel in board.get("panels") or []:
            if panel.get("type") == "row":
                continue
            uid = (panel.get("datasource") or {}).get("uid")
            if uid != env.grafana.datasource_uid:
                yield _finding("XREF017", em, cm, f"{key}: panel {panel.get('title')!r} uses datasource {uid!r}", f"use {env.grafana.datasource_uid!r}")
