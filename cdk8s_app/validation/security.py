"""Security policy: Pod Security Standard restricted, pinned images, resources, probes, RBAC, no inline secrets."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from .model import EnvManifests, Finding, Manifest

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job")
SECRET_NAME = re.compile(r"(PASSWORD|PASSWD|TOKEN|SECRET|API_?KEY|PRIVATE_?KEY|CREDENTIALS?)", re.IGNORECASE)
DIGEST = re.compile(r"@sha256:[a-f0-9]{64}$")
RULES = {
    "SEC001": "workloads meet Pod Security Standard restricted (+ read-only root filesystem)",
    "SEC002": "images are pinned by digest, never latest",
    "SEC003": "containers set CPU and memory requests and limits",
    "SEC004": "containers set liveness and readiness probes",
    "SEC005": "RBAC grants no wildcard verbs, resources or API groups",
    "SEC006": "no secrets inline in dist/",
}


def _f(rule: str, em: EnvManifests, m: Manifest, message: str, fix: str) -> Finding:
    return Finding(rule=rule, env=em.env, file=em.rel(m), obj=m.ref, message=message, fix=fix)


def _pod_spec(m: Manifest) -> dict[str, Any]:
    spec = m.spec.get("template", {}).get("spec", {})
    return spec if isinstance(spec, dict) else {}


def check_workloads(em: EnvManifests) -> Iterator[Finding]:
    for m in (x for kind in WORKLOAD_KINDS for x in em.of(kind)):
        pod = _pod_spec(m)
        psc = pod.get("securityContext") or {}
        for flag in ("hostNetwork", "hostPID", "hostIPC"):
            if pod.get(flag):
                yield _f("SEC001", em, m, f"{flag}: true", f"remove {flag}")
        for volume in pod.get("volumes") or []:
            if "hostPath" in volume:
                yield _f("SEC001", em, m, f"volume {volume.get('name')!r} is a hostPath", "use an emptyDir, ConfigMap or Secret")
        for c in [*(pod.get("initContainers") or []), *(pod.get("containers") or [])]:
            name = c.get("name")
            sc = c.get("securityContext") or {}

            def pick(key: str, sc: dict[str, Any] = sc) -> Any:
                return sc.get(key, psc.get(key))

            if pick("runAsNonRoot") is not True:
                yield _f("SEC001", em, m, f"container {name!r} may run as root (runAsNonRoot not true)", "set securityContext.runAsNonRoot: true")
            if pick("runAsUser") == 0:
                yield _f("SEC001", em, m, f"container {name!r} runs as UID 0", "run as a non-zero UID")
            if sc.get("privileged"):
                yield _f("SEC001", em, m, f"container {name!r} is privileged", "remove privileged")
            if sc.get("allowPrivilegeEscalation") is not False:
                yield _f("SEC001", em, m, f"container {name!r} allows privilege escalation", "set allowPrivilegeEscalation: false")
            if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
                yield _f("SEC001", em, m, f"container {name!r} does not drop ALL capabilities", "set capabilities.drop: [ALL]")
            added = set((sc.get("capabilities") or {}).get("add") or []) - {"NET_BIND_SERVICE"}
            if added:
                yield _f("SEC001", em, m, f"container {name!r} adds capabilities {sorted(added)}", "add none but NET_BIND_SERVICE")
            if (pick("seccompProfile") or {}).get("type") not in ("RuntimeDefault", "Localhost"):
                yield _f("SEC001", em, m, f"container {name!r} has no RuntimeDefault/Localhost seccomp profile", "set seccompProfile.type: RuntimeDefault")
            if sc.get("readOnlyRootFilesystem") is not True:
                yield _f("SEC001", em, m, f"container {name!r} has a writable root filesystem", "set readOnlyRootFilesystem: true (mount an emptyDir for scratch)")
            image = str(c.get("image", ""))
            if ":latest" in image.split("@")[0] or not DIGEST.search(image):
                yield _f("SEC002", em, m, f"container {name!r} image {image!r} is not pinned by digest", "use <repo>:<tag>@sha256:<digest>")
            resources = c.get("resources") or {}
            for part in ("requests", "limits"):
                missing = {"cpu", "memory"} - set(resources.get(part) or {})
                if missing:
                    yield _f("SEC003", em, m, f"container {name!r} sets no {part} for {sorted(missing)}", f"set resources.{part}")
            for probe in ("livenessProbe", "readinessProbe"):
                if probe not in c and c in (pod.get("containers") or []):
                    yield _f("SEC004", em, m, f"container {name!r} has no {probe}", f"add a {probe}")
            for env in c.get("env") or []:
                if "value" in env and SECRET_NAME.search(str(env.get("name", ""))):
                    yield _f("SEC006", em, m, f"container {name!r} sets {env['name']} inline", "read it from a Secret (valueFrom.secretKeyRef)")


def check_rbac(em: EnvManifests) -> Iterator[Finding]:
    for m in (*em.of("ClusterRole"), *em.of("Role")):
        for index, rule in enumerate(m.doc.get("rules") or []):
            for field in ("verbs", "resources", "apiGroups"):
                if "*" in (rule.get(field) or []):
                    yield _f("SEC005", em, m, f"rules[{index}].{field} contains '*'", f"list the {field} needed")


def check_secrets(em: EnvManifests) -> Iterator[Finding]:
    for m in em.of("Secret"):
        if m.doc.get("data") or m.doc.get("stringData"):
            yield _f("SEC006", em, m, "a Secret with data is committed to git", "use an external secret store or a sealed/encrypted secret")


def run(em: EnvManifests) -> Iterator[Finding]:
    yield from check_workloads(em)
    yield from check_rbac(em)
    yield from check_secrets(em)
