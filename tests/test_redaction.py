"""Redaction of secrets, their encodings and values derived from them, in text and reports."""

from __future__ import annotations

import base64
import hashlib
import time

import pytest

from amicheck import redaction
from amicheck.redaction import (
    MASK,
    md5_key,
    register_challenge,
    register_derived,
    scrub_bytes,
    scrub_text,
    secret_forms,
)

SECRET = "Canary-Pass1"


def test_forms_cover_hex_base64_and_derived() -> None:
    key = md5_key("424242", SECRET)
    raw = SECRET.encode()
    forms = secret_forms([SECRET])
    assert {SECRET, raw.hex(), raw.hex().upper(), base64.b64encode(raw).decode(),
            base64.urlsafe_b64encode(raw).decode().rstrip("="), key, key.upper()} <= forms
    assert "" not in secret_forms(["", SECRET])


def test_scrub_text_masks_every_form_in_any_case() -> None:
    key = md5_key("777001", SECRET)
    mixed = key[:16].upper() + key[16:]
    text = (f"key = '{key}' {mixed} x{key}y {SECRET.encode().hex().upper()} "
            f"{base64.b64encode(SECRET.encode()).decode()} {SECRET}")
    out = scrub_text(text, [SECRET])
    assert out == f"key = '{MASK}' {MASK} x{MASK}y {MASK} {MASK} {MASK}"
    assert scrub_bytes(text.encode(), [SECRET]) == out.encode()


def test_overlapping_secrets_leave_no_tail() -> None:
    assert scrub_text("<abcd1234wxyz>", ["abcd1234", "1234wxyz"]) == f"<{MASK}>"


def test_short_and_empty_values_are_not_searched() -> None:
    assert scrub_text("a ab abc", ["", "a", "ab", "abc"]) == "a ab abc"
    assert scrub_text("", [SECRET]) == ""
    register_derived("")
    assert "" not in redaction.derived_secrets()


def test_key_of_a_challenge_seen_is_masked_without_md5_key() -> None:
    """A key computed elsewhere (hashlib, another process) for a challenge seen on the wire."""
    key = hashlib.md5(b"5550123" + SECRET.encode()).hexdigest()
    assert scrub_text(key, [SECRET]) == key
    register_challenge("5550123")
    assert scrub_text(f"k={key}", [SECRET]) == f"k={MASK}"
    assert scrub_text(f"k={key}", ["other-Secret1"]) == f"k={key}"  # only for known secrets


def test_non_hex_derived_value_is_masked() -> None:
    register_derived("derived token/with+chars")
    assert scrub_text("x derived token/with+chars y", []) == f"x {MASK} y"


def test_scrub_is_fast_with_many_registered_keys() -> None:
    for i in range(20_000):
        register_derived(hashlib.md5(b"bulk%d" % i).hexdigest())
    text = ("Event: Newchannel\nUniqueid: 1700000000.123\nChannel: PJSIP/1000-0000001a\n"
            "Data: deadbeefcafe 0123456789abcdef0123456789abcdef " + SECRET + "\n") * 2000
    scrub_text(text, [SECRET, "Second-Pass1"])
    start = time.process_time()
    out = scrub_text(text, [SECRET, "Second-Pass1"])
    elapsed = time.process_time() - start
    assert SECRET not in out and elapsed < 1.0, elapsed


def test_scrub_report_covers_locals_diffs_logs_and_properties(
    pytester: pytest.Pytester,
) -> None:
    """A real failing test with -l, -vv, captured output and logs: nothing derived survives."""
    key = hashlib.md5(b"31337" + SECRET.encode()).hexdigest()
    pytester.makeconftest(f"""
        import pytest
        from amicheck.redaction import scrub_report

        @pytest.hookimpl(wrapper=True)
        def pytest_runtest_makereport(item, call):
            report = yield
            scrub_report(report, [{SECRET!r}])
            return report
    """)
    pytester.makepyfile(f"""
        import logging
        import pytest
        from amicheck.redaction import md5_key

        def test_fails(record_property):
            key = md5_key("31337", {SECRET!r})
            record_property("key", key)
            print("stdout", key)
            logging.getLogger("x").warning("log %s", key.upper())
            assert {{"key": key, "n": 1}} == {{"key": "0" * 32, "n": 1}}

        def test_skips():
            pytest.skip("skip " + md5_key("31337", {SECRET!r}))

        def test_raises():
            try:
                raise ValueError(md5_key("31337", {SECRET!r}))
            except ValueError as exc:
                raise RuntimeError("chained " + {SECRET!r}) from exc
    """)
    result = pytester.runpytest_subprocess("-l", "-vv", "-rA", "--log-level", "DEBUG",
                                           "--junitxml", "j.xml")
    result.assert_outcomes(failed=2, skipped=1)
    text = result.stdout.str() + result.stderr.str()
    junit = (pytester.path / "j.xml").read_text()
    assert "key        = '********'" in text  # the -l locals ran, masked
    assert "chained ********" in text and "skip ********" in text
    for out in (text, junit):
        assert key not in out.lower() and SECRET not in out
