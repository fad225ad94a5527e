"""validate: collect findings from every check, in order, over dist/ and the environment files."""

from __future__ import annotations

from pathlib import Path

from ..app import ARGOCD_CHART
from ..config import ConfigError, ConfigErrors, EnvironmentConfig, environment_files, load_environment
from ..errors import UserError
from . import crossref, security, tools
from ..simulation.runner import SIM_RULE, SIM_TITLE
from ..simulation.runner import findings as simulation_findings
from .model import Finding, Result, load_env_manifests

RULE_TITLES: dict[str, str] = {
    "ENV001": "environment file matches schemas/environment.schema.json and its invariants",
    "KCF001": "kubeconform -strict: manifest matches its pinned schema",
    "KCF002": "kubeconform: every kind has a schema (missing schemas are errors)",
    **{rule_id: title for rule_id, title, _ in crossref.CHECKS},
    "XREF005": "adapter metricsQuery templates and dashboard queries parse as PromQL (promtool)",
    "PROM001": "promtool check rules on each PrometheusRule",
    "PROM002": "promtool test rules: generated alert scenarios pass against the rendered rules",
    **security.RULES,
    SIM_RULE: SIM_TITLE,
}


def _env_findings(path: Path) -> tuple[EnvironmentConfig | None, list[Finding]]:
    try:
        return load_environment(path), []
    except ConfigErrors as exc:
        errors: list[ConfigError] = exc.errors
    except ConfigError as exc:
        errors = [exc]
    return None, [
        Finding(rule="ENV001", env=path.stem, file=e.file + (f":{e.line}" if e.line else ""), obj=e.path or "<root>", message=e.problem, fix=e.fix)
        for e in errors
    ]


def validate(env_dir: Path, dist: Path, only: str | None = None) -> Result:
    result = Result(checks=list(RULE_TITLES))
    envs: dict[str, EnvironmentConfig | None] = {}
    for path in environment_files(env_dir, only):
        env, findings = _env_findings(path)
        envs[path.stem] = env
        result.findings += findings
    versions = sorted((e.kubernetes_version for e in envs.values() if e), key=lambda v: tuple(map(int, v.split("."))))
    for name, env in envs.items():
        folder = dist / name
        if not folder.is_dir():
            raise UserError(f"{folder} not found; run 'backlog-gitops synth' first")
        em = load_env_manifests(folder)
        version = env.kubernetes_version if env else (versions[-1] if versions else "1.32.0")
        result.findings += tools.kubeconform(em, version)
        for rule_id, _, check in crossref.CHECKS:
            try:
                result.findings += list(check(em, env))
            except (TypeError, KeyError, AttributeError, ValueError) as exc:
                # A malformed manifest (reported by kubeconform) must not hide the other findings.
                result.findings.append(
                    Finding(rule=rule_id, env=name, file=f"{name}/", obj="-", message=f"could not run this check on malformed manifests ({exc})",
                            fix="fix the KCF001 findings first")  # fmt: skip
                )
        result.findings += tools.promql_parses(em)
        result.findings += tools.promtool_rules(em)
        result.findings += tools.promtool_scenarios(em, env)
        result.findings += security.run(em)
        if env is not None:
            result.findings += simulation_findings(env, em)
    argocd = dist / ARGOCD_CHART
    if only is None and argocd.is_dir():
        em = load_env_manifests(argocd)
        result.findings += tools.kubeconform(em, versions[-1] if versions else "1.32.0")
    return result
