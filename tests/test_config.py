"""Bad environment files: one clear line per problem naming file, path and fix; exit 2; dist/ untouched."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cdk8s_app.cli import app
from cdk8s_app.config import ConfigErrors, load_environment, load_environments

from .conftest import DIST, ENVIRONMENTS


def _set(path: list[Any], value: Any):
    def edit(data: dict[str, Any]) -> None:
        node = data
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = value

    return edit


def _delete(path: list[Any]):
    def edit(data: dict[str, Any]) -> None:
        node = data
        for part in path[:-1]:
            node = node[part]
        del node[path[-1]]

    return edit


CASES = [
    pytest.param(_set(["consumers", 0, "maxReplicas"], "ten"), "consumers[0].maxReplicas", "'ten' is not of type 'integer'", id="wrong-type"),
    pytest.param(_delete(["consumers", 1, "stream"]), "consumers[1]", "'stream' is a required property", id="missing-field"),
    pytest.param(_set(["consumers", 0, "maxReplica"], 3), "consumers[0].maxReplica", "unknown key 'maxReplica'", id="unknown-key"),
    pytest.param(_set(["consumers", 0, "minReplicas"], 9), "consumers[0].minReplicas", "'minReplicas' (9) must be <= 'maxReplicas' (6)", id="min-gt-max"),
    pytest.param(_set(["images", "exporter"], "natsio/prometheus-nats-exporter:latest"), "images.exporter", "does not match", id="image-not-pinned"),
    pytest.param(_set(["alerts", "criticalFor"], "5m"), "alerts.criticalFor", "must be longer than 'warningFor'", id="critical-before-warning"),
    pytest.param(_set(["slo", "drainCapSeconds"], 300), "slo.drainCapSeconds", "must be > 'drainP95Seconds'", id="cap-below-p95"),
    pytest.param(_set(["name"], "other"), "name", "differs from the file name", id="name-mismatch"),
    pytest.param(
        lambda d: d["consumers"].append({**d["consumers"][0], "name": "copy"}), "consumers[2].consumer", "already scaled by consumers[0]", id="duplicate-consumer"
    ),
    pytest.param(_set(["consumers", 0, "scaleUp"], {"selectPolicy": "Max", "podsPerPeriod": 0}), "consumers[0].scaleUp.podsPerPeriod", "less than the minimum", id="zero-policy"),
]


@pytest.mark.parametrize(("edit", "path", "problem"), CASES)
def test_bad_config_is_reported_with_file_path_and_fix(env_copy, edit, path: str, problem: str) -> None:
    folder = env_copy(edit)
    with pytest.raises(ConfigErrors) as info:
        load_environment(folder / "staging.yaml")
    message = str(info.value)
    assert f": {path}: " in message
    assert problem in message
    assert "staging.yaml:" in message and "(fix: " in message


@pytest.mark.parametrize(("edit", "path", "problem"), CASES[:4])
def test_cli_exit_code_2_no_traceback_dist_untouched(env_copy, tmp_path: Path, edit, path: str, problem: str) -> None:
    folder = env_copy(edit)
    dist = tmp_path / "dist"
    shutil.copytree(DIST, dist)
    before = {p: p.read_bytes() for p in dist.rglob("*") if p.is_file()}
    result = CliRunner().invoke(app, ["synth", "--environments", str(folder), "--dist", str(dist)])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and path in lines[0]
    assert {p: p.read_bytes() for p in dist.rglob("*") if p.is_file()} == before
    assert not list(tmp_path.glob(".dist-*")), "temporary render left behind"


def test_line_number_points_at_the_offending_key(env_copy) -> None:
    folder = env_copy(_set(["consumers", 0, "maxReplicas"], "ten"))
    text = (folder / "staging.yaml").read_text().splitlines()
    with pytest.raises(ConfigErrors) as info:
        load_environment(folder / "staging.yaml")
    line = int(str(info.value).split(":")[1])
    assert "maxReplicas" in text[line - 1]


def test_invalid_yaml(env_copy) -> None:
    folder = env_copy(text="name: staging\n  bad: [\n")
    with pytest.raises(ConfigErrors) as info:
        load_environments(folder)
    assert "not valid YAML" in str(info.value)


def test_errors_of_all_files_are_collected(env_copy) -> None:
    folder = env_copy(_set(["consumers", 0, "maxReplicas"], "ten"))
    (folder / "production.yaml").write_text((folder / "production.yaml").read_text().replace("minReplicas: 3", "minReplicas: 99"))
    with pytest.raises(ConfigErrors) as info:
        load_environments(folder)
    assert {e.file.split("/")[-1] for e in info.value.errors} == {"staging.yaml", "production.yaml"}


def test_unknown_environment_name() -> None:
    result = CliRunner().invoke(app, ["synth", "--env", "qa", "--environments", str(ENVIRONMENTS), "--dist", "/nonexistent/dist"])
    assert result.exit_code == 2
    assert "no environment named 'qa'" in result.output and "production, staging" in result.output


def test_defaults_are_applied_once() -> None:
    env = load_environment(ENVIRONMENTS / "staging.yaml")
    assert env.alerts.exporter_down_for_seconds == 120
    assert env.grafana.namespace == env.namespace
    assert env.consumers[0].scale_up.select_policy == "Max"
    assert env.consumers[0].scale_down.stabilization_window_seconds == 300


def test_environments_differ_where_real_ones_would() -> None:
    staging = load_environment(ENVIRONMENTS / "staging.yaml")
    production = load_environment(ENVIRONMENTS / "production.yaml")
    assert production.consumer("orders-processor").max_replicas > staging.consumer("orders-processor").max_replicas
    assert production.slo.budget_window_days > staging.slo.budget_window_days
    assert production.alerts.backlog_threshold != staging.alerts.backlog_threshold
    assert production.adapter.replicas > staging.adapter.replicas
