"""End to end, on loopback: does the HPA's query see the real JetStream backlog? Run alone: pytest -m e2e.

A staging variant with a lowered backlog alert threshold is rendered, and everything is driven from that render
(see tests/e2e_stack.py). The adapter's part is its documented algorithm applied to the rendered rules: discovery
by seriesQuery, name mapping, then metricsQuery with the HPA selector as label matchers.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from cdk8s_app import slo_rules
from cdk8s_app.adapter_rules import BACKLOG_METRIC
from cdk8s_app.config import ConsumerConfig, load_environment
from cdk8s_app.metrics import CONTRACT
from cdk8s_app.synth import render
from cdk8s_app.validation.model import load_env_manifests

from .conftest import ENVIRONMENTS
from .e2e_stack import Stack, running_stack, wait_until

pytestmark = pytest.mark.e2e

ALERT_THRESHOLD = 50
PUBLISHED = 120


@dataclasses.dataclass(frozen=True)
class Rendered:
    env_dir: Path
    dist_env: Path
    consumer: ConsumerConfig
    selector: dict[str, str]


@pytest.fixture(scope="module")
def rendered_env(tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    root = tmp_path_factory.mktemp("e2e-render")
    env_dir = root / "environments"
    env_dir.mkdir()
    data = yaml.safe_load((ENVIRONMENTS / "staging.yaml").read_text())
    data["alerts"]["backlogThreshold"] = ALERT_THRESHOLD
    (env_dir / "staging.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    render(env_dir, root / "dist", "staging")
    env = load_environment(env_dir / "staging.yaml")
    consumer = env.consumers[0]
    em = load_env_manifests(root / "dist" / "staging")
    hpa = em.find("HorizontalPodAutoscaler", consumer.name, consumer.namespace)
    assert hpa is not None
    metric = next(m["external"]["metric"] for m in hpa.spec["metrics"] if m["external"]["metric"]["name"] == BACKLOG_METRIC)
    return Rendered(env_dir=env_dir, dist_env=root / "dist" / "staging", consumer=consumer, selector=metric["selector"]["matchLabels"])


@pytest.fixture(scope="module")
def stack(rendered_env: Rendered, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(rendered_env.dist_env, tmp_path_factory.mktemp("e2e-run")) as s:
        yield s


# ---- NATS side (nats-py) ---------------------------------------------------------------------------------------


async def _nats(url: str, action: Any) -> Any:
    import nats

    nc = await nats.connect(url)
    try:
        return await action(nc.jetstream())
    finally:
        await nc.close()


def create_and_publish(url: str, c: ConsumerConfig, count: int) -> None:
    from nats.js.api import AckPolicy
    from nats.js.api import ConsumerConfig as JsConsumer

    async def act(js: Any) -> None:
        await js.add_stream(name=c.stream, subjects=[f"{c.stream}.>"])
        # A long ack wait keeps fetched-but-unacked messages in ack pending for the whole test.
        await js.add_consumer(c.stream, JsConsumer(durable_name=c.consumer, ack_policy=AckPolicy.EXPLICIT, ack_wait=600))
        for i in range(count):
            await js.publish(f"{c.stream}.e2e", f"message {i}".encode())

    asyncio.run(_nats(url, act))


def consume(url: str, c: ConsumerConfig, fetch: int, ack: int) -> None:
    async def act(js: Any) -> None:
        sub = await js.pull_subscribe(f"{c.stream}.>", durable=c.consumer, stream=c.stream)
        msgs = []
        while len(msgs) < fetch:
            msgs += await sub.fetch(fetch - len(msgs), timeout=5)
        for m in msgs[:ack]:
            await m.ack_sync()

    asyncio.run(_nats(url, act))


def pending(url: str, c: ConsumerConfig) -> tuple[int, int]:
    """(num_pending, num_ack_pending) of the durable consumer; (0, 0) before it exists."""
    from nats.js.errors import NotFoundError

    async def act(js: Any) -> tuple[int, int]:
        try:
            info = await js.consumer_info(c.stream, c.consumer)
        except NotFoundError:
            return 0, 0
        return int(info.num_pending), int(info.num_ack_pending)

    return asyncio.run(_nats(url, act))  # type: ignore[no-any-return]


def settles_at(probe: Any, expected: float, what: str, timeout: float = 45) -> float:
    """Wait for a scrape and rule evaluation to carry ``expected`` through; returns the value seen."""
    return wait_until(f"{what} == {expected}", lambda: (v := probe()) is not None and v == expected and v, timeout) or 0.0  # type: ignore[no-any-return]


def value_of(stack: Stack, promql: str) -> float | None:
    result = stack.query(promql)
    return float(result[0]["value"][1]) if len(result) == 1 else None


def selector_promql(name: str, selector: dict[str, str]) -> str:
    return name + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(selector.items())) + "}"


# ---- the scenario ------------------------------------------------------------------------------------------------


def test_hpa_query_returns_the_real_backlog(stack: Stack, rendered_env: Rendered, record_property: Any) -> None:
    c, sel = rendered_env.consumer, rendered_env.selector
    create_and_publish(stack.nats_url, c, PUBLISHED)
    num_pending, ack_pending = pending(stack.nats_url, c)
    assert (num_pending, ack_pending) == (PUBLISHED, 0)
    seen = settles_at(lambda: stack.external_metric(BACKLOG_METRIC, sel), PUBLISHED, "adapter backlog_current")
    assert seen == num_pending + ack_pending
    assert value_of(stack, selector_promql(slo_rules.BACKLOG, sel)) == PUBLISHED
    record_property("published", PUBLISHED)
    record_property("adapter_value_after_publish", seen)

    # Consume 60: ack 45, leave 15 unacked. Backlog = pending (60) + ack pending (15) = 75.
    consume(stack.nats_url, c, fetch=60, ack=45)
    num_pending, ack_pending = pending(stack.nats_url, c)
    assert (num_pending, ack_pending) == (60, 15)
    seen = settles_at(lambda: stack.external_metric(BACKLOG_METRIC, sel), num_pending + ack_pending, "adapter backlog_current after consuming")
    assert settles_at(lambda: value_of(stack, selector_promql(slo_rules.ACK_PENDING, sel)), ack_pending, "ack pending recording") == 15
    assert value_of(stack, selector_promql(slo_rules.PENDING, sel)) == 60
    record_property("nats_pending_after_consume", f"{num_pending}+{ack_pending}")
    record_property("adapter_value_after_consume", seen)


def test_sustained_backlog_warning_is_pending(stack: Stack, rendered_env: Rendered) -> None:
    """The backlog (75 after the scenario above, or 120 alone) is over the lowered threshold; `for: 10m` keeps it pending."""
    if pending(stack.nats_url, rendered_env.consumer) == (0, 0):
        create_and_publish(stack.nats_url, rendered_env.consumer, PUBLISHED)

    def warning() -> dict[str, Any] | None:
        return next((a for a in stack.alerts() if a["labels"].get("alertname") == "SustainedBacklogWarning"), None)

    alert = wait_until("SustainedBacklogWarning in /api/v1/alerts", warning, timeout=45)
    assert alert["state"] == "pending"
    assert {k: alert["labels"][k] for k in rendered_env.selector} == rendered_env.selector
    assert float(alert["value"]) > ALERT_THRESHOLD


def test_exporter_serves_every_contract_metric(stack: Stack, rendered_env: Rendered) -> None:
    """Every name our rules read from the exporter, against the real exporter's output with the rendered flags."""
    if pending(stack.nats_url, rendered_env.consumer) == (0, 0):
        create_and_publish(stack.nats_url, rendered_env.consumer, PUBLISHED)
    wanted = {m.name for m in CONTRACT if m.source == "exporter"}
    served: set[str] = set()

    def all_served() -> bool:
        served.update(stack.exporter_metrics())
        return wanted <= served

    with contextlib.suppress(TimeoutError):
        wait_until("contract metrics", all_served, timeout=20)
    assert not wanted - served, f"the exporter does not serve {sorted(wanted - served)}"


# ---- it must fail when the mapping breaks --------------------------------------------------------------------------


def _broken_copy(rendered_env: Rendered, tmp_path: Path, file: str, old: str, new: str) -> Path:
    folder = tmp_path / "staging"
    shutil.copytree(rendered_env.dist_env, folder)
    path = folder / file
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    return folder


def test_renamed_label_in_the_adapter_rule_breaks_the_path(stack: Stack, rendered_env: Rendered, tmp_path: Path) -> None:
    if pending(stack.nats_url, rendered_env.consumer) == (0, 0):
        create_and_publish(stack.nats_url, rendered_env.consumer, PUBLISHED)
    assert wait_until("backlog visible", lambda: stack.external_metric(BACKLOG_METRIC, rendered_env.selector))
    folder = _broken_copy(
        rendered_env, tmp_path, "ConfigMap.prometheus-adapter-config.k8s.yaml",
        'seriesQuery: jetstream_backlog{stream_name!=""', 'seriesQuery: jetstream_backlog{stream!=""',
    )  # fmt: skip
    broken = dataclasses.replace(stack, em=load_env_manifests(folder))
    assert broken.external_metric(BACKLOG_METRIC, rendered_env.selector) is None


def test_renamed_label_in_a_recording_rule_breaks_the_path(rendered_env: Rendered, tmp_path: Path) -> None:
    folder = _broken_copy(
        rendered_env, tmp_path, "PrometheusRule.backlog-slo.k8s.yaml",
        "expr: max by (stream_name, consumer_name) (jetstream_consumer_num_pending)",
        'expr: max by (stream_name, consumer_name) (label_replace(jetstream_consumer_num_pending, "consumer", "$1", "consumer_name", "(.*)"))'
        .replace("max by (stream_name, consumer_name)", "max by (stream_name, consumer)"),
    )  # fmt: skip
    with running_stack(folder, tmp_path / "run") as s:
        create_and_publish(s.nats_url, rendered_env.consumer, 10)
        # The pending recording exists, with the renamed label; everything built on it no longer matches.
        wait_until("renamed series recorded", lambda: s.query(slo_rules.PENDING))
        assert s.external_metric(BACKLOG_METRIC, rendered_env.selector) is None


def test_every_process_stops_when_a_test_fails(rendered_env: Rendered, tmp_path: Path) -> None:
    pids: tuple[int, ...] = ()
    with pytest.raises(RuntimeError, match="a failing test"), running_stack(rendered_env.dist_env, tmp_path) as s:
        pids = s.pids
        assert len(pids) == 3 and all(_alive(pid) for pid in pids)
        raise RuntimeError("a failing test")
    assert pids and not any(_alive(pid) for pid in pids)


def _alive(pid: int) -> bool:
    """Running (a reaped child no longer has a /proc entry; a zombie would show state Z)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False
