"""Print a validation Result as text (grouped by environment and file), JSON or JUnit XML."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import asdict
from itertools import groupby

from .model import Result


def text(result: Result, titles: dict[str, str]) -> str:
    if result.ok:
        return f"OK: {len(result.checks)} rules checked, no findings\n"
    lines: list[str] = []
    ordered = sorted(result.findings, key=lambda f: (f.env, f.file, f.rule, f.obj))
    for env, by_env in groupby(ordered, key=lambda f: f.env):
        lines.append(f"{env}:")
        for file, by_file in groupby(by_env, key=lambda f: f.file):
            lines.append(f"  {file}")
            for f in by_file:
                lines.append(f"    {f.rule} {f.obj}: {f.message}")
                lines.append(f"      fix: {f.fix}")
    rules = sorted({f.rule for f in result.findings})
    lines.append(f"FAILED: {len(result.findings)} finding(s) from {len(rules)} rule(s): " + ", ".join(f"{r} ({titles.get(r, '')})" for r in rules))
    return "\n".join(lines) + "\n"


def as_json(result: Result, titles: dict[str, str]) -> str:
    payload = {
        "ok": result.ok,
        "rules": [{"id": r, "title": titles.get(r, "")} for r in result.checks],
        "findings": [asdict(f) for f in sorted(result.findings, key=lambda f: (f.env, f.file, f.rule, f.obj))],
    }
    return json.dumps(payload, indent=2) + "\n"


def junit(result: Result, titles: dict[str, str]) -> str:
    """One testcase per rule; a rule with findings fails with every finding in its message."""
    suite = ET.Element("testsuite", name="backlog-gitops validate", tests=str(len(result.checks)))
    failures = 0
    for rule in result.checks:
        case = ET.SubElement(suite, "testcase", classname="backlog-gitops", name=f"{rule} {titles.get(rule, '')}".strip())
        found = [f for f in result.findings if f.rule == rule]
        if found:
            failures += 1
            failure = ET.SubElement(case, "failure", message=f"{len(found)} finding(s)")
            failure.text = "\n".join(f"{f.env} {f.file} {f.obj}: {f.message} (fix: {f.fix})" for f in found)
    suite.set("failures", str(failures))
    ET.indent(suite)
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"


REPORTERS = {"text": text, "json": as_json, "junit": junit}
