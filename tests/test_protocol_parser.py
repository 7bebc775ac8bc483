"""The client-side Parser: every sample whole, byte by byte, and with trailing data."""

from __future__ import annotations

import _conformance
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amicheck.errors import ProtocolError, RemoteProtocolError
from amicheck.protocol import Message, MessageKind, Parser, encode

BANNER = b"Asterisk Call Manager/2.7.0\r\n"
LOGIN_OK = b"Response: Success\r\nActionID: 1\r\nMessage: Authentication accepted\r\n\r\n"
BOOTED = b"Event: FullyBooted\r\nPrivilege: system,all\r\nStatus: Fully Booted\r\n\r\n"


def feed_in(data: bytes, step: int | None, **kw: object) -> tuple[Parser, list[Message]]:
    parser = Parser(**kw)  # type: ignore[arg-type]
    if step is None:
        return parser, parser.feed(data)
    out: list[Message] = []
    for i in range(0, len(data), step):
        out.extend(parser.feed(data[i:i + step]))
    return parser, out


@pytest.mark.parametrize("step", [None, 1, 2, 3, 5, 17, 1460])
def test_banner_and_messages_any_chunking(step: int | None) -> None:
    parser, msgs = feed_in(BANNER + LOGIN_OK + BOOTED, step)
    assert parser.banner == "Asterisk Call Manager/2.7.0"
    assert [m.kind for m in msgs] == [MessageKind.RESPONSE, MessageKind.EVENT]
    assert msgs[0].get("message") == "Authentication accepted"
    assert msgs[1].name == "FullyBooted"
    assert parser.buffered == 0 and not parser.violations


def test_partial_input_is_kept() -> None:
    parser = Parser()
    assert parser.feed(BANNER + LOGIN_OK[:20]) == []
    assert parser.buffered == 20
    assert parser.feed(LOGIN_OK[20:] + BOOTED[:5])[0].action_id == "1"
    assert parser.buffered == 5


def test_banner_alone_yields_nothing_and_is_recorded() -> None:
    parser = Parser()
    assert parser.feed(BANNER) == []
    assert parser.banner is not None and parser.buffered == 0


def test_missing_banner_is_a_violation_not_data_loss() -> None:
    parser, msgs = feed_in(LOGIN_OK, None)
    assert parser.banner is None
    assert msgs[0].action_id == "1"
    assert [v.rule for v in parser.violations] == ["banner"]


def test_repeated_headers_keep_order_and_lookup_ignores_case() -> None:
    data = (b"Event: Newchannel\r\nChanVariable: A=1\r\nchanvariable: B=2\r\n"
            b"Variable: x\r\nCHANVARIABLE: C=3\r\n\r\n")
    _, (msg,) = feed_in(data, None, banner=False)
    assert msg.getall("ChanVariable") == ["A=1", "B=2", "C=3"]
    assert msg.get("CHANVARIABLE") == "A=1"
    assert msg.keys()[1:3] == ["ChanVariable", "chanvariable"]
    assert encode(msg) == data


@pytest.mark.parametrize("step", [None, 1, 4])
def test_bare_lf_and_mixed_line_ends(step: int | None) -> None:
    data = b"Response: Success\nActionID: 2\r\nMessage: ok\n\nEvent: Ping\r\n\n"
    parser, msgs = feed_in(data, step, banner=False)
    assert [m.name for m in msgs] == ["Success", "Ping"]
    assert msgs[0].action_id == "2"
    rules = [v.rule for v in msgs[0].violations]
    assert rules.count("bare-lf") >= 2


def test_lone_cr_is_data() -> None:
    _, (msg,) = feed_in(b"Event: X\r\nName: a\rb\r\n\r\n", None, banner=False)
    assert msg.get("Name") == "a\rb"


@pytest.mark.parametrize("step", [None, 1, 7, 64])
def test_follows_command_output_with_blank_lines(step: int | None) -> None:
    body = b"Channel  Location  State\nline: with colon\n\nafter a blank line\n"
    data = (b"Response: Follows\r\nPrivilege: Command\r\nActionID: c1\r\n" + body +
            b"--END COMMAND--\r\n\r\n" + LOGIN_OK)
    parser, msgs = feed_in(data, step, banner=False)
    assert len(msgs) == 2
    follows = msgs[0]
    assert follows.is_response("Follows") and follows.action_id == "c1"
    assert follows.get("Privilege") == "Command"
    assert follows.text == body.decode()
    assert encode(follows) + encode(msgs[1]) == data


def test_output_headers_of_asterisk_14() -> None:
    data = (b"Response: Success\r\nActionID: 9\r\nMessage: Command output follows\r\n"
            b"Output: Name/username  Host\r\nOutput: \r\nOutput: 2 sip peers\r\n\r\n")
    _, (msg,) = feed_in(data, 3, banner=False)
    assert msg.getall("Output") == ["Name/username  Host", "", "2 sip peers"]


def test_queues_raw_text_of_asterisk_13() -> None:
    data = (b"6500 has 0 calls (max unlimited) in 'ringall' strategy (0s holdtime, 0s talktime), "
            b"W:0, C:0, A:0, SL:0.0% within 0s\r\n   Members: \r\n"
            b"      Agent 1001 (Local/1001@from-internal) (Not in use) has taken no calls yet\r\n"
            b"   No Callers\r\n\r\n\r\n\r\n")
    parser, msgs = feed_in(data, 1, banner=False)
    assert len(msgs) == 1 and msgs[0].kind is MessageKind.RAW
    assert msgs[0].text is not None and msgs[0].text.startswith("6500 has 0 calls")
    assert "No Callers" in msgs[0].text
    assert {v.rule for v in parser.violations} == {"empty-packet"}


def test_eventlist_messages() -> None:
    data = (b"Response: Success\r\nActionID: qs\r\nEventList: start\r\n"
            b"Message: Queue status will follow\r\n\r\n"
            b"Event: QueueParams\r\nQueue: 6500\r\nActionID: qs\r\n\r\n"
            b"Event: QueueStatusComplete\r\nActionID: qs\r\nEventList: Complete\r\n"
            b"ListItems: 1\r\n\r\n")
    _, msgs = feed_in(data, 2, banner=False)
    assert [m.event_list for m in msgs] == ["start", None, "complete"]
    assert all(m.action_id == "qs" for m in msgs)


def test_latin1_name_is_decoded_and_recorded() -> None:
    data = b"Event: Newchannel\r\nCallerIDName: Jos\xe9 M\xfcller\r\n\r\n"
    _, (msg,) = feed_in(data, 1, banner=False)
    assert msg.get("CallerIDName") == "José Müller"
    assert msg.encoding == "latin-1"
    assert [v.rule for v in msg.violations] == ["not-utf8"]
    assert msg.violations[0].offset == data.index(b"\xe9")
    assert encode(msg) == data


def test_utf8_split_across_reads() -> None:
    data = "Event: Newchannel\r\nCallerIDName: 李四 Zoë\r\n\r\n".encode()
    cut = data.index("李".encode()) + 1
    parser = Parser(banner=False)
    assert parser.feed(data[:cut]) == []
    (msg,) = parser.feed(data[cut:])
    assert msg.get("CallerIDName") == "李四 Zoë" and not msg.violations


def test_header_without_space_and_without_colon_are_recorded() -> None:
    _, (msg,) = feed_in(b"Event: X\r\nKey:value\r\nno colon here\r\n\r\n", None, banner=False)
    assert msg.get("Key") == "value"
    assert [v.rule for v in msg.violations] == ["header-space", "header-syntax"]
    assert encode(msg) == b"Event: X\r\nKey:value\r\nno colon here\r\n\r\n"


def test_strict_mode_raises_with_offset_and_rule() -> None:
    parser = Parser(banner=False, strict=True)
    with pytest.raises(RemoteProtocolError) as info:
        parser.feed(b"Event: X\r\nbroken\r\n\r\n")
    assert info.value.rule == "header-syntax" and info.value.offset == 10
    assert "byte 10" in str(info.value)


def test_oversized_message_is_dropped_and_recorded_with_bounded_memory() -> None:
    parser = Parser(banner=False, max_message_size=4096)
    chunk = b"Event: Flood\r\n" + b"X: " + b"y" * 60000
    assert parser.feed(chunk) == []
    assert parser.buffered <= 4096
    (msg,) = parser.feed(b"\r\n\r\nEvent: Next\r\n\r\n")
    assert msg.name == "Next"
    assert [v.rule for v in parser.violations] == ["message-too-large"]


def test_hundred_mb_in_64k_chunks_stays_under_bound() -> None:
    bound = 1 << 20
    parser = Parser(banner=False, max_message_size=bound)
    junk = b"Z" * 65536  # no line end at all: the worst case for a naive buffer
    peak = 0
    for _ in range(100 * 16):
        parser.feed(junk)
        peak = max(peak, parser.buffered)
    assert peak <= bound + 65536


def test_big_follows_output_in_small_chunks_is_linear() -> None:
    body = b"".join(b"line %d of a long command output\n" % i for i in range(60000))
    data = b"Response: Follows\r\nPrivilege: Command\r\n" + body + b"--END COMMAND--\r\n\r\n"
    parser, msgs = feed_in(data, 1460, banner=False)
    assert len(msgs) == 1 and msgs[0].text == body.decode()
    assert parser.buffered == 0


_RECORDINGS = _conformance.recordings("asterisk-13") + _conformance.recordings("asterisk-22")


@pytest.mark.parametrize("path", _RECORDINGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_conformance_recording_parses(path: object) -> None:
    for conn in _conformance.load(path).values():  # type: ignore[arg-type]
        whole = conn.received
        parser, as_recorded = Parser(), []
        for chunk in conn.chunks("<<<"):
            as_recorded.extend(parser.feed(chunk))
        assert parser.banner is not None and parser.banner.startswith("Asterisk Call Manager/")
        assert parser.buffered == 0
        assert {v.rule for v in parser.violations} <= {"empty-packet"}
        # The same bytes whole and one byte at a time give the same messages.
        assert feed_in(whole, None)[1] == as_recorded
        assert feed_in(whole, 1)[1] == as_recorded
        for msg in as_recorded:
            assert not msg.violations
            assert msg.kind in (MessageKind.RESPONSE, MessageKind.EVENT, MessageKind.RAW)


# -- properties ---------------------------------------------------------------------------
_key = st.text(st.characters(min_codepoint=33, max_codepoint=0x2FFF,
                             blacklist_characters=":", blacklist_categories=["Cs"]),
               min_size=1, max_size=12)
_value = st.text(st.characters(blacklist_characters="\r\n", blacklist_categories=["Cs"]),
                 max_size=30).filter(lambda v: not v.startswith(" "))
_message = st.lists(st.tuples(_key, _value), min_size=1, max_size=8).map(
    lambda items: Message([("Event", "E"), *items]))


@given(st.lists(_message, min_size=1, max_size=6), st.data())
@settings(max_examples=150, deadline=None)
def test_parse_inverts_encode_in_any_chunking(msgs: list[Message], data: st.DataObject) -> None:
    wire = b"".join(encode(m) for m in msgs)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=10)))
    parser = Parser(banner=False)
    out: list[Message] = []
    last = 0
    for cut in [*cuts, len(wire)]:
        out.extend(parser.feed(wire[last:cut]))
        last = cut
    assert out == msgs
    assert b"".join(encode(m) for m in out) == wire


@given(st.binary(max_size=600), st.integers(1, 64), st.booleans())
@settings(max_examples=300, deadline=None)
def test_arbitrary_bytes_raise_nothing_but_protocol_error(data: bytes, step: int,
                                                          strict: bool) -> None:
    parser = Parser(strict=strict, max_message_size=256)
    try:
        for i in range(0, len(data), step):
            for msg in parser.feed(data[i:i + step]):
                msg.get("ActionID")
                _ = msg.kind
    except ProtocolError:
        assert strict


@given(st.binary(max_size=400))
@settings(max_examples=200, deadline=None)
def test_chunking_never_changes_the_result(data: bytes) -> None:
    stream = BANNER + data + b"\r\n\r\n"
    whole = feed_in(stream, None)[1]
    assert feed_in(stream, 1)[1] == whole
    assert feed_in(stream, 7)[1] == whole


@pytest.mark.parametrize("cut", range(1, 20))
def test_follows_started_in_an_earlier_read_and_marker_split(cut: int) -> None:
    head = b"Response: Follows\r\nPrivilege: Command\r\nActionID: x-1\r\nChannel  State\n"
    tail = b"0 active channels\n--END COMMAND--\r\n\r\n" + LOGIN_OK
    parser = Parser(banner=False)
    assert parser.feed(head) == []
    split = tail.index(b"--END") + cut
    msgs = parser.feed(tail[:split]) + parser.feed(tail[split:])
    assert [m.name for m in msgs] == ["Follows", "Success"]
    assert msgs[0].text == "Channel  State\n0 active channels\n"


def test_latin1_message_amid_clean_ones_costs_only_itself() -> None:
    clean = b"Event: A\r\nX: 1\r\n\r\n"
    bad = b"Event: B\r\nCallerIDName: Jos\xe9\r\n\r\n"
    data = clean * 5 + bad + clean * 3 + bad + clean
    parser, msgs = feed_in(data, None, banner=False)
    assert [m.name for m in msgs] == ["A"] * 5 + ["B"] + ["A"] * 3 + ["B", "A"]
    assert [v.offset for m in msgs for v in m.violations] == [
        len(clean) * 5 + bad.index(b"\xe9"), len(clean) * 8 + len(bad) + bad.index(b"\xe9")]


_FOLLOWS = (b"Response: Follows\r\nPrivilege: Command\r\nActionID: f\r\n"
            b"out: 1\n\nout 2\n--END COMMAND--\r\n\r\n")
_PIECES = [LOGIN_OK, BOOTED, _FOLLOWS, b"Event: N\r\nCallerIDName: Jos\xe9\r\n\r\n",
           b"Event: L\nK: v\n\n", b"\r\n"]


@given(st.lists(st.sampled_from(_PIECES), min_size=1, max_size=12), st.data())
@settings(max_examples=200, deadline=None)
def test_mixed_stream_any_chunking_matches_whole(pieces: list[bytes],
                                                 data: st.DataObject) -> None:
    stream = BANNER + b"".join(pieces)
    whole = feed_in(stream, None)[1]
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    parser, out, last = Parser(), [], 0
    for cut in [*cuts, len(stream)]:
        out.extend(parser.feed(stream[last:cut]))
        last = cut
    assert out == whole
    assert [m.name for m in whole] == [
        {LOGIN_OK: "Success", BOOTED: "FullyBooted", _FOLLOWS: "Follows"}.get(p, p[7:8].decode())
        for p in pieces if p != b"\r\n"]


def test_one_huge_read_with_odd_messages_is_windowed_and_exact() -> None:
    ok = b"Event: A\r\nCallerIDName: Jose\r\n\r\n"
    odd = b"Event: B\r\nCallerIDName: Jos\xe9\r\n\r\n"
    data = b"".join(odd if i % 97 == 0 else ok for i in range(20000))
    parser, msgs = feed_in(data, None, banner=False)
    assert len(msgs) == 20000
    assert [m.name for m in msgs] == ["B" if i % 97 == 0 else "A" for i in range(20000)]
    bad = [v.offset for m in msgs for v in m.violations]
    at = odd.index(b"\xe9")
    assert bad[:2] == [at, len(odd) + 96 * len(ok) + at]
    assert feed_in(data, 4096, banner=False)[1] == msgs


def _wire(msgs: list[Message]) -> list[tuple[object, ...]]:
    """Everything a message carries, violations and encoding included."""
    return [(m.raw_items, m.text, m.encoding, [(v.rule, v.offset) for v in m.violations])
            for m in msgs]


_BIG = (b"Event: Newchannel\r\n" + b"".join(b"ChanVariable: V%d=%s\r\n" % (i, b"x" * 90)
                                             for i in range(40)) + b"\r\n")
_BOUNDARY_PIECES = [*_PIECES, _BIG, b"Event: M\r\nK: v\rw\r\n\r\n", b"Event: S\r\nK:v\r\n\r\n",
                    b"Response: Follows\r\nActionID: g\r\n" + b"line\n" * 300
                    + b"--END COMMAND--\r\n\r\n", b"Event: C\r\nName: \xe6\x9d\x8e\r\n\r\n"]


@given(st.lists(st.sampled_from(_BOUNDARY_PIECES), min_size=1, max_size=10),
       st.integers(1, 700), st.data())
@settings(max_examples=150, deadline=None)
def test_chunk_boundaries_never_change_messages_or_violations(
        pieces: list[bytes], step: int, data: st.DataObject) -> None:
    """Fixed-size chunks (like TCP segments) and arbitrary cuts give exactly the whole-read
    result: the same headers, texts, encodings, and violations at the same offsets. (The
    stream ends in a message: a stray blank line at the very end is judged only when what
    follows it arrives.)"""
    stream = BANNER + b"".join(pieces) + LOGIN_OK
    whole_parser, whole = feed_in(stream, None)
    stepped_parser, stepped = feed_in(stream, step)
    assert _wire(stepped) == _wire(whole)
    assert stepped_parser.violations == whole_parser.violations
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    parser, out, last = Parser(), [], 0
    for cut in [*cuts, len(stream)]:
        out.extend(parser.feed(stream[last:cut]))
        last = cut
    assert _wire(out) == _wire(whole) and parser.buffered == whole_parser.buffered == 0


def test_two_megabyte_packet_in_536_byte_chunks_is_linear() -> None:
    """A 2 MB ChanVariable event costs about what 2 MB of small events cost (not n^2)."""
    import time

    big = b"Event: Huge\r\n" + b"ChanVariable: V=" + b"y" * 100 + b"\r\n"
    big = big[:13] + big[13:] * (2_000_000 // 118) + b"\r\n"
    small = BOOTED * (len(big) // len(BOOTED))

    def cost(data: bytes) -> float:
        best = float("inf")
        for _ in range(3):
            t0 = time.process_time()
            msgs = feed_in(data, 536, banner=False)[1]
            best = min(best, time.process_time() - t0)
        assert msgs
        return best

    assert cost(big) < 3 * cost(small)


@pytest.mark.parametrize("step", [None, 1, 7, 1460])
def test_value_holding_colon_space_splits_at_the_first_one(step: int | None) -> None:
    # The fast path partitions every line in C (map over str.partition); the split must
    # stay at the FIRST ": ", as the careful path (here forced by a bare LF) does.
    fast = b"Event: UserEvent\r\nMessage: Error: a: b\r\n\r\n"
    careful = b"Event: UserEvent\nMessage: Error: a: b\r\n\r\n"
    parser, (msg,) = feed_in(fast, step, banner=False)
    assert msg.get("Message") == "Error: a: b" and not parser.violations
    parser, (odd,) = feed_in(careful, step, banner=False)
    assert [v.rule for v in parser.violations] == ["bare-lf"]
    assert odd.items == msg.items
