"""Run amicheck's benchmarks from any directory: ``python benchmarks/run.py parser``."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
