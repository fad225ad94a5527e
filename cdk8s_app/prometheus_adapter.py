"""PrometheusAdapter: serves external.metrics.k8s.io (and custom.metrics.k8s.io) from Prometheus.

RBAC follows the adapter's own deploy manifests and kube-prometheus: auth-delegator, the
extension-apiserver-authentication-reader RoleBinding in kube-system, a resource reader, and a ClusterRole
that lets the HPA controller read the metrics. TLS comes from cert-manager, whose CA injector fills each
APIService's caBundle, so the API server verifies the adapter (no insecureSkipTLSVerify).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlparse

import cdk8s
from cdk8s_plus_32 import k8s
from constructs import Construct

from .adapter_rules import AdapterRules
from .config import EnvironmentConfig
from .meta import (
    checksum,
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

SYNC_WAVE = "argocd.argoproj.io/sync-wave"


@dataclass(frozen=True, kw_only=True)
class PrometheusAdapterProps:
    rules: AdapterRules
    """The adapter's discovery rules (config.yaml)."""
    name: str = "prometheus-adapter"
    """Name of the Deployment, Service, ServiceAccount and prefix of the rest. Default prometheus-adapter."""
    secure_port: int = 6443
    """Container HTTPS port. Default 6443."""
    port_name: str = "https"
    """Name of the Service port the APIServices target. Default https."""
    api_versions: tuple[tuple[str, str], ...] = (("custom.metrics.k8s.io", "v1beta1"), ("external.metrics.k8s.io", "v1beta1"))
    """(group, version) pairs registered as APIServices."""
    hpa_controller_account: tuple[str, str] = ("kube-system", "horizontal-pod-autoscaler")
    """(namespace, name) of the HPA controller's ServiceAccount, granted read on the metrics."""


class PrometheusAdapter(Construct):
    def __init__(self, scope: Construct, id: str, *, env: EnvironmentConfig, props: PrometheusAdapterProps) -> None:
        super().__init__(scope, id)
        self.props = props
        name, ns = props.name, env.namespace
        labels = common_labels(name, "metrics-adapter", image_version(env.adapter.image))
        self.selector = selector_labels(labels)
        meta = k8s.ObjectMeta(name=name, namespace=ns, labels=labels)
        config_yaml = props.rules.to_yaml()
        sa_subject = [k8s.Subject(kind="ServiceAccount", name=name, namespace=ns)]
        tls_secret = f"{name}-tls"

        k8s.KubeServiceAccount(self, "sa", metadata=meta, automount_service_account_token=True)
        k8s.KubeConfigMap(self, "config", metadata=k8s.ObjectMeta(name=f"{name}-config", namespace=ns, labels=labels), data={"config.yaml": config_yaml})

        # RBAC ------------------------------------------------------------------------------------------
        cluster_meta = lambda suffix: k8s.ObjectMeta(name=f"{name}-{suffix}", labels=labels)  # noqa: E731
        k8s.KubeClusterRole(
            self,
            "resource-reader",
            metadata=cluster_meta("resource-reader"),
            rules=[k8s.PolicyRule(api_groups=[""], resources=["namespaces", "nodes", "pods", "services"], verbs=["get", "list", "watch"])],
        )
        k8s.KubeClusterRoleBinding(
            self,
            "resource-reader-binding",
            metadata=cluster_meta("resource-reader"),
            role_ref=k8s.RoleRef(api_group="rbac.authorization.k8s.io", kind="ClusterRole", name=f"{name}-resource-reader"),
            subjects=sa_subject,
        )
        k8s.KubeClusterRoleBinding(
            self,
            "auth-delegator",
            metadata=cluster_meta("auth-delegator"),
            role_ref=k8s.RoleRef(api_group="rbac.authorization.k8s.io", kind="ClusterRole", name="system:auth-delegator"),
            subjects=sa_subject,
        )
        k8s.KubeRoleBinding(
            self,
            "auth-reader",
            metadata=k8s.ObjectMeta(name=f"{name}-auth-reader", namespace="kube-system", labels=labels),
            role_ref=k8s.RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name="extension-apiserver-authentication-reader"),
            subjects=sa_subject,
        )
        # Metric names are the resources of these groups, so the HPA controller gets exactly ours (no wildcard).
        external = sorted(r.exposed_name for r in props.rules.external_rules)
        custom = sorted(f"{res}s/{r.exposed_name}" for r in props.rules.rules for _, res in r.resource_overrides)
        metric_rules = [k8s.PolicyRule(api_groups=["external.metrics.k8s.io"], resources=external, verbs=["get", "list", "watch"])]
        if custom:
            metric_rules.append(k8s.PolicyRule(api_groups=["custom.metrics.k8s.io"], resources=custom, verbs=["get", "list", "watch"]))
        k8s.KubeClusterRole(self, "metrics-reader", metadata=cluster_meta("metrics-reader"), rules=metric_rules)
        hpa_ns, hpa_sa = props.hpa_controller_account
        k8s.KubeClusterRoleBinding(
            self,
            "hpa-metrics-reader",
            metadata=cluster_meta("hpa-metrics-reader"),
            role_ref=k8s.RoleRef(api_group="rbac.authorization.k8s.io", kind="ClusterRole", name=f"{name}-metrics-reader"),
            subjects=[k8s.Subject(kind="ServiceAccount", name=hpa_sa, namespace=hpa_ns)],
        )

        # TLS via cert-manager: self-signed root -> CA issuer -> serving certificate ---------------------
        self._cert_manager(name, ns, labels, tls_secret)

        # Workload --------------------------------------------------------------------------------------
        prometheus = urlparse(env.prometheus.url)
        args = [
            f"--prometheus-url={env.prometheus.url}",
            f"--metrics-relist-interval={env.adapter.metrics_relist_interval}",
            "--config=/etc/adapter/config.yaml",
            f"--secure-port={props.secure_port}",
            "--tls-cert-file=/var/run/serving-cert/tls.crt",
            "--tls-private-key-file=/var/run/serving-cert/tls.key",
            "--cert-dir=/tmp/cert",
            "--v=2",
        ]
        probe = lambda path: k8s.Probe(  # noqa: E731
            http_get=k8s.HttpGetAction(path=path, port=k8s.IntOrString.from_string(props.port_name), scheme="HTTPS"),
            period_seconds=10,
            timeout_seconds=5,
            failure_threshold=5,
        )
        k8s.KubeDeployment(
            self,
            "deployment",
            metadata=k8s.ObjectMeta(name=name, namespace=ns, labels=labels, annotations={SYNC_WAVE: "0"}),
            spec=k8s.DeploymentSpec(
                replicas=env.adapter.replicas,
                revision_history_limit=3,
                selector=k8s.LabelSelector(match_labels=self.selector),
                strategy=k8s.DeploymentStrategy(
                    type="RollingUpdate",
                    rolling_update=k8s.RollingUpdateDeployment(
                        max_surge=k8s.IntOrString.from_number(1), max_unavailable=k8s.IntOrString.from_number(0)
                    ),
                ),
                template=k8s.PodTemplateSpec(
                    # A rule change alters the checksum, so the pods roll and load the new config.
                    metadata=k8s.ObjectMeta(labels=labels, annotations={"checksum/config": checksum(config_yaml)}),
                    spec=k8s.PodSpec(
                        service_account_name=name,
                        security_context=restricted_pod_security(),
                        topology_spread_constraints=[
                            k8s.TopologySpreadConstraint(
                                max_skew=1,
                                topology_key="kubernetes.io/hostname",
                                when_unsatisfiable="ScheduleAnyway",
                                label_selector=k8s.LabelSelector(match_labels=self.selector),
                            )
                        ],
                        containers=[
                            k8s.Container(
                                name="adapter",
                                image=env.adapter.image,
                                image_pull_policy="IfNotPresent",
                                args=args,
                                ports=[k8s.ContainerPort(name=props.port_name, container_port=props.secure_port, protocol="TCP")],
                                security_context=restricted_container_security(),
                                resources=resource_requirements(
                                    env.adapter.resources.cpu_request,
                                    env.adapter.resources.memory_request,
                                    env.adapter.resources.cpu_limit,
                                    env.adapter.resources.memory_limit,
                                ),
                                liveness_probe=probe("/livez"),
                                readiness_probe=probe("/readyz"),
                                volume_mounts=[
                                    k8s.VolumeMount(name="config", mount_path="/etc/adapter", read_only=True),
                                    k8s.VolumeMount(name="serving-cert", mount_path="/var/run/serving-cert", read_only=True),
                                    k8s.VolumeMount(name="tmp", mount_path="/tmp"),
                                ],
                            )
                        ],
                        volumes=[
                            k8s.Volume(name="config", config_map=k8s.ConfigMapVolumeSource(name=f"{name}-config")),
                            k8s.Volume(name="serving-cert", secret=k8s.SecretVolumeSource(secret_name=tls_secret)),
                            k8s.Volume(name="tmp", empty_dir=k8s.EmptyDirVolumeSource(size_limit=k8s.Quantity.from_string("64Mi"))),
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
                        name=props.port_name, port=443, target_port=k8s.IntOrString.from_string(props.port_name), protocol="TCP"
                    )
                ],
            ),
        )
        for group, version in props.api_versions:
            api_name = f"{version}.{group}"
            k8s.KubeApiService(
                self,
                f"apiservice-{group}",
                metadata=k8s.ObjectMeta(
                    name=api_name,
                    labels=labels,
                    # Registered after the Deployment is healthy; an APIService without a ready backend
                    # makes API discovery fail cluster-wide.
                    annotations={"cert-manager.io/inject-ca-from": f"{ns}/{tls_secret}", SYNC_WAVE: "1"},
                ),
                spec=k8s.ApiServiceSpec(
                    group=group,
                    version=version,
                    group_priority_minimum=100,
                    version_priority=100,
                    service=k8s.ServiceReference(name=name, namespace=ns, port=443),
                    insecure_skip_tls_verify=False,
                ),
            )
        k8s.KubePodDisruptionBudget(
            self,
            "pdb",
            metadata=meta,
            spec=k8s.PodDisruptionBudgetSpec(
                min_available=k8s.IntOrString.from_number(1), selector=k8s.LabelSelector(match_labels=self.selector)
            ),
        )
        k8s.KubeNetworkPolicy(
            self,
            "networkpolicy",
            metadata=meta,
            spec=k8s.NetworkPolicySpec(
                pod_selector=k8s.LabelSelector(match_labels=self.selector),
                policy_types=["Ingress", "Egress"],
                # The API server is not a pod and its address differs per cluster: allow the serving port from anywhere.
                ingress=[
                    k8s.NetworkPolicyIngressRule(
                        ports=[tcp(props.secure_port)]
                    )
                ],
                egress=[
                    k8s.NetworkPolicyEgressRule(
                        to=[
                            namespace_peer(env.prometheus.namespace, env.prometheus.pod_selector)
                        ],
                        ports=[tcp(prometheus.port or 80)],
                    ),
                    # Token reviews and discovery against the Kubernetes API (address differs per cluster).
                    k8s.NetworkPolicyEgressRule(
                        ports=[
                            tcp(443),
                            tcp(6443),
                        ]
                    ),
                    dns_egress(),
                ],
            ),
        )

    def _cert_manager(self, name: str, ns: str, labels: dict[str, str], tls_secret: str) -> None:
        def issuer(id: str, issuer_name: str, spec: dict[str, object]) -> None:
            cdk8s.ApiObject(
                self, id, api_version="cert-manager.io/v1", kind="Issuer",
                metadata=cdk8s.ApiObjectMetadata(name=issuer_name, namespace=ns, labels=labels),
            ).add_json_patch(cdk8s.JsonPatch.add("/spec", spec))  # fmt: skip

        def certificate(id: str, cert_name: str, spec: dict[str, object]) -> None:
            cdk8s.ApiObject(
                self, id, api_version="cert-manager.io/v1", kind="Certificate",
                metadata=cdk8s.ApiObjectMetadata(name=cert_name, namespace=ns, labels=labels),
            ).add_json_patch(cdk8s.JsonPatch.add("/spec", spec))  # fmt: skip

        key = {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"}
        issuer("selfsigned-issuer", f"{name}-selfsigned", {"selfSigned": {}})
        certificate(
            "ca-certificate",
            f"{name}-ca",
            {
                "commonName": f"{name}-ca",
                "duration": "87600h",
                "isCA": True,
                "issuerRef": {"kind": "Issuer", "name": f"{name}-selfsigned"},
                "privateKey": key,
                "secretName": f"{name}-ca",
            },
        )
        issuer("ca-issuer", f"{name}-ca", {"ca": {"secretName": f"{name}-ca"}})
        certificate(
            "serving-certificate",
            tls_secret,
            {
                "dnsNames": [f"{name}.{ns}.svc", f"{name}.{ns}.svc.cluster.local"],
                "duration": "2160h",
                "issuerRef": {"kind": "Issuer", "name": f"{name}-ca"},
                "privateKey": key,
                "renewBefore": "360h",
                "secretName": tls_secret,
            },
        )
