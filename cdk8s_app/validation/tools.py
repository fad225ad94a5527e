"""Checks that run real external tools: kubeconform (schemas) and promtool (rules, PromQL parsing)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from ..adapter_rules import render_metrics_query
from .. import rule_tests
from ..config import PROJECT_ROOT, EnvironmentConfig
from ..errors import ToolMissingError, UserError
from .model import EnvManifests, Finding

TOOLS_BIN = PROJECT_ROOT / ".tools" / "bin"
CRD_SCHEMAS = PROJECT_ROOT / "schemas" / "crds"
CORE_SCHEMA_CACHE = PROJECT_ROOT / ".tools" / "k8s-schemas"
INSTALL = "scripts/setup.sh --test (or: make setup-test)"


def find_tool(name: str) -> str:
    local = TOOLS_BIN / name
    if local.is_file():
        return str(local)
    found = shutil.which(name)
    if not found:
        raise ToolMissingError(name, INSTALL)
    return found


def core_schema_dir(version: str) -> Path:
    """Standalone-strict Kubernetes schemas for ``version`` (e.g. 1.32.0), from the kubernetes-validate package.

    The package's schemas carry a kubernetes.io $id and reference '/api/_definitions.json' against it; a copy
    without $id and with file-relative references is cached under .tools/ once per version, so kubeconform
    resolves everything offline.
    """
    try:
        import kubernetes_validate
    except ImportError:
        raise ToolMissingError("kubernetes-validate (Python package with the Kubernetes schemas)", INSTALL) from None
    source = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema" / f"v{version}-local-strict"
    if not source.is_dir():
        available = sorted(p.name.split("-")[0] for p in source.parent.glob("*-local-strict"))
        raise UserError(f"no Kubernetes {version} schemas in kubernetes-validate (has {', '.join(available)}); set kubernetesVersion to one of them")
    target = CORE_SCHEMA_CACHE / f"v{version}-local-strict"
    marker = target / ".complete"
    if not marker.exists():
        tmp = Path(tempfile.mkdtemp(dir=CORE_SCHEMA_CACHE.parent if CORE_SCHEMA_CACHE.parent.exists() else None))
        for path in source.glob("*.json"):
            schema = json.loads(path.read_text().replace('"/api/_definitions.json#', '"_definitions.json#'))
            schema.pop("$id", None)  # else references resolve against kubernetes.io, not the local file
            (tmp / path.name).write_text(json.dumps(schema))
        (tmp / ".complete").write_text(str(source) + "\n")
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    return target


def kubeconform(em: EnvManifests, kubernetes_version: str) -> Iterator[Finding]:
    """Run kubeconform -strict over the environment folder; every invalid, errored or schema-less file is a finding."""
    binary = find_tool("kubeconform")
    core = core_schema_dir(kubernetes_version)
    cmd = [
        binary, "-strict", "-summary", "-output", "json", "-kubernetes-version", kubernetes_version,
        "-schema-location", str(core.parent) + "/{{ .NormalizedKubernetesVersion }}-local-strict/{{ .ResourceKind }}{{ .KindSuffix }}.json",
        "-schema-location", str(CRD_SCHEMAS) + "/{{ .ResourceKind }}{{ .KindSuffix }}.json",
        str(em.folder),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True)
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise UserError(f"kubeconform gave no JSON report (exit {proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}") from None
    for res in report.get("resources") or []:
        status = res.get("status")
        if status in ("statusValid", "statusSkipped"):
            continue
        file = f"{em.folder.name}/{Path(res.get('filename', '')).name}"
        obj = "/".join(x for x in (res.get("kind"), res.get("name")) if x)
        msg = res.get("msg", "")
        if "could not find schema" in msg:
            yield Finding(rule="KCF002", env=em.env, file=file, obj=obj, message=f"no schema for {res.get('kind')} {res.get('version')}: {msg}",
                          fix="add the CRD to scripts/gen_crd_schemas.py and regenerate schemas/crds")  # fmt: skip
            continue
        # The message lists every leaf error ("- at '/spec/x': why"); validationErrors only the top one.
        leaves = [{"path": p, "msg": m.strip()} for p, m in _LEAF.findall(msg) if m.strip() != "validation failed"]
        errors = leaves or res.get("validationErrors") or [{"path": "", "msg": msg}]
        for err in errors:
            yield Finding(rule="KCF001", env=em.env, file=file, obj=obj, message=f"{err.get('path') or '/'}: {err.get('msg')}",
                          fix="fix the construct that renders this field")  # fmt: skip


_LEAF = re.compile(r"- at '([^']*)': (.*?)(?=\s+- at '|$)")
_PROMTOOL_ERROR = re.compile(r'group "(?P<group>[^"]+)", rule (?P<rule>\d+)(?:, "(?P<name>[^"]*)")?: (?P<msg>.*)')


def _promtool_check(groups: list[dict[str, Any]]) -> list[tuple[str, int, str]]:
    """promtool check rules on ``groups``; returns (group, rule index 1-based, message) per problem."""
    with tempfile.NamedTemporaryFile("w", suffix=".rules.yaml", delete=False) as fh:
        yaml.safe_dump({"groups": groups}, fh, sort_keys=False)
        path = fh.name
    try:
        proc = subprocess.run([find_tool("promtool"), "check", "rules", path], capture_output=True, text=True)
    finally:
        Path(path).unlink(missing_ok=True)
    if proc.returncode == 0:
        return []
    problems = []
    for line in (proc.stdout + proc.stderr).splitlines():
        match = _PROMTOOL_ERROR.search(line)
        if match:
            problems.append((match["group"], int(match["rule"]), match["msg"].strip()))
        elif line.strip() and not line.startswith(("Checking", "  FAILED", "FAILED")) and path in line:
            problems.append(("", 0, line.split(path, 1)[-1].lstrip(": ").strip()))
    return problems or [("", 0, (proc.stdout + proc.stderr).strip())]


def promtool_rules(em: EnvManifests) -> Iterator[Finding]:
    """PROM001: promtool check rules on the groups of each PrometheusRule."""
    for m, groups in em.rule_groups:
        for group, index, message in _promtool_check(groups):
            where = f"group {group!r} rule {index}: " if group else ""
            yield Finding(rule="PROM001", env=em.env, file=em.rel(m), obj=m.ref, message=f"promtool: {where}{message}", fix="fix the rule in cdk8s_app/slo_rules.py")


def promql_parses(em: EnvManifests) -> Iterator[Finding]:
    """XREF005: adapter metricsQuery templates, rendered as the adapter would, and dashboard queries parse."""
    queries: list[tuple[Any, str, str]] = []  # (manifest, what, promql)
    for cm, rules in em.adapter_configs:
        for r in (*rules.rules, *rules.external_rules):
            try:
                rendered = render_metrics_query(r, {"stream_name": "S", "consumer_name": "C"}, namespace="ns")
            except ValueError as exc:
                queries.append((cm, f"adapter rule {r.exposed_name!r}", f"invalid( {exc}"))
                continue
            queries.append((cm, f"adapter rule {r.exposed_name!r} metricsQuery", rendered))
    for cm, key, board in em.dashboards:
        for panel in board.get("panels") or []:
            for target in panel.get("targets") or []:
                expr = str(target.get("expr", ""))
                if expr:
                    # Grafana variables become a regex that matches anything.
                    queries.append((cm, f"{key} panel {panel.get('title')!r}", re.sub(r"\$\{?\w+\}?", ".*", expr)))
    if not queries:
        return
    groups = [{"name": f"q{i}", "rules": [{"record": f"backlog_gitops_check_{i}", "expr": q}]} for i, (_, _, q) in enumerate(queries)]
    for group, _, message in _promtool_check(groups):
        index = int(group[1:]) if group.startswith("q") and group[1:].isdigit() else None
        if index is None:
            continue
        m, what, promql = queries[index]
        yield Finding(rule="XREF005", env=em.env, file=em.rel(m), obj=m.ref, message=f"{what} does not parse: {message} (query: {promql})",
                      fix="fix the PromQL template")  # fmt: skip


def promtool_scenarios(em: EnvManifests, env: EnvironmentConfig | None) -> Iterator[Finding]:
    """PROM002: the alert scenarios generated from the environment config pass against the rendered rules."""
    if env is None:
        return
    for m, groups in em.rule_groups:
        result = rule_tests.run(env, groups, find_tool("promtool"))
        if not result.ok:
            failed = [line.strip() for line in result.output.splitlines() if line.strip().startswith(("name:", "alertname:"))]
            yield Finding(rule="PROM002", env=em.env, file=em.rel(m), obj=m.ref,
                          message="promtool test rules failed: " + " | ".join(failed or [result.output[-400:]]),
                          fix="run 'backlog-gitops test-rules --env " + em.env + "' for the full report; fix the rule or the config")  # fmt: skip
