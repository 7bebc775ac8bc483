"""The benchmarks run in quick mode, in-process: tables printed, counts agree (no timings)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from amicheck.protocol import Parser
from amicheck.stats import percentile
from benchmarks import cli, stream
from benchmarks.client import PingResult, print_ping
from benchmarks.libraries import split_floor

ROOT = Path(__file__).resolve().parent.parent


def test_generated_stream_is_deterministic_and_counted() -> None:
    a = stream.generate_stream(2_000, seed=3)
    b = stream.generate_stream(2_000, seed=3)
    assert a.data == b.data and a.packets == b.packets >= 2_000
    assert split_floor(a.data) == a.packets
    assert a.data.startswith(stream.BANNER)
    assert b"Response: Follows" in a.data or a.follows == 0
    assert b"ChanVariable: " in a.data and b"EventList: " in a.data
    assert b"\xe7" in a.data or b"\xfc" in a.data  # some Latin-1 caller names


def test_stream_has_large_packets_and_a_500_byte_average() -> None:
    s = stream.generate_stream(20_000)
    packets = s.data[len(stream.BANNER):].split(b"\r\n\r\n")
    assert 430 <= len(s.data) / s.packets <= 570
    events = [p for p in packets if p.count(b"\r\nChanVariable: ") >= 15]
    assert events and max(map(len, events)) > 2_000  # long ChanVariable events
    follows = [p for p in packets if p.startswith(b"Response: Follows")]
    assert max(map(len, follows)) > 10_000  # multi-KB 13.x command output
    outputs = [p for p in packets if p.count(b"\r\nOutput: ") >= 20]
    assert outputs and max(map(len, outputs)) > 4_000  # 14+ Output: lines
    # and the Parser reads all of it, chunked like TCP segments
    p = Parser()
    n = sum(len(p.feed(s.data[i:i + 536])) for i in range(0, len(s.data), 536))
    assert n == s.packets and p.buffered == 0


def test_parser_bench_quick(capsys: pytest.CaptureFixture[str]) -> None:
    status = cli.main(["parser", "--quick"])
    out = capsys.readouterr().out
    assert "split floor" in out and "amicheck Parser" in out
    for size in (536, 1460, 4096, 16384, 65536):
        assert re.search(rf"amicheck Parser\s+{size}\s", out), size
    assert "linearity" in out and "memory" in out
    assert "under max_message_size" in out
    m = re.search(r"== amicheck bench parser: ([\d,]+) packets", out)
    assert m is not None
    expected = m.group(1).replace(",", "")
    table = out.split("== linearity")[0]
    rows = [line for line in table.splitlines()
            if line.startswith(("split floor", "amicheck Parser "))]
    assert len(rows) == 6
    for line in rows:
        assert line.split()[-1] == expected, line
    assert status == 0


def test_ping_table_uses_nearest_rank_percentiles(capsys: pytest.CaptureFixture[str]) -> None:
    lat = (1e-6, 2e-6)  # nearest rank: p10 = p50 = 1 us (int(q*n) would say 2 us for p50)
    res = PingResult(lat, lat, lat, 1e-6, 1e-6, 1e-6, 10.0, 10.0, 10.0)
    ratio, pps = print_ping(res, "floor")
    out = capsys.readouterr().out
    assert re.search(r"^floor\s+1\.0\s+1\.0\s+2\.0\s", out, re.M), out
    assert ratio == 1.0 and pps == 10.0 and percentile(lat, 50) == 1e-6


@pytest.mark.bench
def test_client_bench_quick(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["client", "--quick"]) == 0
    out = capsys.readouterr().out
    assert "raw socket floor" in out and "AmiClient (transcript on)" in out
    assert "pipelined" in out and "Pings/s" in out


@pytest.mark.bench
def test_sim_bench_quick(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("amicheck.sim.server")
    status = cli.main(["sim", "--quick"])
    out = capsys.readouterr().out
    assert "asyncio floor" in out and "amicheck Simulator" in out
    assert "50/50" in out
    assert status == 0


def test_bad_arguments_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["nonsense"])
    assert info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_python_dash_m_benchmarks_runs_from_the_checkout() -> None:
    done = subprocess.run([sys.executable, "-m", "benchmarks", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "parser,client,sim,all" in done.stdout


def test_amicheck_bench_runs_the_checkout_benchmarks(capsys: pytest.CaptureFixture[str]) -> None:
    from amicheck.cli import main

    assert main(["bench", "--help"]) == 0
    assert "--quick" in capsys.readouterr().out


def test_the_wheel_does_not_ship_benchmarks() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'include\s*=\s*\["amicheck\*"\]', text), "packages.find include changed"
