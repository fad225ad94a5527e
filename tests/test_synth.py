"""The rendered output: committed dist/ is the golden copy, synth is deterministic and atomic."""

from __future__ import annotations

import filecmp
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cdk8s_app.cli import app
from cdk8s_app.synth import check, render, synth

from .conftest import DIST, ENVIRONMENTS, ROOT


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_committed_dist_matches_a_fresh_render(rendered: Path) -> None:
    """Golden test per environment: dist/ as committed is exactly what the code renders."""
    assert tree(rendered) == tree(DIST)


def test_each_environment_and_argocd_have_their_folder(rendered: Path) -> None:
    assert sorted(p.name for p in rendered.iterdir()) == ["argocd", "production", "staging"]
    assert all(".k8s.yaml" in p.name for p in rendered.rglob("*") if p.is_file())


def test_rerender_is_byte_identical(rendered: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    render(ENVIRONMENTS, again)
    assert tree(again) == tree(rendered)


def test_synth_removes_files_of_removed_resources(env_copy, tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    synth(ENVIRONMENTS, dist)
    assert (dist / "staging" / "HorizontalPodAutoscaler.payments-settler.k8s.yaml").exists()
    envs = env_copy(lambda d: d.update(consumers=d["consumers"][:1]))
    synth(envs, dist)
    assert not (dist / "staging" / "HorizontalPodAutoscaler.payments-settler.k8s.yaml").exists()
    assert (dist / "staging" / "HorizontalPodAutoscaler.orders-processor.k8s.yaml").exists()


def test_synth_one_environment_leaves_the_others(env_copy, tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    synth(ENVIRONMENTS, dist)
    before = tree(dist / "production")
    envs = env_copy(lambda d: d["consumers"][0].update(maxReplicas=5))
    synth(envs, dist, "staging")
    assert tree(dist / "production") == before
    assert "maxReplicas: 5" in (dist / "staging" / "HorizontalPodAutoscaler.orders-processor.k8s.yaml").read_text()
    assert (dist / "argocd").is_dir()


def test_check_reports_stale_files(env_copy, tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    shutil.copytree(DIST, dist)
    assert check(ENVIRONMENTS, dist).fresh
    (dist / "staging" / "Service.nats-exporter.k8s.yaml").write_text("stale\n")
    (dist / "staging" / "Extra.k8s.yaml").write_text("x\n")
    (dist / "production" / "Service.nats-exporter.k8s.yaml").unlink()
    result = check(ENVIRONMENTS, dist)
    assert result.changed == ("staging/Service.nats-exporter.k8s.yaml",)
    assert result.extra == ("staging/Extra.k8s.yaml",)
    assert result.missing == ("production/Service.nats-exporter.k8s.yaml",)


def test_cli_synth_check_exit_codes(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    shutil.copytree(DIST, dist)
    runner = CliRunner()
    ok = runner.invoke(app, ["synth", "--check", "--dist", str(dist), "--environments", str(ENVIRONMENTS)])
    assert ok.exit_code == 0, ok.output
    (dist / "staging" / "Service.nats-exporter.k8s.yaml").write_text("stale\n")
    stale = runner.invoke(app, ["synth", "--check", "--dist", str(dist), "--environments", str(ENVIRONMENTS)])
    assert stale.exit_code == 1
    assert "changed: " in stale.output and "staging/Service.nats-exporter.k8s.yaml" in stale.output


@pytest.mark.skipif(not (ROOT / "node_modules" / ".bin" / "cdk8s").exists(), reason="cdk8s CLI not installed (run scripts/setup.sh)")
def test_cdk8s_cli_synth_is_byte_identical(tmp_path: Path) -> None:
    """`cdk8s synth` (cdk8s.yaml) and `backlog-gitops synth` produce the same bytes."""
    out = tmp_path / "cdk8s-out"
    env = {**os.environ, "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1"}
    subprocess.run([str(ROOT / "node_modules" / ".bin" / "cdk8s"), "synth", "--output", str(out)], cwd=ROOT, env=env, check=True, capture_output=True)
    cmp = filecmp.dircmp(out, DIST)
    assert tree(out) == tree(DIST), cmp.report()
