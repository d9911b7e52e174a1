#!/usr/bin/env python3
"""Build every generated file into out/: ``genonaut-monitoring build``, run from this repository.

    python build.py                  # write out/ (profile "default")
    python build.py --check          # validate and compare with out/; exit 1 on drift
    python build.py --out DIR --profile test --config monitoring.toml

The pipeline is :mod:`genonaut_monitoring.builder`; this file only picks the
repository's out/ as the default output folder.
"""

from __future__ import annotations

import sys
from pathlib import Path

from genonaut_monitoring import cli

ROOT = Path(__file__).resolve().parent
DEFAULT_OUT = ROOT / "out"


def main(argv: list[str] | None = None) -> int:
    return cli.build_main("build.py", DEFAULT_OUT, argv)


if __name__ == "__main__":
    sys.exit(main())
