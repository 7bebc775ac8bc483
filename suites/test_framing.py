"""AMI-FRM: framing robustness as Asterisk 13's manager.c defines it (get_input, do_message).

Each check writes raw bytes on a logged-in session and then a sentinel Ping: AMI answers in
order, so everything said about the payload arrives before the sentinel's answer. A target
that closes, stalls or never answers gives a failure naming what happened, with the
redacted transcript as evidence.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from amicheck.assertions import Problems, check_cases
from amicheck.client import AmiClient
from amicheck.errors import AmiCheckError
from amicheck.protocol import Message

from ._support import BULK_TIMEOUT, STEP_TIMEOUT, Exchange, collect, describe, exchange

LINE_LIMIT = 1024  # Asterisk 13: inbuf[1025] holds 1024 usable bytes
LONG_LINES = (1022, 1023, 1100, 70_000)
MAX_HEADERS = 128  # AST_MAX_MANHEADERS
PIPELINE = 100
BYTE_GAP = 0.002
UNKNOWN_ACTION = "AmicheckNoSuchAction"
MISSING_ACTION = "Missing action in request"
UNKNOWN_TEXT = (
    f"Invalid/unknown command: {UNKNOWN_ACTION}. "
    "Use Action: ListCommands to show available commands."
)


def _ok(ex: Exchange, action_id: str) -> bool:
    """The payload action ran: a Success response carries its ActionID."""
    return any(m.get("Response") == "Success" for m in ex.with_id(action_id))


def _sentinel_answered(ex: Exchange, sentinel: str) -> bool:
    return any(m.get("Response") for m in ex.with_id(sentinel))


def _evidence(ex: Exchange) -> str:
    return f"({ex.ending()}; replies: {ex.summary()})"


def _answered(client: AmiClient) -> Callable[[str, bytes], str | None]:
    """A case judge: the payload (a Ping with ActionID ``aid``) runs and is answered."""

    def judge(aid: str, payload: bytes) -> str | None:
        ex = exchange(client, payload, sentinel=f"{aid}-sentinel")
        return None if _ok(ex, aid) else f"{payload!r} not answered {_evidence(ex)}"

    return judge


def _padded_line(length: int) -> bytes:
    """A header line of exactly ``length`` bytes (without its CRLF)."""
    head = b"X-Amicheck-Pad: "
    return head + b"p" * (length - len(head))


@pytest.mark.requirement("AMI-FRM-001")
def test_bare_lf_and_mixed_line_ends(ami_client: AmiClient) -> None:
    """Messages with bare-LF line ends, and with CRLF and LF mixed, are parsed and answered."""
    cases = {
        "frm-lf": b"Action: Ping\nActionID: frm-lf\n\n",
        "frm-mixed": b"Action: Ping\r\nActionID: frm-mixed\n\r\n",
    }
    check_cases("line ends", cases, _answered(ami_client), stop=lambda: ami_client.at_eof)


@pytest.mark.requirement("AMI-FRM-002")
def test_long_lines(ami_client: AmiClient) -> None:
    """A line of 1022 bytes is fine; 1023 bytes and more give 'line too long' and the message
    does NOT run (no desynchronised remainder)."""
    problems = Problems("long lines")
    for length in LONG_LINES:
        aid, sentinel = f"frm-long-{length}", f"frm-long-{length}-sentinel"
        payload = (b"Action: Ping\r\nActionID: " + aid.encode() + b"\r\n"
                   + _padded_line(length) + b"\r\n\r\n")
        ex = exchange(ami_client, payload, sentinel=sentinel)
        ran = _ok(ex, aid)
        if length < LINE_LIMIT - 1:
            if not ran:
                problems.add(f"{length}-byte line: the Ping did not run {_evidence(ex)}")
        else:
            if ran:
                problems.add(f"{length}-byte line: the Ping RAN {_evidence(ex)}")
            elif not any("line too long" in (m.get("Message") or "") for m in ex.responses()):
                problems.add(f"{length}-byte line: no 'line too long' error {_evidence(ex)}")
        if not _sentinel_answered(ex, sentinel):
            problems.add(f"after the {length}-byte line the session is gone {_evidence(ex)}")
            break
    problems.assert_none()


def _headers(count: int, aid: str) -> bytes:
    lines = [b"Action: Ping", b"ActionID: " + aid.encode()]
    lines += [b"X-Amicheck-%d: v" % i for i in range(count - len(lines))]
    return b"\r\n".join(lines) + b"\r\n\r\n"


@pytest.mark.requirement("AMI-FRM-003")
def test_header_limit(ami_client: AmiClient) -> None:
    """A message of 128 header lines runs; one of 129 is refused ('Too many lines')."""
    problems = Problems("header limit")
    ex = exchange(ami_client, _headers(MAX_HEADERS, "frm-h128"), sentinel="frm-h128-sentinel")
    if not _ok(ex, "frm-h128"):
        problems.add(f"{MAX_HEADERS} headers: the Ping did not run {_evidence(ex)}")
    ex = exchange(ami_client, _headers(MAX_HEADERS + 1, "frm-h129"),
                  sentinel="frm-h129-sentinel")
    if _ok(ex, "frm-h129"):
        problems.add(f"{MAX_HEADERS + 1} headers: the Ping RAN {_evidence(ex)}")
    elif not any("too many lines" in (m.get("Message") or "").lower() for m in ex.responses()):
        problems.add(f"{MAX_HEADERS + 1} headers: no 'Too many lines' error {_evidence(ex)}")
    if not _sentinel_answered(ex, "frm-h129-sentinel"):
        problems.add(f"the session did not survive {MAX_HEADERS + 1} headers {_evidence(ex)}")
    problems.assert_none()


@pytest.mark.requirement("AMI-FRM-004")
def test_nul_and_high_bytes(ami_client: AmiClient) -> None:
    """NUL bytes (the rest of the line is ignored) and 0xff bytes neither break the message
    nor close the session."""
    cases = {
        "frm-nul": b"Action: Ping\r\nActionID: frm-nul\r\nX-Amicheck: ab\x00cd\r\n\r\n",
        "frm-ff": b"Action: Ping\r\nActionID: frm-ff\r\nX-Amicheck: \xff\xfe\xff\r\n\r\n",
    }
    problems = Problems("bad bytes")
    for aid, payload in cases.items():
        ex = exchange(ami_client, payload, sentinel=f"{aid}-sentinel")
        if not _ok(ex, aid):
            problems.add(f"{payload!r}: the Ping did not run {_evidence(ex)}")
        if ex.closed or not _sentinel_answered(ex, f"{aid}-sentinel"):
            problems.add(f"{payload!r}: the session did not survive {_evidence(ex)}")
            break
    problems.assert_none()


@pytest.mark.requirement("AMI-FRM-005")
def test_error_replies(ami_client: AmiClient) -> None:
    """A message without Action, an empty packet and an unknown action get Asterisk's exact
    error replies, and the session goes on."""
    problems = Problems("error replies")
    ex = exchange(ami_client, b"ActionID: frm-noaction\r\nX-Amicheck: 1\r\n\r\n",
                  sentinel="frm-noaction-sentinel")
    got = ex.first("frm-noaction")
    if got is None or got.get("Response") != "Error" or got.get("Message") != MISSING_ACTION:
        problems.add(f"no Action: expected Error '{MISSING_ACTION}', got {describe(got)} "
                        f"{_evidence(ex)}")
    ex = exchange(ami_client, b"\r\n", sentinel="frm-empty-sentinel")
    others = [m for m in ex.responses() if m.get("ActionID") != "frm-empty-sentinel"]
    if any(m.get("Message") != MISSING_ACTION for m in others):
        problems.add(f"empty packet: expected nothing or '{MISSING_ACTION}' {_evidence(ex)}")
    if not _sentinel_answered(ex, "frm-empty-sentinel"):
        problems.add(f"empty packet: the session did not go on {_evidence(ex)}")
    ex = exchange(ami_client,
                  f"Action: {UNKNOWN_ACTION}\r\nActionID: frm-unknown\r\n\r\n".encode(),
                  sentinel="frm-unknown-sentinel")
    got = ex.first("frm-unknown")
    if got is None or got.get("Response") != "Error" or got.get("Message") != UNKNOWN_TEXT:
        problems.add(f"unknown action: expected Error '{UNKNOWN_TEXT}', got {describe(got)} "
                        f"{_evidence(ex)}")
    problems.assert_none()


@pytest.mark.requirement("AMI-FRM-006")
def test_header_name_case(ami_client: AmiClient) -> None:
    """Header names match case-insensitively (``action:``, ``ACTIONID:``)."""
    cases = {
        "frm-lower": b"action: Ping\r\nactionid: frm-lower\r\n\r\n",
        "frm-upper": b"ACTION: PING\r\nACTIONID: frm-upper\r\n\r\n",
    }
    check_cases("header name case", cases, _answered(ami_client))


@pytest.mark.requirement("AMI-FRM-007")
def test_one_byte_writes(ami_client: AmiClient) -> None:
    """A message written one byte at a time, with gaps, is parsed whole."""
    payload = b"Action: Ping\r\nActionID: frm-bytes\r\n\r\n"
    chunks = [payload[i:i + 1] for i in range(len(payload))]
    ex = exchange(ami_client, chunks, sentinel="frm-bytes-sentinel", gap=BYTE_GAP)
    assert _ok(ex, "frm-bytes"), f"a Ping sent byte by byte was not answered {_evidence(ex)}"


def _pipeline(client: AmiClient, prefix: str) -> list[str]:
    """Send PIPELINE Pings in one write; return problems (empty: all answered, in order)."""
    ids = [f"{prefix}-{i}" for i in range(PIPELINE)]
    burst = b"".join(bytes(Message.action("Ping", ActionID=aid)) for aid in ids)
    try:
        client.send_bytes(burst)
    except AmiCheckError as exc:
        return [f"writing {PIPELINE} pipelined Pings failed: {exc}"]

    def done(msgs: list[Message]) -> bool:
        return sum(1 for m in msgs if m.get("Response")) >= PIPELINE

    ex = collect(client, done, timeout=BULK_TIMEOUT)
    got = [m.get("ActionID") for m in ex.responses()]
    if got == ids:
        return []
    answered = [a for a in got if a in set(ids)]
    if len(answered) < PIPELINE:
        return [f"{len(answered)} of {PIPELINE} pipelined Pings answered in "
                f"{ex.elapsed:.1f} s: {ex.ending()}"]
    return [f"answers out of order or with wrong ActionIDs: first differences "
            f"{[(i, a, b) for i, (a, b) in enumerate(zip(ids, got, strict=False)) if a != b][:5]}"]


@pytest.mark.requirement("AMI-FRM-008")
def test_pipelined_tcp(ami_client: AmiClient) -> None:
    """100 Pings written at once over TCP are all answered, in order, with their ActionIDs."""
    problems = _pipeline(ami_client, "frm-pipe")
    assert not problems, "\n".join(problems)


@pytest.mark.requirement("AMI-FRM-009")
def test_pipelined_tls(ami_login: Callable[..., AmiClient]) -> None:
    """100 Pings written at once over TLS are all answered, in order, without a stall."""
    try:
        client = ami_login(tls=True, events=False)
    except AmiCheckError as exc:
        pytest.fail(f"no TLS session to pipeline on: {exc}")
    problems = _pipeline(client, "frm-tlspipe")
    assert not problems, "\n".join(problems)


HOSTILE: dict[str, bytes] = {
    "a 70,000-byte line": b"Action: Ping\r\nX-Amicheck: " + b"h" * 70_000 + b"\r\n\r\n",
    "NUL bytes": b"Action: Ping\r\nX-Amicheck: \x00\x00\x00\r\n\x00\r\n\r\n",
    f"{MAX_HEADERS + 1} headers": _headers(MAX_HEADERS + 1, "frm-hostile"),
}


@pytest.mark.requirement("AMI-FRM-010")
def test_survives_hostile_input(ami_login: Callable[..., AmiClient]) -> None:
    """After each hostile input, a fresh connection still logs in and answers Ping."""
    problems = Problems("the target did not survive hostile input")
    for name, payload in HOSTILE.items():
        try:
            client = ami_login(events=False)
        except AmiCheckError as exc:
            problems.add(f"before sending {name}: no session: {exc}")
            break
        exchange(client, payload, sentinel="frm-hostile-sentinel")
        client.close()
        try:
            fresh = ami_login(events=False)
            reply = fresh.request("Ping", timeout=STEP_TIMEOUT)
        except AmiCheckError as exc:
            problems.add(f"after {name}: a fresh connection failed: {exc}")
            break
        if not reply.ok:
            problems.add(f"after {name}: Ping answered {describe(reply.response)}")
        fresh.close()
    problems.assert_none()
