"""diff: what a change does to the rendered manifests, resource by resource, for PR reviewers.

Resources are matched by (environment, apiVersion, kind, namespace, name), never by file, and compared after
normalisation (sorted keys, one YAML style, server-owned fields dropped), so key order and formatting never show.
Each changed resource gets a unified diff and a list of changed field paths in the style of dyff
(``spec.maxReplicas: 6 → 10``); list items that carry a unique ``name``/``alert``/``record``/``title`` are matched
by it (``containers[name=adapter].image``), and YAML/JSON documents embedded in ConfigMap data are compared as
documents. A hand-written walk rather than deepdiff: deepdiff has no notion of identity keys or embedded documents.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from .errors import UserError
from .synth import render
from .validation.model import YAML_LOADER

Status = Literal["added", "changed", "removed"]
STATUSES: tuple[Status, ...] = ("added", "changed", "removed")

# Written by the API server or controllers, never by us: a dist/ copied from a cluster must not show them.
SERVER_OWNED_METADATA = ("creationTimestamp", "generation", "managedFields", "resourceVersion", "selfLink", "uid")
IDENTITY_KEYS = ("name", "alert", "record", "id", "title")
EMBEDDED_SUFFIXES = (".yaml", ".yml", ".json")
_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
MAX_FIELDS = 25
_MISSING = object()


@dataclass(frozen=True, order=True)
class ResourceKey:
    env: str
    kind: str
    namespace: str
    name: str
    api_version: str

    @property
    def title(self) -> str:
        return f"{self.kind}: {self.namespace}/{self.name}" if self.namespace else f"{self.kind}: {self.name}"


@dataclass(frozen=True)
class FieldChange:
    path: str
    before: Any = _MISSING
    after: Any = _MISSING

    def describe(self) -> str:
        if self.before is _MISSING:
            return f"{self.path}: added {_short(self.after)}"
        if self.after is _MISSING:
            return f"{self.path}: removed (was {_short(self.before)})"
        before, after = self.before, self.after
        if isinstance(before, str) and isinstance(after, str) and "\n" not in before + after:
            before, after = _changed_region(before, after)
        return f"{self.path}: {_short(before)} → {_short(after)}"

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path}
        if self.before is not _MISSING:
            out["before"] = self.before
        if self.after is not _MISSING:
            out["after"] = self.after
        return out


@dataclass(frozen=True)
class ResourceChange:
    key: ResourceKey
    status: Status
    diff: tuple[str, ...]
    """Unified diff lines of the normalised YAML (whole body for added/removed resources)."""
    fields: tuple[FieldChange, ...] = ()


@dataclass(frozen=True)
class Review:
    base: str
    """What was compared against, for headings: a git ref or a folder."""
    envs: tuple[str, ...]
    changes: tuple[ResourceChange, ...] = field(default=())

    @property
    def has_changes(self) -> bool:
        return bool(self.changes)

    def counts(self, env: str, kind: str | None = None) -> dict[Status, int]:
        out: dict[Status, int] = dict.fromkeys(STATUSES, 0)
        for c in self.changes:
            if c.key.env == env and (kind is None or c.key.kind == kind):
                out[c.status] += 1
        return out

    def kinds(self, env: str) -> list[str]:
        return sorted({c.key.kind for c in self.changes if c.key.env == env})


Snapshot = dict[ResourceKey, dict[str, Any]]


# ---- loading both sides ------------------------------------------------------------------------------------------


def _add_documents(snapshot: Snapshot, origin: dict[ResourceKey, str], env: str, source: str, text: str) -> None:
    try:
        docs = [d for d in yaml.load_all(text, Loader=YAML_LOADER) if d is not None]
    except yaml.YAMLError as exc:
        raise UserError(f"{source}: not valid YAML ({exc.__class__.__name__}); fix the file or re-run 'backlog-gitops synth'") from None
    for doc in docs:
        if not isinstance(doc, dict) or not isinstance(doc.get("metadata"), dict) or "kind" not in doc:
            raise UserError(f"{source}: a document is not a Kubernetes object (needs kind and metadata); remove it from dist/")
        meta = doc["metadata"]
        key = ResourceKey(env, str(doc["kind"]), str(meta.get("namespace", "")), str(meta.get("name", "")), str(doc.get("apiVersion", "")))
        if key in snapshot:
            raise UserError(f"{source}: {key.title} is also defined in {origin[key]}; keep one of them")
        snapshot[key] = doc
        origin[key] = source


def load_folder(root: Path) -> Snapshot:
    """Every object under ``root/<env>/**.yaml``; a missing folder is an empty snapshot (first render)."""
    snapshot: Snapshot = {}
    origin: dict[ResourceKey, str] = {}
    if not root.is_dir():
        return snapshot
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if path.is_file() and path.suffix in (".yaml", ".yml") and len(rel.parts) >= 2:
            _add_documents(snapshot, origin, rel.parts[0], str(path), path.read_text())
    return snapshot


def _git(repo: Path, *args: str, stdin: bytes | None = None) -> bytes:
    try:
        proc = subprocess.run(["git", "-C", str(repo), *args], input=stdin, capture_output=True, check=False)
    except FileNotFoundError:
        raise UserError("git is not installed; --base needs it") from None
    if proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, args, proc.stdout, proc.stderr)
    return proc.stdout


def load_git(dist: Path, ref: str) -> Snapshot:
    """Every object under ``dist/`` as committed at ``ref`` of the repository holding ``dist``."""
    anchor = dist if dist.is_dir() else dist.parent
    try:
        top = Path(_git(anchor, "rev-parse", "--show-toplevel").decode().strip())
    except subprocess.CalledProcessError:
        raise UserError(f"--base {ref}: {anchor} is not inside a git repository; drop --base or run from the repository") from None
    try:
        commit = _git(top, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}").decode().strip()
    except subprocess.CalledProcessError:
        raise UserError(f"--base {ref}: no such commit in {top}; fetch it first (for example: git fetch origin main)") from None
    try:
        prefix = dist.resolve().relative_to(top.resolve()).as_posix()
    except ValueError:
        raise UserError(f"--base {ref}: {dist} is not inside the repository {top}; pass --dist inside it") from None
    names = [n for n in _git(top, "ls-tree", "-r", "-z", "--name-only", commit, "--", prefix).decode().split("\0") if n]
    wanted = [n for n in names if n.endswith((".yaml", ".yml")) and len(Path(n).relative_to(prefix).parts) >= 2]
    snapshot: Snapshot = {}
    origin: dict[ResourceKey, str] = {}
    if not wanted:
        return snapshot
    # One git process for all blobs: `cat-file --batch` answers "<oid> blob <size>\n<content>\n" per request.
    out = _git(top, "cat-file", "--batch", stdin="".join(f"{commit}:{n}\n" for n in wanted).encode())
    pos = 0
    for name in wanted:
        header_end = out.index(b"\n", pos)
        size = int(out[pos:header_end].split()[2])
        body = out[header_end + 1 : header_end + 1 + size].decode()
        pos = header_end + 1 + size + 1
        env = Path(name).relative_to(prefix).parts[0]
        _add_documents(snapshot, origin, env, f"{ref}:{name}", body)
    return snapshot


# ---- normalising and comparing -----------------------------------------------------------------------------------


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def normalise(obj: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in obj.items() if k != "status"}
    meta = {k: v for k, v in (out.get("metadata") or {}).items() if k not in SERVER_OWNED_METADATA}
    out["metadata"] = meta
    return out


def to_lines(obj: dict[str, Any]) -> list[str]:
    return yaml.dump(obj, Dumper=_Dumper, sort_keys=True, default_flow_style=False, width=1_000_000).splitlines()


def _segment(key: Any) -> str:
    return f".{key}" if isinstance(key, str) and _PLAIN_KEY.match(key) else f"[{json.dumps(key)}]"


def _embedded(key: Any, value: Any) -> Any:
    """A YAML/JSON document held in a string value (ConfigMap data), parsed; otherwise the value itself."""
    if isinstance(key, str) and isinstance(value, str) and key.endswith(EMBEDDED_SUFFIXES):
        try:
            parsed = json.loads(value) if key.endswith(".json") else yaml.safe_load(value)
        except (ValueError, yaml.YAMLError):
            return value
        if isinstance(parsed, (dict, list)):
            return parsed
    return value


def _keyed_by(items: list[Any], key: str) -> bool:
    """Every item is a mapping with a unique scalar ``key`` (an empty list qualifies)."""
    values = [i.get(key) if isinstance(i, dict) else None for i in items]
    return all(isinstance(v, (str, int)) for v in values) and len(set(values)) == len(values)


def field_changes(before: Any, after: Any, path: str = "") -> Iterator[FieldChange]:
    if before == after:
        return
    if isinstance(before, dict) and isinstance(after, dict):
        for key in sorted(set(before) | set(after), key=str):
            b, a = before.get(key, _MISSING), after.get(key, _MISSING)
            sub = f"{path}{_segment(key)}"
            if b is _MISSING or a is _MISSING:
                yield FieldChange(sub.lstrip("."), b, a)
            else:
                yield from field_changes(_embedded(key, b), _embedded(key, a), sub)
        return
    if isinstance(before, list) and isinstance(after, list):
        ident = next((k for k in IDENTITY_KEYS if _keyed_by(before, k) and _keyed_by(after, k)), None)
        if ident:
            b_by = {i[ident]: i for i in before}
            a_by = {i[ident]: i for i in after}
            order = [i[ident] for i in before] + [i[ident] for i in after if i[ident] not in b_by]
            for name in order:
                sub = f"{path}[{ident}={name}]"
                if name not in a_by:
                    yield FieldChange(sub.lstrip("."), b_by[name], _MISSING)
                elif name not in b_by:
                    yield FieldChange(sub.lstrip("."), _MISSING, a_by[name])
                else:
                    yield from field_changes(b_by[name], a_by[name], sub)
            return
        for i in range(max(len(before), len(after))):
            sub = f"{path}[{i}]"
            if i >= len(after):
                yield FieldChange(sub.lstrip("."), before[i], _MISSING)
            elif i >= len(before):
                yield FieldChange(sub.lstrip("."), _MISSING, after[i])
            else:
                yield from field_changes(before[i], after[i], sub)
        return
    yield FieldChange(path.lstrip("."), before, after)


def _changed_region(before: str, after: str, context: int = 24, limit: int = 80) -> tuple[str, str]:
    """Long one-line strings (PromQL, descriptions) cut to the part that changed, with some context."""
    if max(len(before), len(after)) <= limit:
        return before, after
    prefix = len(os.path.commonprefix([before, after]))
    suffix = len(os.path.commonprefix([before[prefix:][::-1], after[prefix:][::-1]]))
    start = max(prefix - context, 0)

    def cut(s: str) -> str:
        end = min(len(s) - suffix + context, len(s))
        return ("…" if start else "") + s[start:end] + ("…" if end < len(s) else "")

    return cut(before), cut(after)


def _short(value: Any, limit: int = 80) -> str:
    if isinstance(value, str) and "\n" in value:
        return f"<{value.count(chr(10)) + 1} lines>"
    text = json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def compare(base: Snapshot, current: Snapshot, *, base_label: str, envs: tuple[str, ...]) -> Review:
    changes: list[ResourceChange] = []
    for key in sorted(set(base) | set(current)):
        if key.env not in envs:
            continue
        label = f"{key.env}/{key.kind}/{key.namespace or '_'}/{key.name}"
        if key not in current:
            lines = tuple(f"-{line}" for line in to_lines(normalise(base[key])))
            changes.append(ResourceChange(key, "removed", lines))
        elif key not in base:
            lines = tuple(f"+{line}" for line in to_lines(normalise(current[key])))
            changes.append(ResourceChange(key, "added", lines))
        else:
            b, a = normalise(base[key]), normalise(current[key])
            if b == a:
                continue
            diff = tuple(difflib.unified_diff(to_lines(b), to_lines(a), f"a/{label}", f"b/{label}", n=3, lineterm=""))
            changes.append(ResourceChange(key, "changed", diff, tuple(field_changes(b, a))))
    return Review(base=base_label, envs=envs, changes=tuple(changes))


def review(env_dir: Path, dist: Path, *, base_ref: str | None = None, only: str | None = None) -> Review:
    """Render the current environments and compare them with ``dist/`` (working tree, or as committed at ``base_ref``)."""
    base = load_git(dist, base_ref) if base_ref else load_folder(dist)
    with tempfile.TemporaryDirectory(prefix="backlog-gitops-diff-") as tmp:
        names = render(env_dir, Path(tmp), only)
        current = load_folder(Path(tmp))
    envs = {only} if only else set(names) | {k.env for k in base} | {k.env for k in current}
    return compare(base, current, base_label=base_ref or str(dist), envs=tuple(sorted(envs)))


# ---- reports -----------------------------------------------------------------------------------------------------

MARKER = "<!-- backlog-gitops-diff -->"
FOLD_LINES = 40
# GitHub refuses comments over 65,536 characters; stop well before.
MARKDOWN_BUDGET = 60_000
SYMBOL: Mapping[Status, str] = {"added": "+", "changed": "~", "removed": "-"}


def _summary_line(r: Review, env: str) -> str:
    c = r.counts(env)
    return f"{env}: {c['added']} added, {c['changed']} changed, {c['removed']} removed"


def _field_lines(change: ResourceChange) -> list[str]:
    lines = [f.describe() for f in change.fields[:MAX_FIELDS]]
    if len(change.fields) > MAX_FIELDS:
        lines.append(f"… and {len(change.fields) - MAX_FIELDS} more fields")
    return lines


def as_text(r: Review) -> str:
    if not r.has_changes:
        return f"No changes to rendered manifests (compared with {r.base}).\n"
    out = [f"Rendered changes compared with {r.base}:", ""]
    rows = [("ENVIRONMENT", "KIND", "ADDED", "CHANGED", "REMOVED")]
    for env in r.envs:
        for kind in r.kinds(env):
            c = r.counts(env, kind)
            rows.append((env, kind, str(c["added"]), str(c["changed"]), str(c["removed"])))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    out += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    for change in r.changes:
        out += ["", f"{SYMBOL[change.status]} {change.key.env}: {change.key.title} ({change.status})"]
        out += [f"    {line}" for line in _field_lines(change)]
        out += list(change.diff)
    return "\n".join(out) + "\n"


def as_markdown(r: Review) -> str:
    out = [MARKER, f"### backlog-gitops: rendered manifests vs `{r.base}`", ""]
    if not r.has_changes:
        return "\n".join([*out, "No changes to rendered manifests."]) + "\n"
    out += [f"- **{_summary_line(r, env)}**" for env in r.envs]
    out += ["", "| Environment | Kind | Added | Changed | Removed |", "|---|---|---:|---:|---:|"]
    for env in r.envs:
        for kind in r.kinds(env):
            c = r.counts(env, kind)
            out.append(f"| {env} | {kind} | {c['added']} | {c['changed']} | {c['removed']} |")
    body: list[str] = []
    for env in r.envs:
        env_changes = [c for c in r.changes if c.key.env == env]
        if not env_changes:
            continue
        body += ["", f"#### {env}"]
        for change in env_changes:
            body += ["", f"##### {change.key.title} ({change.status})"]
            body += [f"- `{line}`" for line in _field_lines(change)]
            block = ["```diff", *change.diff, "```"]
            if len(change.diff) > FOLD_LINES:
                block = [f"<details><summary>diff ({len(change.diff)} lines)</summary>", "", *block, "", "</details>"]
            body += ["", *block]
    text = "\n".join(out + body) + "\n"
    if len(text) > MARKDOWN_BUDGET:
        text = "\n".join(out) + "\n\nThe full diff is too long for a comment; run `backlog-gitops diff` locally or read the CI log.\n"
    return text


def as_json(r: Review) -> str:
    doc = {
        "base": r.base,
        "summary": {env: r.counts(env) for env in r.envs},
        "changes": [
            {
                "env": c.key.env,
                "apiVersion": c.key.api_version,
                "kind": c.key.kind,
                "namespace": c.key.namespace or None,
                "name": c.key.name,
                "status": c.status,
                "fields": [f.as_json() for f in c.fields],
                "diff": list(c.diff),
            }
            for c in r.changes
        ],
    }
    return json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n"


FORMATS = {"text": as_text, "markdown": as_markdown, "json": as_json}
