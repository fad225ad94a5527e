"""Labels and small helpers shared by every construct."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from cdk8s_plus_32 import k8s

PART_OF = "backlog-gitops"
MANAGED_BY = "backlog-gitops"
VERSION_LABEL = "app.kubernetes.io/version"


def common_labels(name: str, component: str, version: str | None = None) -> dict[str, str]:
    """Recommended app.kubernetes.io labels; the version label is only on metadata, never in selectors."""
    labels = {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": MANAGED_BY,
    }
    if version:
        labels[VERSION_LABEL] = version
    return labels


def selector_labels(labels: dict[str, str]) -> dict[str, str]:
    """Selector labels = common labels minus the version (it changes on upgrade, selectors are immutable)."""
    return {k: v for k, v in labels.items() if k not in (VERSION_LABEL, "app.kubernetes.io/managed-by")}


def image_version(image: str) -> str | None:
    """'repo:v1.2@sha256:..' -> 'v1.2' (for the version label); None when only a digest is given."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else None


def checksum(data: Any) -> str:
    """Stable sha256 of JSON-able data, for pod annotations that roll a Deployment when its config changes."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def restricted_pod_security() -> k8s.PodSecurityContext:
    """Pod Security Standard 'restricted' at pod level."""
    return k8s.PodSecurityContext(
        run_as_non_root=True,
        run_as_user=65534,
        run_as_group=65534,
        fs_group=65534,
        seccomp_profile=k8s.SeccompProfile(type="RuntimeDefault"),
    )


def restricted_container_security() -> k8s.SecurityContext:
    """Pod Security Standard 'restricted' at container level, plus a read-only root filesystem."""
    return k8s.SecurityContext(
        allow_privilege_escalation=False,
        read_only_root_filesystem=True,
        run_as_non_root=True,
        capabilities=k8s.Capabilities(drop=["ALL"]),
        seccomp_profile=k8s.SeccompProfile(type="RuntimeDefault"),
    )


def resource_requirements(cpu_request: str, memory_request: str, cpu_limit: str, memory_limit: str) -> k8s.ResourceRequirements:
    return k8s.ResourceRequirements(
        requests={"cpu": k8s.Quantity.from_string(cpu_request), "memory": k8s.Quantity.from_string(memory_request)},
        limits={"cpu": k8s.Quantity.from_string(cpu_limit), "memory": k8s.Quantity.from_string(memory_limit)},
    )


def namespace_peer(namespace: str, pod_labels: dict[str, str]) -> k8s.NetworkPolicyPeer:
    """Pods with ``pod_labels`` in ``namespace`` (selected by its automatic kubernetes.io/metadata.name label)."""
    return k8s.NetworkPolicyPeer(
        namespace_selector=k8s.LabelSelector(match_labels={"kubernetes.io/metadata.name": namespace}),
        pod_selector=k8s.LabelSelector(match_labels=pod_labels),
    )


def tcp(port: int) -> k8s.NetworkPolicyPort:
    return k8s.NetworkPolicyPort(port=k8s.IntOrString.from_number(port), protocol="TCP")


def dns_egress() -> k8s.NetworkPolicyEgressRule:
    """DNS to kube-dns, needed to resolve the NATS and Prometheus service names."""
    return k8s.NetworkPolicyEgressRule(
        to=[namespace_peer("kube-system", {"k8s-app": "kube-dns"})],
        ports=[
            k8s.NetworkPolicyPort(port=k8s.IntOrString.from_number(53), protocol="UDP"),
            tcp(53),
        ],
    )
