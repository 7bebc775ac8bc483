"""``python -m amicheck.fleet fleet|merge|diff|init ...``."""

from __future__ import annotations

import sys

from amicheck.fleet.cli import main

if __name__ == "__main__":
    sys.exit(main())
