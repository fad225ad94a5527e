#!/usr/bin/env python3
"""Regenerate schemas/crds/*.json (kubeconform format, strict) from upstream CRDs in pinned Go modules.

The Go module proxy serves each project's repository at a tag as a module zip, CRD YAML included; `go mod
download` fetches and verifies it against the checksum database. Run after bumping a version below:

    .venv/bin/python scripts/gen_crd_schemas.py

Output files are named {kind}-{group}-{version}.json (lower case), as kubeconform's schema-location template
'{{ .ResourceKind }}{{ .KindSuffix }}' expects. "Strict" = every object with declared properties refuses
unknown ones, like kubeconform's openapi2jsonschema with DENY_ROOT_ADDITIONAL_PROPERTIES and -strict.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "schemas" / "crds"


@dataclass(frozen=True)
class Source:
    module: str
    version: str
    files: tuple[str, ...]
    licence: str


SOURCES = (
    Source(
        "github.com/prometheus-operator/prometheus-operator",
        "v0.85.0",
        (
            "example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml",
            "example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml",
        ),
        "Apache-2.0",
    ),
    Source("github.com/argoproj/argo-cd/v3", "v3.1.8", ("manifests/crds/application-crd.yaml",), "Apache-2.0"),
    Source(
        "github.com/cert-manager/cert-manager",
        "v1.19.1",
        ("deploy/crds/cert-manager.io_certificates.yaml", "deploy/crds/cert-manager.io_issuers.yaml"),
        "Apache-2.0",
    ),
)


def module_dir(module: str, version: str) -> Path:
    out = subprocess.run(["go", "mod", "download", "-json", f"{module}@{version}"], check=True, capture_output=True, text=True)
    info = json.loads(out.stdout)
    if "Error" in info:
        raise SystemExit(f"go mod download {module}@{version}: {info['Error']}")
    return Path(info["Dir"])


def strict(schema: Any) -> Any:
    """Close every object that lists its properties, unless it preserves unknown fields."""
    if isinstance(schema, dict):
        out = {k: strict(v) for k, v in schema.items()}
        if "properties" in out and "additionalProperties" not in out and not out.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [strict(v) for v in schema]
    return schema


def convert(crd: dict[str, Any]) -> dict[str, dict[str, Any]]:
    group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
    result = {}
    for version in crd["spec"]["versions"]:
        schema = strict(version["schema"]["openAPIV3Schema"])
        # kubeconform also checks apiVersion/kind/metadata; pin the first two to this CRD.
        schema.setdefault("properties", {})
        schema["properties"]["apiVersion"] = {"type": "string", "enum": [f"{group}/{version['name']}"]}
        schema["properties"]["kind"] = {"type": "string", "enum": [kind]}
        schema["properties"]["metadata"] = {"type": "object"}
        schema["$schema"] = "http://json-schema.org/draft-07/schema#"
        result[f"{kind.lower()}-{group.split('.')[0]}-{version['name']}.json"] = schema
    return result


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    written = []
    for source in SOURCES:
        root = module_dir(source.module, source.version)
        for file in source.files:
            for name, schema in convert(yaml.safe_load((root / file).read_text())).items():
                (OUT / name).write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n")
                written.append(f"{name}\t{source.module}@{source.version}\t{file}\t{source.licence}")
    (OUT / "SOURCES.tsv").write_text("schema\tmodule\tfile\tlicence\n" + "\n".join(sorted(written)) + "\n")
    print(f"wrote {len(written)} schemas to {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
