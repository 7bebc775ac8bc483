"""``python -m amicheck`` is the ``amicheck`` command."""

from __future__ import annotations

import sys

from amicheck.cli import main

if __name__ == "__main__":
    sys.exit(main())
