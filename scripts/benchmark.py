#!/usr/bin/env python3
"""Measure synth, validate, simulate and diff at fleet scale (not a test: prints wall-clock figures).

    .venv/bin/python scripts/benchmark.py --envs 50 --consumers 40

Generates N environments x M consumers from environments/staging.yaml into a temp folder, then times
rendering them, validating every one (kubeconform, cross-references, promtool, security, simulation),
simulating every consumer under its load profiles, and diffing a fresh render against the result.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ["PATH"] = f"{ROOT / '.tools' / 'bin'}:{os.environ['PATH']}"

from cdk8s_app.config import load_environments  # noqa: E402
from cdk8s_app.review import review  # noqa: E402
from cdk8s_app.simulation import runner  # noqa: E402
from cdk8s_app.synth import render  # noqa: E402
from cdk8s_app.validation.runner import validate  # noqa: E402


def fleet(folder: Path, envs: int, consumers: int) -> None:
    base = yaml.safe_load((ROOT / "environments" / "staging.yaml").read_text())
    template = base["consumers"][0]
    for e in range(envs):
        env = copy.deepcopy(base)
        env["name"] = f"env{e:03d}"
        env["consumers"] = [
            {**copy.deepcopy(template), "name": f"consumer-{c:03d}", "deployment": f"consumer-{c:03d}", "consumer": f"durable-{c:03d}", "stream": f"STREAM{c % 7}"}
            for c in range(consumers)
        ]
        (folder / f"{env['name']}.yaml").write_text(yaml.safe_dump(env, sort_keys=False))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--envs", type=int, default=50)
    parser.add_argument("--consumers", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env_dir, dist = Path(tmp) / "environments", Path(tmp) / "dist"
        env_dir.mkdir()
        fleet(env_dir, args.envs, args.consumers)
        start = time.perf_counter()
        render(env_dir, dist)
        synth_s = time.perf_counter() - start
        files = sum(1 for p in dist.rglob("*.yaml"))
        start = time.perf_counter()
        result = validate(env_dir, dist)
        validate_s = time.perf_counter() - start
        start = time.perf_counter()
        cases = [c for env in load_environments(env_dir) for c in runner.plan(env, dist)]
        results = runner.run(cases)
        simulate_s = time.perf_counter() - start
        start = time.perf_counter()
        changes = review(env_dir, dist).changes
        diff_s = time.perf_counter() - start
    print(f"fleet: {args.envs} environments x {args.consumers} consumers, {files} manifests")
    print(f"synth:    {synth_s:7.2f} s")
    print(f"validate: {validate_s:7.2f} s ({len(result.findings)} findings)")
    seconds = sum(r.outcome.horizon_seconds for r in results)
    print(f"simulate: {simulate_s:7.2f} s ({len(results)} consumer-profiles, {seconds / 3600:.0f} simulated hours)")
    print(f"diff:     {diff_s:7.2f} s (render + compare, {len(changes)} changes)")
    start = time.perf_counter()
    validate(ROOT / "environments", ROOT / "dist")
    print(f"validate (shipped staging + production): {time.perf_counter() - start:.2f} s")
    start = time.perf_counter()
    shipped = runner.run([c for env in load_environments(ROOT / "environments") for c in runner.plan(env, ROOT / "dist")])
    print(f"simulate (shipped, {len(shipped)} consumer-profiles): {time.perf_counter() - start:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
