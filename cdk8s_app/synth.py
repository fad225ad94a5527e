"""Render environments into dist/ atomically, and check that a committed dist/ is fresh."""

from __future__ import annotations

import filecmp
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .app import build_app
from .config import load_environments


@dataclass(frozen=True, kw_only=True)
class Staleness:
    """Files that differ between the committed dist/ and a fresh render (paths relative to dist/)."""

    changed: tuple[str, ...]
    missing: tuple[str, ...]
    """Rendered but not committed."""
    extra: tuple[str, ...]
    """Committed but no longer rendered."""

    @property
    def fresh(self) -> bool:
        return not (self.changed or self.missing or self.extra)


def render(env_dir: Path, outdir: Path, only: str | None = None) -> list[str]:
    """Synthesize into ``outdir`` (which must not exist or be empty); returns the environment names."""
    envs = load_environments(env_dir, only)
    build_app(envs, outdir, with_argocd=only is None).synth()
    return [e.name for e in envs]


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()} if root.is_dir() else set()


def synth(env_dir: Path, dist: Path, only: str | None = None) -> list[str]:
    """Render into a temp folder next to dist/, then swap it in; a failure leaves dist/ untouched."""
    dist.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".dist-new-", dir=dist.parent))
    try:
        names = render(env_dir, tmp, only)
        targets = [(tmp / only, dist / only)] if only else [(tmp, dist)]
        for new, current in targets:
            old = Path(tempfile.mkdtemp(prefix=".dist-old-", dir=dist.parent))
            os.rmdir(old)
            if current.exists():
                current.rename(old)
            new.rename(current)  # same filesystem: atomic
            shutil.rmtree(old, ignore_errors=True)
        return names
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def check(env_dir: Path, dist: Path) -> Staleness:
    """Compare a fresh render of every environment with ``dist``."""
    with tempfile.TemporaryDirectory(prefix="backlog-gitops-check-") as tmp:
        fresh_root = Path(tmp)
        render(env_dir, fresh_root)
        fresh, committed = _files(fresh_root), _files(dist)
        changed = sorted(f for f in fresh & committed if not filecmp.cmp(fresh_root / f, dist / f, shallow=False))
        return Staleness(changed=tuple(changed), missing=tuple(sorted(fresh - committed)), extra=tuple(sorted(committed - fresh)))

