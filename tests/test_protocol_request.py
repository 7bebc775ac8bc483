"""RequestParser: Asterisk 13's get_input/do_message framing, quirks included."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amicheck.errors import LocalProtocolError
from amicheck.protocol import Message, Request, RequestParser, encode
from amicheck.protocol.grammar import LINE_TOO_LONG, MAX_LINE, TOO_MANY_LINES


def frame(data: bytes, step: int | None = None) -> list[Request]:
    parser = RequestParser()
    if step is None:
        return parser.feed(data)
    out: list[Request] = []
    for i in range(0, len(data), step):
        out.extend(parser.feed(data[i:i + step]))
    return out


def long_line(total: int) -> bytes:
    """A header line of exactly ``total`` bytes, line end excluded."""
    return b"X-Long: " + b"x" * (total - 8)


@pytest.mark.parametrize("step", [None, 1, 3, 100])
def test_simple_action_any_chunking(step: int | None) -> None:
    (req,) = frame(b"Action: Ping\r\nActionID: 1\r\n\r\n", step)
    assert req.action == "Ping" and req.header("actionid") == "1" and req.error is None


def test_bare_lf_and_lone_cr() -> None:
    (req,) = frame(b"Action: Ping\nActionID: a\rb\n\n")
    assert req.header("ActionID") == "a\rb"


def test_header_lookup_is_astman_get_header() -> None:
    (req,) = frame(b"action :  Ping\r\nACTION: \r\nAction:\t Login \r\nactionid:7\r\n\r\n")
    assert req.header("Action") == ""  # first match wins, even empty
    assert req.action == "Login "  # Action: first NON-empty; trailing space kept
    assert req.header("ActionID") == "7"
    assert req.header("Missing") == ""
    assert req.header("Action", last=True) == "Login "


@pytest.mark.parametrize("length", [1022, MAX_LINE - 1])
def test_lines_that_fit(length: int) -> None:
    # 1022 + CRLF always fits; 1023 + bare LF also fits (LF lands in the last byte).
    end = b"\r\n" if length == 1022 else b"\n"
    (req,) = frame(b"Action: Ping\r\n" + long_line(length) + end + b"\r\n")
    assert req.error is None and len(req.lines) == 2


@pytest.mark.parametrize("length", [1023, 1024])
def test_edge_lengths_end_the_message_at_the_lf(length: int) -> None:
    data = b"Action: Ping\r\nActionID: a\r\n" + long_line(length) + b"\r\nActionID: b\r\n\r\n"
    first, second = frame(data, 1)
    assert first.error == LINE_TOO_LONG and first.header("ActionID") == "a"
    assert second.error is None and second.action == "" and second.header("ActionID") == "b"


@pytest.mark.parametrize("length", [1100, 70000])
def test_long_line_becomes_junk_header_and_message_does_not_run(length: int) -> None:
    data = b"Action: Ping\r\nActionID: a\r\n" + long_line(length) + b"\r\nX: y\r\n\r\n"
    (req,) = frame(data, 512)
    assert req.error == LINE_TOO_LONG
    assert req.discarded >= 1024
    assert req.lines[-1] == "X: y"


def test_next_message_after_a_long_line_is_clean() -> None:
    data = long_line(2000) + b"\r\n\r\nAction: Ping\r\nActionID: 2\r\n\r\n"
    first, second = frame(data)
    assert first.error == LINE_TOO_LONG
    assert second.error is None and second.action == "Ping"


@pytest.mark.parametrize("count,error", [(128, None), (129, TOO_MANY_LINES)])
def test_header_limit(count: int, error: str | None) -> None:
    lines = [b"Action: Ping"] + [b"H%d: v" % i for i in range(count - 1)]
    (req,) = frame(b"\r\n".join(lines) + b"\r\n\r\n")
    assert req.error == error
    assert len(req.lines) == 128


def test_nul_truncates_line_and_leading_nul_ends_message() -> None:
    first, second = frame(b"Action: Ping\0junk\r\n\0Action: Logoff\r\nActionID: 3\r\n\r\n")
    assert first.lines == ["Action: Ping"]
    assert second.lines == ["ActionID: 3"]


def test_bare_blank_line_is_an_empty_message() -> None:
    (req,) = frame(b"\r\n")
    assert req.lines == [] and req.action == ""


def test_pipelined_actions_in_order() -> None:
    data = b"".join(b"Action: Ping\r\nActionID: %d\r\n\r\n" % i for i in range(100))
    reqs = frame(data, 1460)
    assert [r.header("ActionID") for r in reqs] == [str(i) for i in range(100)]


def test_message_view_round_trips_header_spelling() -> None:
    (req,) = frame(b"Action:Ping\r\nActionID:  x\r\n\r\n")
    msg = req.message
    assert msg.get("action") == "Ping" and msg.get("ActionID") == "x"
    assert encode(msg) == b"Action:Ping\r\nActionID:  x\r\n\r\n"


@given(st.binary(max_size=3000), st.integers(1, 700))
@settings(max_examples=200, deadline=None)
def test_arbitrary_bytes_never_raise_and_memory_is_bounded(data: bytes, step: int) -> None:
    parser = RequestParser()
    for i in range(0, len(data), step):
        for req in parser.feed(data[i:i + step]):
            assert len(req.lines) <= 128
            req.header("Action")
        assert parser.buffered <= MAX_LINE


def test_encoder_refuses_header_injection() -> None:
    with pytest.raises(LocalProtocolError, match="'Channel'.*CR or LF"):
        encode(Message([("Action", "Originate"), ("Channel", "PJSIP/1\r\nAction: Command")]))
    with pytest.raises(LocalProtocolError, match="key contains CR or LF"):
        encode(Message([("Action\n", "Ping")]))
    with pytest.raises(LocalProtocolError, match="empty key"):
        encode(Message([("Action", "Ping"), ("", "x")]))


def test_encoder_forms() -> None:
    assert bytes(Message.action("Ping", ActionID=1)) == b"Action: Ping\r\nActionID: 1\r\n\r\n"
    assert encode(Message()) == b"\r\n"
    assert encode(Message([("Event", "X"), ("Name", "José")])) == \
        "Event: X\r\nName: José\r\n\r\n".encode()
