"""The plugin's side of bad input and lifetimes: pytest's own ``--ami-*`` options.

Every value is refused as one ``ERROR:`` line (pytest's usage error, exit 4) before the first
test; the clients a test opened are freed when it ends, not at the end of the session.
"""

from __future__ import annotations

import os
import time

import pytest

import amicheck.capture  # noqa: F401  (imported once: see tests/test_plugin.py)
import amicheck.client  # noqa: F401
import amicheck.sim  # noqa: F401
from amicheck.plugin import OPTIONS
from amicheck.requirements import CATALOGUE

IDS = sorted(CATALOGUE)


def _usage_error(pytester: pytest.Pytester, *args: str) -> str:
    pytester.makepyfile("def test_x():\n    raise AssertionError('must not run')\n")
    start = time.monotonic()
    result = pytester.runpytest("-p", "no:cacheprovider", *args)
    assert time.monotonic() - start < 5
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str()
    err = result.stderr.str()
    assert "Traceback" not in err and "must not run" not in result.stdout.str()
    lines = [ln for ln in err.splitlines() if ln.startswith("ERROR:")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (["--ami-outside-source", "8.8.8.8"], "--ami-outside-source: 8.8.8.8 is not an address"),
        (["--ami-fail-delay", "nan"], "--ami-fail-delay: must be a finite number"),
        (["--ami-fail-delay", "inf"], "--ami-fail-delay: must be a finite number"),
        (["--ami-target", "127.0.0.1:0"], "--ami-target: port must be 1-65535"),
        (["--ami-profile", "/dev/zero"], "--ami-profile: /dev/zero is a device"),
        (["--ami-fault", ""], "--ami-fault: empty fault name"),
    ],
)
def test_bad_values(pytester: pytest.Pytester, args: list[str], text: str) -> None:
    assert text in _usage_error(pytester, *args)


def test_profile_fifo_and_directory(pytester: pytest.Pytester) -> None:
    fifo = pytester.path / "p.toml"
    os.mkfifo(fifo)
    assert "is a FIFO (named pipe), not a profile file" in _usage_error(
        pytester, "--ami-profile", str(fifo))
    assert "is a directory, not a profile file" in _usage_error(
        pytester, "--ami-profile", str(pytester.path))


def test_report_dir_is_checked_before_the_run(pytester: pytest.Pytester) -> None:
    f = pytester.path / "taken"
    f.write_text("x")
    assert "--ami-report-dir: " in _usage_error(pytester, "--ami-report-dir", str(f))
    assert "cannot create" in _usage_error(pytester, "--ami-report-dir", str(f / "sub"))


def test_bad_ini_outside_source(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nami_outside_source = 192.0.2.1\n")
    assert "--ami-outside-source: 192.0.2.1 is not an address" in _usage_error(pytester)


def test_one_table_drives_pytest_and_run() -> None:
    """Every pytest option is also an ``amicheck run`` flag, and each is declared once."""
    import subprocess
    import sys

    names = [o.name for o in OPTIONS]
    assert len(names) == len(set(names))
    run_help = subprocess.run([sys.executable, "-m", "amicheck", "run", "--help"],
                              capture_output=True, text=True, timeout=60, check=True).stdout
    for opt in OPTIONS:
        assert opt.run_flag in run_help


def test_clients_are_freed_when_their_test_ends(pytester: pytest.Pytester) -> None:
    """Nothing of the plugin's keeps a finished test's clients (or their buffers) alive."""
    path = pytester.path / "suites" / "test_lifetime.py"
    path.parent.mkdir()
    path.write_text(f"""
import gc
import weakref

import pytest

REFS = []


@pytest.mark.requirement("{IDS[0]}")
def test_opens_clients(ami_client, ami_connect):
    REFS.append(weakref.ref(ami_client))
    REFS.append(weakref.ref(ami_connect()))
    ami_client.request("Ping")


@pytest.mark.requirement("{IDS[1]}")
def test_fails_with_a_client(ami_client):
    REFS.append(weakref.ref(ami_client))
    raise AssertionError("a failing test keeps its transcript, not its client")


@pytest.mark.requirement("{IDS[2]}")
def test_earlier_clients_are_gone():
    gc.collect()
    alive = [r() for r in REFS[:2] if r() is not None]
    assert alive == []
""")
    result = pytester.runpytest("-p", "no:cacheprovider", "-p", "no:randomly",
                                "--ami-report-dir", "r")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*AMI transcript*"])
