"""The fleet benchmark script runs and reports its numbers (a tiny fleet: the 50-target run
is ``python benchmarks/fleet_bench.py``, too long for CI)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "fleet_bench.py"


@pytest.mark.bench
def test_fleet_bench_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("fleet_bench", BENCH)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    code = mod.main(["--targets", "2", "--jobs", "2", "--json", "--no-check", "--",
                     "-m", "not slow", "-k", "CFG"])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert data["targets"] == 2 and data["jobs"] == 2 and data["errors"] == 0
    assert data["fleet"]["peak_rss_mb"] > data["fleet"]["peak_pss_mb"] > 10
    assert data["fleet"]["peak_processes"] >= 3  # the fleet runner and both children
    assert data["single"]["wall_s"] > 0 and data["targets_per_min"] > 0
    assert sum(data["statuses"].values()) == 2
