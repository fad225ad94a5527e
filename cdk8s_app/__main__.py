"""Entry point for the cdk8s CLI (cdk8s.yaml): renders every environment into $CDK8S_OUTDIR."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .errors import UserError
from .synth import render


def main() -> int:
    outdir = Path(os.environ.get("CDK8S_OUTDIR", "dist"))
    try:
        render(Path("environments"), outdir)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
