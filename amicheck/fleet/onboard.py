"""``amicheck init``: placeholder until the onboarding module lands (see the report)."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str]) -> int:
    """Not built yet."""
    print("amicheck init: not available yet")
    return 2
