"""simulate: every consumer of an environment against its declared load envelope, with the HPA as rendered in dist/."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..adapter_rules import BACKLOG_METRIC, DRAIN_P95_METRIC
from ..config import ConsumerConfig, EnvironmentConfig
from ..durations import parse_duration
from ..errors import UserError
from ..review import load_git
from ..slo_rules import RULE_INTERVAL_SECONDS
from ..validation.model import EnvManifests, Finding, load_env_manifests
from .engine import ConsumerModel, Outcome, Slo, simulate
from .hpa import HpaSpec
from .load import Arrivals, from_profile, load_recorded


@dataclass(frozen=True)
class Case:
    env: str
    consumer: str
    namespace: str
    spec: HpaSpec
    model: ConsumerModel
    arrivals: Arrivals
    slo: Slo


@dataclass(frozen=True)
class CaseResult:
    case: Case
    outcome: Outcome
    base: Outcome | None = None
    """The same load against the HPA as committed at --base (None: no base, or the HPA is new)."""
    base_spec: HpaSpec | None = None

    @property
    def changed(self) -> bool:
        return self.base_spec != self.case.spec

    def advice(self) -> str:
        """What to change, for a failed case."""
        o, s = self.outcome, self.case.spec
        if o.required_replicas > s.max_replicas:
            return (
                f"the peak of {max(self.case.arrivals.rates):.0f} msg/s needs {o.required_replicas} replicas at "
                f"{self.case.model.throughput_per_replica:g} msg/s each, but maxReplicas is {s.max_replicas}: raise maxReplicas"
            )
        if o.seconds_at_max_replicas:
            return f"it ran at maxReplicas {s.max_replicas} for {o.seconds_at_max_replicas}s: raise maxReplicas or throughput per replica"
        return "scale-up is too slow: lower backlogTargetPerReplica, allow more pods per scale-up period, or shorten pod start-up"


def hpa_spec(em: EnvManifests, consumer: ConsumerConfig) -> HpaSpec:
    manifest = em.find("HorizontalPodAutoscaler", consumer.name, consumer.namespace)
    if manifest is None:
        raise UserError(f"{em.folder}: no HorizontalPodAutoscaler {consumer.namespace}/{consumer.name}; run 'backlog-gitops synth'")
    try:
        return HpaSpec.from_manifest(manifest.doc, BACKLOG_METRIC, DRAIN_P95_METRIC)
    except (KeyError, StopIteration, TypeError, ValueError):
        raise UserError(
            f"{manifest.path}: not an autoscaling/v2 HPA with an External AverageValue target on {BACKLOG_METRIC}; "
            "run 'backlog-gitops synth' (and 'validate')"
        ) from None


def plan(
    env: EnvironmentConfig, dist: Path | EnvManifests, *, consumer: str | None = None, profile: str | None = None, skip_malformed: bool = False
) -> list[Case]:
    """The cases to run; ``profile`` is a declared profile's name or a recorded series file (CSV/JSON).

    ``dist`` is the dist/ folder or the environment's already loaded manifests; ``skip_malformed`` leaves out
    consumers whose HPA is missing or malformed (validate reports those under other rules).
    """
    em = dist if isinstance(dist, EnvManifests) else load_env_manifests(dist / env.name)
    consumers = [c for c in env.consumers if consumer is None or c.name == consumer]
    if not consumers:
        raise UserError(f"{env.name}: no consumer {consumer!r}; known: {', '.join(c.name for c in env.consumers)}")
    recorded = load_recorded(Path(profile)) if profile and Path(profile).suffix in (".csv", ".json") else None
    slo = Slo(drain_p95_seconds=env.slo.drain_p95_seconds, drain_cap_seconds=env.slo.drain_cap_seconds)
    model_base = {
        "scrape_interval_seconds": parse_duration(env.prometheus.scrape_interval),
        "rule_interval_seconds": RULE_INTERVAL_SECONDS,
    }
    cases = []
    for c in consumers:
        model = ConsumerModel(throughput_per_replica=c.throughput_per_replica, pod_startup_seconds=c.pod_startup_seconds, **model_base)
        if recorded is not None:
            profiles = [recorded]
        else:
            profiles = [from_profile(p) for p in c.load_profiles if profile is None or p.name == profile]
            if profile is not None and not profiles:
                known = ", ".join(p.name for p in c.load_profiles) or "none"
                raise UserError(f"{env.name}/{c.name}: no load profile {profile!r} (declared: {known}); or pass a .csv/.json file")
        try:
            spec = hpa_spec(em, c)
        except UserError:
            if skip_malformed:
                continue
            raise
        cases += [Case(env.name, c.name, c.namespace, spec, model, a, slo) for a in profiles]
    return cases


def run(cases: list[Case], base_specs: dict[tuple[str, str], HpaSpec | None] | None = None) -> list[CaseResult]:
    """Simulate each case; with ``base_specs`` ((env, consumer) -> HPA at the base ref), also the base HPA under the
    same load, so a reviewer sees what the change does to drain time."""
    results = []
    for c in cases:
        outcome = simulate(c.spec, c.model, c.arrivals, c.slo)
        if base_specs is None:
            results.append(CaseResult(c, outcome))
            continue
        base_spec = base_specs.get((c.env, c.consumer))
        base = None
        if base_spec is not None:
            base = outcome if base_spec == c.spec else simulate(base_spec, c.model, c.arrivals, c.slo)
        results.append(CaseResult(c, outcome, base, base_spec))
    return results


def base_specs(dist: Path, ref: str, cases: list[Case]) -> dict[tuple[str, str], HpaSpec | None]:
    """The HPAs of ``cases`` as committed in dist/ at ``ref`` (None where the HPA did not exist or did not parse)."""
    snapshot = load_git(dist, ref)
    by_name = {(k.env, k.namespace, k.name): doc for k, doc in snapshot.items() if k.kind == "HorizontalPodAutoscaler"}
    out: dict[tuple[str, str], HpaSpec | None] = {}
    for c in cases:
        doc = by_name.get((c.env, c.namespace, c.consumer))
        try:
            out[(c.env, c.consumer)] = HpaSpec.from_manifest(doc, BACKLOG_METRIC, DRAIN_P95_METRIC) if doc else None
        except (KeyError, StopIteration, TypeError, ValueError):
            out[(c.env, c.consumer)] = None
    return out


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


COLUMNS = ("ENV", "CONSUMER", "PROFILE", "PEAK BACKLOG", "P95 DRAIN", "MAX DRAIN", "FIRST SCALE-UP", "PEAK REPLICAS", "REPLICA-MIN", "RESULT")


def row(r: CaseResult) -> tuple[str, ...]:
    o = r.outcome
    return (
        r.case.env,
        r.case.consumer,
        o.profile,
        f"{o.peak_backlog:,.0f}",
        f"{o.drain_p95_seconds:.0f}s",
        f"{o.drain_max_seconds:.0f}s",
        _clock(o.first_scale_up_seconds),
        f"{o.peak_replicas}/{r.case.spec.max_replicas}",
        f"{o.replica_minutes:,.0f}",
        "PASS" if o.passed else "FAIL",
    )


def failure_message(r: CaseResult) -> str:
    o = r.outcome
    return f"{r.case.env}/{r.case.consumer} under {o.profile}: {'; '.join(o.violations)} (peak backlog {o.peak_backlog:,.0f}); {r.advice()}"


def _delta(base: Outcome, head: Outcome) -> str:
    return (
        f"P95 drain {base.drain_p95_seconds:.0f}s → {head.drain_p95_seconds:.0f}s, max drain {base.drain_max_seconds:.0f}s → "
        f"{head.drain_max_seconds:.0f}s, peak replicas {base.peak_replicas} → {head.peak_replicas}, replica-minutes "
        f"{base.replica_minutes:,.0f} → {head.replica_minutes:,.0f}"
    )


def as_text(results: list[CaseResult]) -> str:
    rows = [COLUMNS, *(row(r) for r in results)]
    widths = [max(len(x[i]) for x in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(x, widths, strict=True)).rstrip() for x in rows]
    compared = [r for r in results if r.base is not None and r.base is not r.outcome]
    lines += [""] + [f"vs base: {r.case.env}/{r.case.consumer} under {r.outcome.profile}: {_delta(r.base, r.outcome)}" for r in compared if r.base] if compared else []
    failed = [r for r in results if not r.outcome.passed]
    lines += [""] + [f"FAIL {failure_message(r)}" for r in failed] if failed else []
    undrained = [r for r in results if r.outcome.undrained_messages >= 1 and not r.outcome.passed]
    lines += [
        f"note: {r.case.env}/{r.case.consumer} under {r.outcome.profile}: {r.outcome.undrained_messages:,.0f} messages still queued at the "
        "end of the horizon; their drain times are lower bounds"
        for r in undrained
    ]
    return "\n".join(lines) + "\n"


def as_json(results: list[CaseResult]) -> str:
    out: list[dict[str, Any]] = []
    for r in results:
        o = r.outcome
        out.append(
            {
                "env": r.case.env,
                "consumer": r.case.consumer,
                "profile": o.profile,
                "horizonSeconds": o.horizon_seconds,
                "peakBacklog": round(o.peak_backlog, 1),
                "peakBacklogAtSeconds": o.peak_backlog_at,
                "drainP95Seconds": round(o.drain_p95_seconds, 1),
                "drainMaxSeconds": round(o.drain_max_seconds, 1),
                "firstScaleUpSeconds": o.first_scale_up_seconds,
                "peakReplicas": o.peak_replicas,
                "maxReplicas": r.case.spec.max_replicas,
                "secondsAtMaxReplicas": o.seconds_at_max_replicas,
                "replicaMinutes": round(o.replica_minutes, 1),
                "messages": round(o.messages, 1),
                "undrainedMessages": round(o.undrained_messages, 1),
                "slo": {"drainP95Seconds": o.slo.drain_p95_seconds, "drainCapSeconds": o.slo.drain_cap_seconds},
                "passed": o.passed,
                "violations": list(o.violations),
                "advice": None if o.passed else r.advice(),
            }
        )
    return json.dumps(out, indent=2, sort_keys=True) + "\n"


def _vs(base: Outcome | None, head: Outcome, attr: str, fmt: str) -> str:
    now = format(getattr(head, attr), fmt)
    if base is None or base is head:
        return now
    before = format(getattr(base, attr), fmt)
    return now if before == now else f"{before} → {now}"


MARKDOWN_ROWS = 60


def as_markdown(results: list[CaseResult]) -> str:
    """A PR comment section; with a base, only HPAs the change touches (and any failure) get a row."""
    shown = [r for r in results if r.changed or not r.outcome.passed]
    slo = results[0].outcome.slo if results else None
    head = "### Drain SLO simulation" + (f" (P95 < {slo.drain_p95_seconds:.0f}s, every message < {slo.drain_cap_seconds:.0f}s)" if slo else "")
    out = [head, ""]
    if not shown:
        return "\n".join([*out, f"No HPA changes; all {len(results)} consumer-profiles pass."]) + "\n"
    out += ["| Environment | Consumer | Profile | P95 drain | Max drain | Peak backlog | Peak replicas | Replica-min | Result |",
            "|---|---|---|---:|---:|---:|---:|---:|---|"]  # fmt: skip
    # Failures first, and a bounded table: a fleet-wide change must still fit in one PR comment.
    shown.sort(key=lambda r: r.outcome.passed)
    for r in shown[:MARKDOWN_ROWS]:
        o, b = r.outcome, r.base
        result = "PASS" if o.passed else "**FAIL**"
        if b is not None and b is not o and b.passed != o.passed:
            result = f"{'PASS' if b.passed else 'FAIL'} → {result}"
        peak = f"{_vs(b, o, 'peak_replicas', 'd')}/{r.case.spec.max_replicas}"
        out.append(
            f"| {r.case.env} | {r.case.consumer} | {o.profile} | {_vs(b, o, 'drain_p95_seconds', '.0f')}s | "
            f"{_vs(b, o, 'drain_max_seconds', '.0f')}s | {_vs(b, o, 'peak_backlog', ',.0f')} | {peak} | "
            f"{_vs(b, o, 'replica_minutes', ',.0f')} | {result} |"
        )
    if len(shown) > MARKDOWN_ROWS:
        out += ["", f"… and {len(shown) - MARKDOWN_ROWS} more changed consumer-profiles; run `backlog-gitops simulate` for all."]
    if len(shown) < len(results):
        out += ["", f"{len(results) - len(shown)} other consumer-profiles: HPA unchanged, SLO met."]
    failed = [r for r in shown if not r.outcome.passed][:MARKDOWN_ROWS]
    out += [""] + [f"- {failure_message(r)}" for r in failed] if failed else []
    return "\n".join(out) + "\n"


FORMATS = {"text": as_text, "json": as_json, "markdown": as_markdown}


def plot(results: list[CaseResult], path: Path) -> None:
    """One row per case: backlog and replicas over time, then drain time against the SLO lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(results), 2, figsize=(14, 3.2 * len(results)), squeeze=False)
    for (left, right), r in zip(axes, results, strict=True):
        o, tr = r.outcome, r.outcome.trace
        minutes = [t / 60 for t in range(o.horizon_seconds)]
        title = f"{r.case.env}/{r.case.consumer} · {o.profile} · {'PASS' if o.passed else 'FAIL'}"
        left.plot(minutes, tr.backlog, color="tab:blue", label="backlog")
        left.set_ylabel("backlog (messages)")
        left.set_xlabel("minutes")
        left.set_title(title, fontsize=10)
        twin = left.twinx()
        twin.step(minutes, tr.replicas, where="post", color="tab:orange", label="replicas")
        twin.step(minutes, tr.ready, where="post", color="tab:green", linestyle=":", label="ready")
        twin.axhline(r.case.spec.max_replicas, color="tab:orange", linestyle="--", linewidth=0.8)
        twin.set_ylabel("replicas")
        twin.set_ylim(0, r.case.spec.max_replicas * 1.1 + 1)
        handles = left.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
        left.legend(handles, [h.get_label() for h in handles], loc="upper right", fontsize=8)
        drained = [(m, d) for m, d in zip(minutes, tr.drain_seconds, strict=True) if d is not None]
        right.plot([m for m, _ in drained], [d for _, d in drained], color="tab:purple", label="drain time of processed messages")
        right.axhline(o.slo.drain_p95_seconds, color="tab:red", linestyle="--", label=f"P95 target {o.slo.drain_p95_seconds:.0f}s")
        right.axhline(o.slo.drain_cap_seconds, color="black", linestyle=":", label=f"cap {o.slo.drain_cap_seconds:.0f}s")
        right.set_ylabel("drain time (s)")
        right.set_xlabel("minutes")
        right.set_title(f"P95 {o.drain_p95_seconds:.0f}s · max {o.drain_max_seconds:.0f}s", fontsize=10)
        right.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    # No software/version metadata: the PNG depends only on the results.
    fig.savefig(path, dpi=80, metadata={"Software": None})
    plt.close(fig)


SIM_RULE = "SIM001"
SIM_TITLE = "simulate: each HPA drains its declared load profiles within the drain SLO (P95 and cap)"


def findings(env: EnvironmentConfig, em: EnvManifests) -> list[Finding]:
    """validate's SIM001: the declared load envelope, simulated against the HPAs in dist/."""
    out = []
    for r in run(plan(env, em, skip_malformed=True)):
        if not r.outcome.passed:
            manifest = em.find("HorizontalPodAutoscaler", r.case.consumer, r.case.namespace)
            assert manifest is not None  # plan() found it
            o = r.outcome
            message = (
                f"under load profile {o.profile!r}: {'; '.join(o.violations)} "
                f"(peak backlog {o.peak_backlog:,.0f}, peak replicas {o.peak_replicas}/{r.case.spec.max_replicas})"
            )
            out.append(Finding(rule=SIM_RULE, env=env.name, file=em.rel(manifest), obj=manifest.ref, message=message, fix=r.advice()))
    return out
