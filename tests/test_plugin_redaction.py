"""Report redaction masks the profile's secrets and every secret-derived value (MD5 keys)."""

from __future__ import annotations

import pytest

import amicheck.capture  # noqa: F401  (imported once: see tests/test_plugin.py)
import amicheck.client  # noqa: F401
import amicheck.sim  # noqa: F401
from amicheck.requirements import CATALOGUE

IDS = sorted(CATALOGUE)


def test_md5_key_is_masked_in_terminal_and_reports(pytester: pytest.Pytester) -> None:
    """A failing check whose locals and message hold an MD5 key (``-l``): no trace of it."""
    path = pytester.path / "suites" / "test_md5_leak.py"
    path.parent.mkdir()
    path.write_text(f"""
import pytest
from amicheck.redaction import md5_key


@pytest.mark.requirement("{IDS[0]}")
def test_leaks_a_key(ami_client):
    key = md5_key("840371912", "Ucm4mi-All1")
    print("captured stdout with", key)
    assert key == "not it", f"the key was {{key}}"
""")
    result = pytester.runpytest("-p", "no:cacheprovider", "-l", "-rA", "--ami-report-dir", "r",
                                "-o", "ami_suites=suites")
    result.assert_outcomes(failed=1)
    from amicheck.redaction import md5_key

    key = md5_key("840371912", "Ucm4mi-All1")
    out = result.stdout.str() + result.stderr.str()
    assert "the key was ********" in out
    assert key not in out and "Ucm4mi-All1" not in out
    for f in (pytester.path / "r").iterdir():
        data = f.read_text(encoding="utf-8")
        assert key not in data and "Ucm4mi-All1" not in data, f.name
    assert "********" in (pytester.path / "r" / "report.json").read_text(encoding="utf-8")
