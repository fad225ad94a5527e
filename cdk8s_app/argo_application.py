"""ArgoApplication: an Argo CD Application that syncs one dist/<env>/ folder (and the root app-of-apps)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cdk8s
from constructs import Construct

from .config import ArgoConfig
from .meta import common_labels


@dataclass(frozen=True, kw_only=True)
class ArgoApplicationProps:
    name: str
    """Application name."""
    path: str
    """Folder in the repository Argo CD syncs (dist/<env> or dist/argocd)."""
    argo: ArgoConfig
    """Repository, revision, Argo CD namespace and project."""
    destination_namespace: str
    """Default namespace for namespaced objects without one."""
    ignore_ca_bundle: bool = True
    """Ignore APIService caBundle, which cert-manager's CA injector owns. Default True."""


class ArgoApplication(Construct):
    def __init__(self, scope: Construct, id: str, *, props: ArgoApplicationProps) -> None:
        super().__init__(scope, id)
        a = props.argo
        spec: dict[str, Any] = {
            "destination": {"namespace": props.destination_namespace, "server": a.destination_server},
            "project": a.project,
            "source": {"path": props.path, "repoURL": a.repo_url, "targetRevision": a.target_revision},
            "syncPolicy": {
                "automated": {"prune": True, "selfHeal": True},
                "retry": {"backoff": {"duration": "10s", "factor": 2, "maxDuration": "5m"}, "limit": 5},
                "syncOptions": ["CreateNamespace=true", "PruneLast=true", "RespectIgnoreDifferences=true"],
            },
        }
        if props.ignore_ca_bundle:
            spec["ignoreDifferences"] = [{"group": "apiregistration.k8s.io", "jsonPointers": ["/spec/caBundle"], "kind": "APIService"}]
        cdk8s.ApiObject(
            self,
            "application",
            api_version="argoproj.io/v1alpha1",
            kind="Application",
            metadata=cdk8s.ApiObjectMetadata(
                name=props.name,
                namespace=a.namespace,
                labels=common_labels(props.name, "gitops"),
                # Deleting the Application deletes what it deployed (cascade), as Argo CD documents.
                finalizers=["resources-finalizer.argocd.argoproj.io"],
            ),
        ).add_json_patch(cdk8s.JsonPatch.add("/spec", spec))
