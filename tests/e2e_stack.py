"""The real metric path on loopback: nats-server (JetStream) -> prometheus-nats-exporter -> Prometheus with our rules.

Everything that decides whether the HPA sees the backlog is read from a rendered dist/<env>/: the exporter's
flags (Deployment args), the scrape target (ServiceMonitor endpoint -> Service port -> container port), the job
label (the Service name, as prometheus-operator sets it), the rule groups (PrometheusRule), the adapter rules
(ConfigMap) and the HPA's selector. Only addresses and intervals are the harness's: ports are free ones on
127.0.0.1, and scrape/evaluation intervals are 1 s so the test takes seconds, not minutes.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cdk8s_app.adapter_rules import AdapterRule, render_metrics_query
from cdk8s_app.validation.model import EnvManifests, load_env_manifests
from cdk8s_app.validation.tools import TOOLS_BIN

FAST_INTERVAL = "1s"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def find_binary(name: str) -> str:
    for candidate in (TOOLS_BIN / name, Path("/usr/sbin") / name, Path("/usr/bin") / name):
        if candidate.is_file():
            return str(candidate)
    found = shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} not found; run scripts/setup.sh --test")
    return found


def http_get(url: str, timeout: float = 5.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (loopback only)
        return resp.read()  # type: ignore[no-any-return]


def wait_until(what: str, probe: Any, timeout: float = 30.0, interval: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError, KeyError):
            last = probe()
            if last:
                return last
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


@dataclass(frozen=True)
class ScrapeTarget:
    job: str
    path: str
    container_port: int
    labels: dict[str, str]


def exporter_args(em: EnvManifests) -> list[str]:
    """The exporter container's args exactly as rendered."""
    deployment = em.find("Deployment", "nats-exporter")
    assert deployment is not None, "no nats-exporter Deployment in dist"
    container = deployment.spec["template"]["spec"]["containers"][0]
    return list(container.get("command", [])[1:]) + list(container["args"])


def scrape_target(em: EnvManifests) -> ScrapeTarget:
    """Follow ServiceMonitor endpoint -> Service port -> container port, as prometheus-operator would."""
    (monitor,) = em.of("ServiceMonitor")
    endpoint = monitor.spec["endpoints"][0]
    services = [s for s in em.of("Service") if monitor.spec["selector"]["matchLabels"].items() <= s.doc["metadata"].get("labels", {}).items()]
    assert len(services) == 1, f"ServiceMonitor selects {len(services)} Services"
    service = services[0]
    port = next(p for p in service.spec["ports"] if p.get("name") == endpoint["port"])
    deployment = next(
        d for d in em.of("Deployment") if service.spec["selector"].items() <= d.spec["template"]["metadata"]["labels"].items()
    )
    container_ports = {p.get("name"): p["containerPort"] for c in deployment.spec["template"]["spec"]["containers"] for p in c.get("ports", [])}
    target = port.get("targetPort", port["port"])
    container_port = container_ports[target] if isinstance(target, str) else int(target)
    job = service.doc["metadata"]["labels"].get(monitor.spec.get("jobLabel", ""), service.name) if monitor.spec.get("jobLabel") else service.name
    labels = {"namespace": service.namespace or "", "service": service.name, "endpoint": endpoint["port"]}
    return ScrapeTarget(job=job, path=endpoint.get("path", "/metrics"), container_port=container_port, labels=labels)


def localize_args(args: list[str], container_port: int, port: int, nats_monitor_netloc: str) -> list[str]:
    """Point the rendered flags at loopback: the listen port and the NATS monitoring host (its path is kept as
    rendered); bind to 127.0.0.1."""
    out = []
    for arg in args:
        if arg in (f"-port={container_port}", f"-p={container_port}"):
            out.append(f"-port={port}")
        elif not arg.startswith("-"):
            out.append(urllib.parse.urlsplit(arg)._replace(netloc=nats_monitor_netloc).geturl())
        else:
            out.append(arg)
    assert f"-port={port}" in out, f"rendered args {args} do not listen on the container port {container_port}"
    return [*out[:-1], "-addr=127.0.0.1", out[-1]]


def fast_rule_groups(em: EnvManifests) -> list[dict[str, Any]]:
    """The rendered rule groups, with the evaluation interval shortened; expressions, names and labels untouched."""
    groups = [dict(g) for _, gs in em.rule_groups for g in gs]
    for g in groups:
        g["interval"] = FAST_INTERVAL
    return groups


@dataclass
class Stack:
    em: EnvManifests
    nats_url: str
    prometheus_url: str
    exporter_url: str
    logs: Path
    pids: tuple[int, ...] = ()

    def query(self, promql: str) -> list[dict[str, Any]]:
        body = json.loads(http_get(f"{self.prometheus_url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"))
        assert body["status"] == "success", body
        return body["data"]["result"]  # type: ignore[no-any-return]

    def series(self, match: str) -> list[dict[str, str]]:
        body = json.loads(http_get(f"{self.prometheus_url}/api/v1/series?{urllib.parse.urlencode({'match[]': match})}"))
        return body["data"]  # type: ignore[no-any-return]

    def alerts(self) -> list[dict[str, Any]]:
        return json.loads(http_get(f"{self.prometheus_url}/api/v1/alerts"))["data"]["alerts"]  # type: ignore[no-any-return]

    def exporter_metrics(self) -> set[str]:
        text = http_get(f"{self.exporter_url}/metrics").decode()
        return {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}

    def external_metric(self, rule_name: str, selector: dict[str, str]) -> float | None:
        """What the Prometheus Adapter answers for an external metric: discovery by seriesQuery, name mapping,
        then the rendered metricsQuery with the HPA selector as label matchers. None when it would answer nothing."""
        rules: list[AdapterRule] = [r for _, rs in self.em.adapter_configs for r in rs.external_rules]
        matching = [r for r in rules if r.exposed_name == rule_name]
        if len(matching) != 1:
            return None
        rule = matching[0]
        if not self.series(rule.series_query):  # the adapter lists only metrics whose seriesQuery finds series
            return None
        result = self.query(render_metrics_query(rule, selector))
        if len(result) != 1:
            return None
        return float(result[0]["value"][1])


@contextlib.contextmanager
def running_stack(dist_env: Path, workdir: Path) -> Iterator[Stack]:
    """Start the three programs on loopback from the rendered dist/<env>/; stop them all on exit, even on failure."""
    em = load_env_manifests(dist_env)
    target = scrape_target(em)
    nats_port, monitor_port, exporter_port, prom_port = free_port(), free_port(), free_port(), free_port()
    logs = workdir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    procs: list[subprocess.Popen[bytes]] = []
    files = contextlib.ExitStack()

    def start(name: str, argv: list[str]) -> None:
        log = files.enter_context((logs / f"{name}.log").open("wb"))
        procs.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=workdir))

    try:
        start("nats-server", [find_binary("nats-server"), "-a", "127.0.0.1", "-p", str(nats_port), "-m", str(monitor_port),
                              "-js", "-sd", str(workdir / "jetstream"), "-n", "e2e"])  # fmt: skip
        monitor_url = f"http://127.0.0.1:{monitor_port}"
        wait_until("nats-server /healthz", lambda: b"ok" in http_get(f"{monitor_url}/healthz"))
        args = localize_args(exporter_args(em), target.container_port, exporter_port, f"127.0.0.1:{monitor_port}")
        start("prometheus-nats-exporter", [find_binary("prometheus-nats-exporter"), *args])
        exporter_url = f"http://127.0.0.1:{exporter_port}"
        wait_until("exporter metrics", lambda: http_get(f"{exporter_url}{target.path}"))
        (workdir / "rules.yaml").write_text(yaml.safe_dump({"groups": fast_rule_groups(em)}, sort_keys=False))
        config = {
            "global": {"scrape_interval": FAST_INTERVAL, "evaluation_interval": FAST_INTERVAL},
            "rule_files": [str(workdir / "rules.yaml")],
            "scrape_configs": [
                {
                    "job_name": target.job,
                    "metrics_path": target.path,
                    "static_configs": [{"targets": [f"127.0.0.1:{exporter_port}"], "labels": target.labels}],
                }
            ],
        }
        (workdir / "prometheus.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        start("prometheus", [find_binary("prometheus"), f"--config.file={workdir / 'prometheus.yaml'}",
                             f"--storage.tsdb.path={workdir / 'tsdb'}", f"--web.listen-address=127.0.0.1:{prom_port}"])  # fmt: skip
        prom_url = f"http://127.0.0.1:{prom_port}"
        wait_until("prometheus ready", lambda: http_get(f"{prom_url}/-/ready"))
        yield Stack(em=em, nats_url=f"nats://127.0.0.1:{nats_port}", prometheus_url=prom_url, exporter_url=exporter_url, logs=logs,
                    pids=tuple(p.pid for p in procs))  # fmt: skip
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        files.close()
