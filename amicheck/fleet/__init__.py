"""Many targets at once: the fleet file, concurrent runs, shards and merge, baselines, init.

Import the submodules you need; this package imports nothing heavy on its own:
:mod:`.spec` (fleet file), :mod:`.runner` (one ``amicheck run`` per target), :mod:`.model`
(``fleet.json``), :mod:`.baseline` (``compare(old, new)``), :mod:`.cli` (the commands),
:mod:`.onboard` (``amicheck init``).
"""

from __future__ import annotations

__all__: list[str] = []
