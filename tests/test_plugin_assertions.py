"""amicheck.assertions: helpers that hide their frames and explain the failure."""

from __future__ import annotations

import hypothesis  # noqa: F401
import pytest

import amicheck.capture  # noqa: F401  (imported once: see tests/test_plugin.py)
import amicheck.client  # noqa: F401
import amicheck.sim  # noqa: F401
from amicheck.assertions import (
    Problems,
    assert_error,
    assert_fields,
    assert_no_secret,
    assert_success,
    check_cases,
    field_diff,
)
from amicheck.protocol import Message

OK = Message([("Response", "Success"), ("ActionID", "7"), ("Ping", "Pong")])
ERR = Message([("Response", "Error"), ("Message", "Permission denied")])


def test_success_and_error() -> None:
    assert_success(OK)
    assert_error(ERR, "Permission denied")
    with pytest.raises(AssertionError, match="expected a successful response"):
        assert_success(ERR, "Originate")
    with pytest.raises(AssertionError, match="Message: expected 'Nope'"):
        assert_error(ERR, "Nope")
    with pytest.raises(AssertionError, match="expected Response: Error"):
        assert_error(OK)
    with pytest.raises(TypeError):
        assert_success("Success")


def test_fields_diff() -> None:
    assert_fields(OK, ActionID="7", ping="Pong", Message=None)
    assert field_diff(OK, {"ActionID": "8", "Message": None, "Extra": "x"}) == [
        "ActionID: expected '8', got '7'",
        "Extra: expected 'x', got (absent)",
    ]
    with pytest.raises(AssertionError, match=r"2 field\(s\) differ"):
        assert_fields(OK, "ping", ActionID="8", Ping="Ping")


def test_no_secret_never_prints_it() -> None:
    assert_no_secret(b"nothing here", ["s3cret-Pass1"])
    with pytest.raises(AssertionError) as info:
        assert_no_secret("x s3cret-Pass1 y", ["s3cret-Pass1"], "the log")
    assert "s3cret" not in str(info.value) and "the log" in str(info.value)


def test_helpers_hide_their_frames(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from amicheck.assertions import assert_fields, assert_closed, assert_still_open

        def test_fields(ami_client):
            assert_fields(ami_client.request("Ping"), "ping", Ping="Peng")

        def test_closed(ami_client):
            assert_closed(ami_client, 0.2, "after ping")

        def test_open(ami_client):
            assert_still_open(ami_client)
            ami_client.close()
            assert_still_open(ami_client, 0.5, "after close")
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=3)
    out = result.stdout.str()
    assert "amicheck/assertions.py" not in out
    result.stdout.fnmatch_lines([
        "*ping: 1 field(s) differ:*",
        "*Ping: expected 'Peng', got 'Pong'*",
        "*after ping: the server kept the connection open for 0.2 s*",
        "*after close: the connection no longer answers Ping*",
    ])


def test_problems_one_failure_listing_every_case() -> None:
    problems = Problems("write privileges not enforced", limit=3)
    problems.assert_none()  # nothing recorded: passes
    problems.add("u1: Originate should be refused")
    problems.extend(f"u{i}: Setvar" for i in range(2, 6))
    assert len(problems) == 5 and problems
    with pytest.raises(AssertionError) as exc:
        problems.assert_none()
    assert str(exc.value).splitlines() == [
        "write privileges not enforced:", "u1: Originate should be refused", "u2: Setvar",
        "u3: Setvar", "... and 2 more",
    ]


def test_check_cases_runs_the_table() -> None:
    seen: list[str] = []

    def judge(label: str, n: int) -> str | list[str] | None:
        seen.append(label)
        return None if n % 2 == 0 else ([f"{label} odd", f"{label} again"] if n > 2 else
                                         f"{label} odd")

    check_cases("even", {"a": 2, "b": 4}, judge)
    with pytest.raises(AssertionError, match=r"(?s)numbers:\nc odd\nd odd\nd again"):
        check_cases("numbers", [("c", 1), ("d", 3), ("e", 5)], judge,
                    stop=lambda: seen[-1] == "d")
    assert seen == ["a", "b", "c", "d"]  # stop() ended the table after d
