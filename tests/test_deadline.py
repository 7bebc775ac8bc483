"""Deadline: the one helper behind every wait of the client."""

from __future__ import annotations

import math
import time

import pytest

from amicheck.deadline import Deadline
from amicheck.errors import AmiTimeoutError


def test_remaining_counts_down_to_zero_then_expired() -> None:
    d = Deadline(0.05, "the banner")
    first = d.remaining()
    assert 0 < first <= 0.05 and not d.expired
    time.sleep(0.06)
    assert d.remaining() == 0.0 and d.expired


def test_zero_timeout_is_expired_at_once() -> None:
    d = Deadline(0, "event Hangup")
    assert d.expired and d.remaining() == 0.0


def test_none_waits_forever() -> None:
    d = Deadline(None, "the server to close")
    assert d.remaining() == math.inf and not d.expired
    assert d.message() == "timed out waiting for the server to close"


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf"), -0.5])
def test_bad_timeouts_refused_in_one_line(bad: float) -> None:
    with pytest.raises(ValueError, match=r"^timeout must be a finite number of seconds >= 0"):
        Deadline(bad, "x")


def test_error_names_what_was_awaited_and_from_whom() -> None:
    d = Deadline(2, "the response to ping (ActionID ac1-7)")
    err = d.error("127.0.0.1:7777", " (1 response(s) without a known ActionID arrived)")
    assert isinstance(err, AmiTimeoutError)
    assert str(err) == ("timed out after 2s waiting for the response to ping (ActionID ac1-7) "
                        "from 127.0.0.1:7777 (1 response(s) without a known ActionID arrived)")
    assert err.peer == "127.0.0.1:7777"
    assert err.waiting_for == "the response to ping (ActionID ac1-7)"


def test_short_label_for_waiting_for() -> None:
    d = Deadline(0.2, "the banner", waiting_for="banner")
    assert d.error("h:1").waiting_for == "banner"
    assert "waiting for the banner from h:1" in d.message("h:1")
    assert "the banner" in repr(d)
