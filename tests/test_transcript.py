"""Transcript redaction: secrets never survive, however the bytes are split."""

from __future__ import annotations

import base64
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amicheck.redaction import md5_key
from amicheck.transcript import MASK, Direction, Redactor, Transcript

SECRET = "Passw0rd!xy"
STREAM = (
    b"Action: Login\r\nUsername: ucmamiuser1\r\nSecret: " + SECRET.encode() + b"\r\n\r\n"
    b"Action: Login\r\nAuthType: MD5\r\nkey: 0123456789abcdef0123456789abcdef\r\n\r\n"
    b"Action: DBPut\r\nFamily: f\r\nVal: some " + SECRET.encode() + b" text\r\n\r\n"
    b"Action: Ping\nSECRET:bare-lf-secret\nActionID: 1\n\n"
)


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    out, prev = [], 0
    for p in points + [len(data)]:
        out.append(data[prev:p])
        prev = p
    return [c for c in out if c]


def test_whole_stream_redacted() -> None:
    t = Transcript(secrets=[SECRET])
    t.record(Direction.SENT, STREAM)
    data = t.data()
    assert SECRET.encode() not in data
    assert b"0123456789abcdef" not in data
    assert b"bare-lf-secret" not in data
    assert b"Secret: " + MASK + b"\r\n" in data
    assert b"key: " + MASK + b"\r\n" in data
    assert b"SECRET: " + MASK + b"\n" in data
    assert b"Username: ucmamiuser1\r\n" in data
    assert b"Val: some " + MASK + b" text" in data


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=10_000), max_size=40))
def test_any_split_redacted(cuts: list[int]) -> None:
    t = Transcript(secrets=[SECRET])
    for chunk in _split(STREAM, cuts):
        t.record(Direction.SENT, chunk)
    data = t.data()
    assert SECRET.encode() not in data
    assert b"0123456789abcdef" not in data
    assert b"bare-lf-secret" not in data
    assert b"Username: ucmamiuser1" in data
    assert b"Action: Ping" in data


def test_one_byte_frames() -> None:
    t = Transcript(secrets=[SECRET])
    for i in range(len(STREAM)):
        t.record(Direction.RECEIVED, STREAM[i:i + 1])
    assert SECRET.encode() not in t.data()
    assert SECRET not in t.render(limit=None)
    assert len(t) == len(STREAM)


def test_directions_have_separate_state() -> None:
    t = Transcript()
    t.record(Direction.SENT, b"Secr")
    t.record(Direction.RECEIVED, b"Response: Success\r\n")
    t.record(Direction.SENT, b"et: hidden\r\n\r\n")
    assert b"hidden" not in t.data(Direction.SENT)
    assert t.data(Direction.RECEIVED) == b"Response: Success\r\n"


def test_secret_registered_late_is_scrubbed() -> None:
    t = Transcript()
    t.record(Direction.SENT, b"Action: X\r\nData: " + SECRET.encode() + b"\r\n\r\n")
    t.add_secret(SECRET)
    assert SECRET.encode() not in t.data()


def test_redactor_keeps_plain_lines_and_line_ends() -> None:
    r = Redactor()
    assert r.process(b"Keyboard: yes\r\nSecretary: no\r\n") == b"Keyboard: yes\r\nSecretary: no\r\n"
    assert r.process(b"Key: v\r\n") == b"Key: " + MASK + b"\r\n"


def test_frames_bounded_and_addressed() -> None:
    t = Transcript(("127.0.0.1", 4000), ("127.0.0.1", 7777), max_bytes=100)
    for _ in range(50):
        t.record(Direction.SENT, b"Action: Ping\r\n\r\n")
    assert t.dropped_frames > 0 and sum(len(f.data) for f in t) <= 100
    f = t.frames[-1]
    assert f.src == ("127.0.0.1", 4000) and f.dst == ("127.0.0.1", 7777)
    assert "earlier frame" in t.render(limit=2)


CRF = (b"Event: ChallengeResponseFailed\r\nPrivilege: security,all\r\nChallenge: 8080\r\n"
       b"Response: 0123456789abcdef0123456789abcdef\r\n"
       b"ExpectedResponse: fedcba9876543210fedcba9876543210\r\n\r\n"
       b"Response: Success\r\nActionID: 2\r\n\r\n")


@pytest.mark.parametrize("step", [0, 1, 3, 7])
def test_challenge_response_failed_keys_masked_by_position(step: int) -> None:
    """Response (the attempted key) only inside the event; ExpectedResponse anywhere."""
    t = Transcript()
    chunks = [CRF] if step == 0 else [CRF[i:i + step] for i in range(0, len(CRF), step)]
    for chunk in chunks:
        t.record(Direction.RECEIVED, chunk)
    data = t.data()
    assert b"0123456789abcdef" not in data and b"fedcba9876543210" not in data
    assert b"Response: " + MASK + b"\r\nExpectedResponse: " + MASK + b"\r\n" in data
    assert b"Response: Success\r\nActionID: 2" in data  # a reply's status stays
    assert b"Challenge: 8080" in data


def test_derived_keys_and_secret_encodings_masked_across_splits() -> None:
    secret = "Hygiene-Pass1"
    key = md5_key("99887766", secret)
    stream = (b"Event: Echo\r\nA: " + key.upper().encode() + b"\r\nB: "
              + secret.encode().hex().encode() + b"\r\nC: "
              + base64.b64encode(secret.encode()) + b"\r\n\r\n")
    for step in (1, 5, len(stream)):
        t = Transcript(secrets=[secret])
        for i in range(0, len(stream), step):
            t.record(Direction.RECEIVED, stream[i:i + step])
        data = t.data()
        assert key.upper().encode() not in data, step
        assert secret.encode().hex().encode() not in data
        assert base64.b64encode(secret.encode()).rstrip(b"=") not in data
        assert len(t) == -(-len(stream) // step)


def test_challenge_seen_masks_its_key_elsewhere() -> None:
    """A key computed without md5_key for a challenge this transcript saw is masked."""
    secret = "Seen-Chall3nge"
    key = hashlib.md5(b"123454321" + secret.encode()).hexdigest().encode()
    t = Transcript(secrets=[secret])
    t.record(Direction.RECEIVED, b"Response: Success\r\nChallenge: 123454321\r\n\r\n")
    t.record(Direction.SENT, b"Action: Login\r\nAuthType: MD5\r\nX-Key: " + key + b"\r\n\r\n")
    assert key not in t.data()
