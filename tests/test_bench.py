"""The benchmarks run in quick mode, in-process: tables printed, counts agree (no timings)."""

from __future__ import annotations

import re

import pytest

from amicheck import bench


def test_generated_stream_is_deterministic_and_counted() -> None:
    a = bench.generate_stream(2_000, seed=3)
    b = bench.generate_stream(2_000, seed=3)
    assert a.data == b.data and a.packets == b.packets >= 2_000
    assert bench.split_floor(a.data) == a.packets
    assert a.data.startswith(bench.BANNER)
    assert b"Response: Follows" in a.data or a.follows == 0
    assert b"ChanVariable: " in a.data and b"EventList: " in a.data
    assert b"\xe7" in a.data or b"\xfc" in a.data  # some Latin-1 caller names


def test_parser_bench_quick(capsys: pytest.CaptureFixture[str]) -> None:
    status = bench.main(["parser", "--quick"])
    out = capsys.readouterr().out
    assert "split floor" in out and "amicheck Parser" in out
    assert re.search(r"amicheck Parser\s+4096\s", out)
    assert re.search(r"amicheck Parser\s+1460\s", out)
    assert "linearity" in out and "memory" in out
    assert "under max_message_size" in out
    m = re.search(r"== amicheck bench parser: ([\d,]+) packets", out)
    assert m is not None
    expected = m.group(1).replace(",", "")
    table = out.split("== linearity")[0]
    for line in table.splitlines():
        if line.startswith(("split floor", "amicheck Parser ")):
            assert line.split()[-1] == expected, line
    assert status == 0


def test_client_bench_quick(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main(["client", "--quick"]) == 0
    out = capsys.readouterr().out
    assert "raw socket floor" in out and "AmiClient (transcript on)" in out
    assert "pipelined" in out and "Pings/s" in out


def test_sim_bench_quick(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("amicheck.sim.server")
    status = bench.main(["sim", "--quick"])
    out = capsys.readouterr().out
    assert "asyncio floor" in out and "amicheck Simulator" in out
    assert "50/50" in out
    assert status == 0


def test_bad_arguments_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        bench.main(["nonsense"])
    assert info.value.code == 2
