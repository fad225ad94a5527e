"""backlog-gitops: the command line. Thin: parses options, calls the library, maps errors to exit codes."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Optional

import typer

from .errors import UserError

app = typer.Typer(
    name="backlog-gitops",
    help="Render, validate, review and simulate backlog autoscaling of NATS JetStream consumers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

EnvOption = Annotated[Optional[str], typer.Option("--env", help="Only this environment (default: all).")]
EnvDirOption = Annotated[Path, typer.Option("--environments", help="Folder of environment files.")]
DistOption = Annotated[Path, typer.Option("--dist", help="Folder of rendered manifests.")]


@app.callback()
def _root() -> None:
    """Render, validate, review and simulate backlog autoscaling of NATS JetStream consumers."""


def fail(exc: UserError) -> typer.Exit:
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(exc.exit_code)


def check_output(output: str, formats: Mapping[str, object]) -> None:
    if output not in formats:
        raise UserError(f"unknown --output {output!r}; use one of: {', '.join(formats)}")


@app.command()
def synth(
    env: EnvOption = None,
    check: Annotated[bool, typer.Option("--check", help="Do not write; exit 1 if dist/ differs from a fresh render.")] = False,
    environments: EnvDirOption = Path("environments"),
    dist: DistOption = Path("dist"),
) -> None:
    """Render environments/*.yaml into dist/<env>/ (one file per resource), atomically."""
    from . import synth as synth_mod

    try:
        if check:
            if env is not None:
                raise UserError("--check compares the whole dist/; drop --env")
            result = synth_mod.check(environments, dist)
            if result.fresh:
                typer.echo(f"{dist}/ is up to date")
                return
            typer.echo(f"{dist}/ is stale; run 'backlog-gitops synth' and commit the result:", err=True)
            for label, files in (("changed", result.changed), ("not committed", result.missing), ("no longer rendered", result.extra)):
                for f in files:
                    typer.echo(f"  {label}: {dist}/{f}", err=True)
            raise typer.Exit(1)
        names = synth_mod.synth(environments, dist, env)
        typer.echo(f"rendered {', '.join(names)} into {dist}/")
    except UserError as exc:
        raise fail(exc) from None


@app.command()
def validate(
    env: EnvOption = None,
    output: Annotated[str, typer.Option("--output", "-o", help="text, json or junit.")] = "text",
    environments: EnvDirOption = Path("environments"),
    dist: DistOption = Path("dist"),
) -> None:
    """Check environment files and dist/: schemas (kubeconform), cross-references, promtool, security policy."""
    from .validation.reporters import REPORTERS
    from .validation.runner import RULE_TITLES
    from .validation.runner import validate as run_validate

    try:
        check_output(output, REPORTERS)
        result = run_validate(environments, dist, env)
    except UserError as exc:
        raise fail(exc) from None
    typer.echo(REPORTERS[output](result, RULE_TITLES), nl=False)
    if not result.ok:
        raise typer.Exit(1)


@app.command()
def diff(
    base: Annotated[Optional[str], typer.Option("--base", help="Git ref whose committed dist/ to compare with (default: dist/ in the working tree).")] = None,
    env: EnvOption = None,
    output: Annotated[str, typer.Option("--output", "-o", help="text, markdown (a PR comment) or json.")] = "text",
    exit_code: Annotated[bool, typer.Option("--exit-code", help="Exit 1 when anything changed.")] = False,
    environments: EnvDirOption = Path("environments"),
    dist: DistOption = Path("dist"),
) -> None:
    """Show, resource by resource, how a fresh render differs from dist/ (or from dist/ at --base)."""
    from . import review

    try:
        check_output(output, review.FORMATS)
        result = review.review(environments, dist, base_ref=base, only=env)
    except UserError as exc:
        raise fail(exc) from None
    typer.echo(review.FORMATS[output](result), nl=False)
    if exit_code and result.has_changes:
        raise typer.Exit(1)


@app.command()
def simulate(
    env: EnvOption = None,
    consumer: Annotated[Optional[str], typer.Option("--consumer", help="Only this consumer.")] = None,
    profile: Annotated[
        Optional[str], typer.Option("--profile", help="A declared load profile's name, or a recorded series file (.csv seconds,rate / .json).")
    ] = None,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="Write a PNG of backlog, replicas and drain time vs the SLO.")] = None,
    base: Annotated[
        Optional[str], typer.Option("--base", help="Also simulate the HPAs as committed in dist/ at this git ref, under the same load.")
    ] = None,
    output: Annotated[str, typer.Option("--output", "-o", help="text, markdown (a PR comment section) or json.")] = "text",
    environments: EnvDirOption = Path("environments"),
    dist: DistOption = Path("dist"),
) -> None:
    """Simulate each consumer's HPA (as rendered in dist/) under its load profiles; exit 1 when one misses the drain SLO."""
    from .config import load_environments
    from .simulation import runner

    try:
        check_output(output, runner.FORMATS)
        if plot is not None and plot.suffix.lower() != ".png":
            raise UserError(f"--plot {plot}: the plot is a PNG; name the file *.png")
        cases = []
        for config in load_environments(environments, env):
            if consumer is None or any(c.name == consumer for c in config.consumers):
                cases += runner.plan(config, dist, consumer=consumer, profile=profile)
        if not cases:
            raise UserError(f"nothing to simulate: no consumer {consumer!r}" if consumer else "nothing to simulate: no loadProfiles declared")
        results = runner.run(cases, runner.base_specs(dist, base, cases) if base else None)
    except UserError as exc:
        raise fail(exc) from None
    typer.echo(runner.FORMATS[output](results), nl=False)
    if plot is not None:
        runner.plot(results, plot)
        typer.echo(f"plot written to {plot}", err=True)
    if not all(r.outcome.passed for r in results):
        raise typer.Exit(1)


@app.command("test-rules")
def test_rules(
    env: EnvOption = None,
    environments: EnvDirOption = Path("environments"),
    dist: DistOption = Path("dist"),
    write: Annotated[Optional[Path], typer.Option("--write", help="Also write each environment's promtool test file here.")] = None,
) -> None:
    """Run the alert-scenario tests (promtool test rules) against the PrometheusRule in dist/<env>/."""
    import yaml

    from . import rule_tests
    from .config import load_environments
    from .validation.model import load_env_manifests
    from .validation.tools import find_tool

    try:
        failed = False
        promtool = find_tool("promtool")
        for config in load_environments(environments, env):
            em = load_env_manifests(dist / config.name)
            for manifest, groups in em.rule_groups:
                result = rule_tests.run(config, groups, promtool)
                status = "PASS" if result.ok else "FAIL"
                typer.echo(f"{status} {config.name} {manifest.ref}: {result.scenarios} scenarios")
                if not result.ok:
                    failed = True
                    typer.echo(result.output)
            if write is not None:
                write.mkdir(parents=True, exist_ok=True)
                spec = rule_tests.test_file(config, f"{config.name}.rules.yaml")
                (write / f"{config.name}.tests.yaml").write_text(yaml.safe_dump(spec, sort_keys=False, width=200))
    except UserError as exc:
        raise fail(exc) from None
    if failed:
        raise typer.Exit(1)


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())
