"""Transitional shim: the benchmarks moved to the checkout's ``benchmarks`` package."""

from __future__ import annotations

import sys
from pathlib import Path

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """``benchmarks.cli.main`` from the checkout this package is installed from."""
    root = str(Path(__file__).resolve().parent.parent)
    if (Path(root) / "benchmarks" / "cli.py").is_file() and root not in sys.path:
        sys.path.insert(0, root)
    from benchmarks.cli import main as bench_main

    return bench_main(argv)
