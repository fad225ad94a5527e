"""diff: a reviewer sees exactly what a change does to the rendered manifests, and nothing else."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from cdk8s_app.cli import app
from cdk8s_app.errors import UserError
from cdk8s_app.review import FieldChange, as_markdown, compare, field_changes, load_folder, review
from cdk8s_app.synth import synth

from .conftest import ENVIRONMENTS, edit, git

runner = CliRunner()


def body_lines(diff: tuple[str, ...], sign: str) -> list[str]:
    return [line for line in diff if line.startswith(sign) and not line.startswith(sign * 3)]


def test_one_field_change_shows_one_resource_with_one_changed_line(repo: Path) -> None:
    edit(repo, "staging", lambda d: d["consumers"][0].update(maxReplicas=10))
    r = review(repo / "environments", repo / "dist", base_ref="HEAD")
    assert [(c.key.env, c.key.kind, c.key.namespace, c.key.name, c.status) for c in r.changes] == [
        ("staging", "HorizontalPodAutoscaler", "orders", "orders-processor", "changed")
    ]
    (change,) = r.changes
    assert change.fields == (FieldChange("spec.maxReplicas", 6, 10),)
    assert change.fields[0].describe() == "spec.maxReplicas: 6 → 10"
    assert body_lines(change.diff, "-") == ["-  maxReplicas: 6"]
    assert body_lines(change.diff, "+") == ["+  maxReplicas: 10"]


def test_adding_a_consumer_adds_one_hpa(repo: Path) -> None:
    def add(d: dict[str, Any]) -> None:
        new = dict(d["consumers"][0], name="refunds-worker", deployment="refunds-worker", stream="REFUNDS", consumer="refunds")
        d["consumers"].append(new)

    edit(repo, "staging", add)
    r = review(repo / "environments", repo / "dist", base_ref="HEAD")
    added = [c for c in r.changes if c.status == "added"]
    assert [(c.key.kind, c.key.name) for c in added] == [("HorizontalPodAutoscaler", "refunds-worker")]
    assert "+  maxReplicas: 6" in added[0].diff
    assert not [c for c in r.changes if c.status == "removed"]
    # Rules and adapter rules are per-metric, not per-consumer: nothing else may change.
    assert [c.key.kind for c in r.changes] == ["HorizontalPodAutoscaler"]
    assert r.counts("staging") == {"added": 1, "changed": 0, "removed": 0}


def test_formatting_only_change_to_an_environment_shows_nothing(repo: Path) -> None:
    path = repo / "environments" / "staging.yaml"
    data = yaml.safe_load(path.read_text())
    # Different key order, flow style, quoting and no comments: same meaning.
    path.write_text("# reformatted\n" + yaml.safe_dump(dict(sorted(data.items())), default_flow_style=True, width=60))
    r = review(repo / "environments", repo / "dist", base_ref="HEAD")
    assert not r.has_changes, [c.key for c in r.changes]


def test_reformatted_and_server_populated_dist_shows_nothing(repo: Path) -> None:
    hpa = repo / "dist" / "staging" / "HorizontalPodAutoscaler.orders-processor.k8s.yaml"
    doc = yaml.safe_load(hpa.read_text())
    doc["metadata"].update(uid="0d5f", resourceVersion="42", creationTimestamp="2026-01-01T00:00:00Z", managedFields=[{"manager": "kubectl"}])
    doc["status"] = {"currentReplicas": 3}
    hpa.write_text(yaml.safe_dump(doc, sort_keys=False, indent=4, default_flow_style=True))
    assert not review(repo / "environments", repo / "dist").has_changes


def test_base_ref_reads_dist_as_committed(repo: Path) -> None:
    base = git(repo, "rev-parse", "HEAD").strip()
    edit(repo, "production", lambda d: d["consumers"][1].update(maxReplicas=16))
    synth(repo / "environments", repo / "dist")
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "bump")
    assert not review(repo / "environments", repo / "dist").has_changes  # the working tree is fresh
    r = review(repo / "environments", repo / "dist", base_ref=base)
    assert [(c.key.env, c.key.name) for c in r.changes] == [("production", "payments-settler")]
    assert r.changes[0].fields == (FieldChange("spec.maxReplicas", 12, 16),)
    # A ref from before dist/ existed: everything is new.
    first = review(repo / "environments", repo / "dist", base_ref="HEAD~2")
    assert first.changes and {c.status for c in first.changes} == {"added"}


def test_env_option_limits_the_review(repo: Path) -> None:
    edit(repo, "staging", lambda d: d["consumers"][0].update(maxReplicas=10))
    edit(repo, "production", lambda d: d["consumers"][0].update(maxReplicas=31))
    r = review(repo / "environments", repo / "dist", base_ref="HEAD", only="production")
    assert r.envs == ("production",)
    assert [c.key.name for c in r.changes] == ["orders-processor"]


def test_removed_resource_when_a_consumer_goes(repo: Path) -> None:
    edit(repo, "production", lambda d: d["consumers"].pop())
    r = review(repo / "environments", repo / "dist")
    assert [(c.status, c.key.kind, c.key.name) for c in r.changes] == [("removed", "HorizontalPodAutoscaler", "notifications-fanout")]
    assert all(line.startswith("-") for line in r.changes[0].diff)


def test_field_paths_match_list_items_by_identity_and_read_embedded_documents() -> None:
    before = {
        "spec": {"containers": [{"name": "a", "image": "x:1"}, {"name": "b", "image": "y:1"}]},
        "data": {"config.yaml": "rules:\n- record: r1\n  expr: up\n", "plain": "text"},
        "labels": {"app.kubernetes.io/name": "old"},
    }
    after = {
        "spec": {"containers": [{"name": "b", "image": "y:2"}, {"name": "a", "image": "x:1"}]},
        "data": {"config.yaml": "rules:\n- record: r1\n  expr: up == 1\n", "plain": "text"},
        "labels": {"app.kubernetes.io/name": "new"},
    }
    assert [f.describe() for f in field_changes(before, after)] == [
        'data["config.yaml"].rules[record=r1].expr: "up" → "up == 1"',
        'labels["app.kubernetes.io/name"]: "old" → "new"',
        "spec.containers[name=b].image: \"y:1\" → \"y:2\"",
    ]
    assert [f.describe() for f in field_changes({"a": [1, 2]}, {"a": [1], "b": {"c": 1}})] == [
        "a[1]: removed (was 2)",
        'b: added {"c": 1}',
    ]


def test_long_one_line_strings_show_the_changed_region() -> None:
    text = 'sum by (stream_name, consumer_name) (jetstream_consumer_num_pending{job="nats-exporter"}) > '
    (change,) = field_changes({"expr": text + "3000"}, {"expr": text + "4000"})
    described = change.describe()
    assert "3000" in described and "4000" in described and described.count("…") == 2
    assert len(described) < 2 * 80


def test_markdown_is_a_pr_comment(repo: Path) -> None:
    edit(repo, "staging", lambda d: d["consumers"][0].update(maxReplicas=10))
    md = as_markdown(review(repo / "environments", repo / "dist", base_ref="main"))
    assert md.startswith("<!-- backlog-gitops-diff -->\n### backlog-gitops: rendered manifests vs `main`")
    assert "- **staging: 0 added, 1 changed, 0 removed**" in md
    assert "| staging | HorizontalPodAutoscaler | 0 | 1 | 0 |" in md
    assert "##### HorizontalPodAutoscaler: orders/orders-processor (changed)\n- `spec.maxReplicas: 6 → 10`" in md
    assert "```diff\n--- a/staging/HorizontalPodAutoscaler/orders/orders-processor" in md
    assert "<details>" not in md  # short diffs are not folded


def test_markdown_folds_long_diffs_and_respects_the_comment_limit(repo: Path) -> None:
    edit(repo, "staging", lambda d: d["consumers"].append(dict(d["consumers"][0], name="extra", deployment="extra", consumer="extra")))
    md = as_markdown(review(repo / "environments", repo / "dist"))
    assert "##### HorizontalPodAutoscaler: orders/extra (added)" in md
    assert "<details><summary>diff (" in md

    big = {("x" * 5000) + str(i): i for i in range(20)}
    base = load_folder(repo / "dist")
    key = next(k for k in base if k.kind == "ConfigMap")
    current = dict(base)
    current[key] = {**base[key], "data": big}
    huge = as_markdown(compare(base, current, base_label="main", envs=("staging", "production")))
    assert len(huge) < 65_536 and "too long for a comment" in huge


def test_cli_exit_codes(repo: Path) -> None:
    args = ["--environments", str(repo / "environments"), "--dist", str(repo / "dist")]
    clean = runner.invoke(app, ["diff", "--exit-code", *args])
    assert clean.exit_code == 0, clean.output
    assert "No changes" in clean.output
    edit(repo, "staging", lambda d: d["consumers"][0].update(maxReplicas=10))
    changed = runner.invoke(app, ["diff", *args])
    assert changed.exit_code == 0 and "spec.maxReplicas: 6 → 10" in changed.output
    assert runner.invoke(app, ["diff", "--exit-code", *args]).exit_code == 1
    table = changed.output.splitlines()
    assert table[2].split() == ["ENVIRONMENT", "KIND", "ADDED", "CHANGED", "REMOVED"]
    assert table[3].split() == ["staging", "HorizontalPodAutoscaler", "0", "1", "0"]
    as_json = json.loads(runner.invoke(app, ["diff", "-o", "json", *args]).stdout)
    assert as_json["summary"]["staging"] == {"added": 0, "changed": 1, "removed": 0}
    (item,) = as_json["changes"]
    assert (item["kind"], item["namespace"], item["name"], item["status"]) == ("HorizontalPodAutoscaler", "orders", "orders-processor", "changed")
    assert item["fields"] == [{"path": "spec.maxReplicas", "before": 6, "after": 10}]
    bad_ref = runner.invoke(app, ["diff", "--base", "no-such-ref", *args])
    assert bad_ref.exit_code == 2 and "no such commit" in bad_ref.output
    assert runner.invoke(app, ["diff", "--output", "html", *args]).exit_code == 2
    edit(repo, "staging", lambda d: d["consumers"][0].update(maxReplicas="ten"))
    bad_env = runner.invoke(app, ["diff", *args])
    assert bad_env.exit_code == 2 and "staging.yaml" in bad_env.output and "Traceback" not in bad_env.output


def test_duplicate_resource_in_dist_is_bad_input(repo: Path) -> None:
    src = repo / "dist" / "staging" / "HorizontalPodAutoscaler.orders-processor.k8s.yaml"
    shutil.copy(src, src.with_name("copy.yaml"))
    with pytest.raises(UserError, match="also defined in"):
        load_folder(repo / "dist")


def test_base_outside_a_git_repository_is_bad_input(tmp_path: Path) -> None:
    synth(ENVIRONMENTS, tmp_path / "dist")
    with pytest.raises(UserError, match="not inside a git repository"):
        review(ENVIRONMENTS, tmp_path / "dist", base_ref="HEAD")
