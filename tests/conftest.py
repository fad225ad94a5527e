from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

ROOT = Path(__file__).resolve().parent.parent
ENVIRONMENTS = ROOT / "environments"
DIST = ROOT / "dist"


def load_docs(folder: Path) -> dict[str, dict[str, Any]]:
    """{'Kind/name' or 'Kind/namespace/name': manifest} for every file under folder."""
    docs: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        meta = doc["metadata"]
        key = "/".join(x for x in (doc["kind"], meta.get("namespace"), meta["name"]) if x)
        docs[key] = doc
    return docs


@pytest.fixture(scope="session")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh render of the shipped environments."""
    from cdk8s_app.synth import render

    out = tmp_path_factory.mktemp("rendered") / "dist"
    render(ENVIRONMENTS, out)
    return out


@pytest.fixture
def env_copy(tmp_path: Path) -> Callable[..., Path]:
    """Copy environments/ into tmp_path and apply an edit to one file's YAML data; returns the folder."""

    def make(edit: Callable[[dict[str, Any]], None] | None = None, env: str = "staging", text: str | None = None) -> Path:
        folder = tmp_path / "environments"
        shutil.copytree(ENVIRONMENTS, folder, dirs_exist_ok=True)
        target = folder / f"{env}.yaml"
        if text is not None:
            target.write_text(text)
        elif edit is not None:
            data = yaml.safe_load(target.read_text())
            edit(data)
            target.write_text(yaml.safe_dump(data, sort_keys=False))
        return folder

    return make


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository holding the shipped environments and their rendered dist/, committed as HEAD."""
    from cdk8s_app.synth import synth

    root = tmp_path / "repo"
    shutil.copytree(ENVIRONMENTS, root / "environments")
    synth(root / "environments", root / "dist")
    git(root, "init", "-q", "-b", "main")
    git(root, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "--allow-empty", "-m", "empty")
    git(root, "add", "-A")
    git(root, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "render")
    return root


def edit(root: Path, env: str, change: Any) -> None:
    path = root / "environments" / f"{env}.yaml"
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
