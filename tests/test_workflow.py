"""The CI workflow we ship for users' repos: actionlint-clean, and it only calls commands and options that exist."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from cdk8s_app.cli import app
from cdk8s_app.validation.tools import find_tool

from .conftest import ROOT

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yaml"))
runner = CliRunner()


def actionlint(*files: Path) -> subprocess.CompletedProcess[str]:
    # shellcheck on PATH makes actionlint lint the run: scripts too; setup installs it.
    return subprocess.run([find_tool("actionlint"), "-no-color", *map(str, files)], capture_output=True, text=True, check=False, cwd=ROOT)


def test_shipped_workflows_are_lint_clean() -> None:
    assert WORKFLOWS
    result = actionlint(*WORKFLOWS)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        (("timeout-minutes: 30", "timeout-minutes: thirty"), "timeout-minutes"),
        (('--base "origin/$BASE_REF" --output markdown', "--base origin/$BASE_REF --output markdown"), "SC2086"),
        (("if: github.event_name == 'pull_request'", "if: github.event_nam == 'pull_request'"), "event_nam"),
    ],
)
def test_actionlint_catches_a_broken_workflow(tmp_path: Path, breakage: tuple[str, str], expected: str) -> None:
    text = (ROOT / ".github" / "workflows" / "backlog-gitops.yaml").read_text()
    old, new = breakage
    assert old in text
    broken = tmp_path / ".github" / "workflows" / "broken.yaml"
    broken.parent.mkdir(parents=True)
    broken.write_text(text.replace(old, new))
    result = actionlint(broken)
    assert result.returncode == 1
    assert expected in result.stdout


def test_workflow_calls_only_existing_commands_and_options() -> None:
    calls = []
    for wf in WORKFLOWS:
        for job in yaml.safe_load(wf.read_text())["jobs"].values():
            for step in job["steps"]:
                for line in str(step.get("run", "")).splitlines():
                    if "backlog-gitops " in line:
                        words = shlex.split(line.split("backlog-gitops ", 1)[1].split("|")[0].split(">")[0])
                        calls.append(words)
    assert {c[0] for c in calls} >= {"synth", "validate", "test-rules", "diff"}
    for words in calls:
        help_text = runner.invoke(app, [words[0], "--help"], terminal_width=200).output
        for option in (w for w in words[1:] if w.startswith("--")):
            assert re.search(rf"{re.escape(option)}\b", help_text), f"{words[0]} has no option {option}"
