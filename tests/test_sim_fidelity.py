"""Fidelity: replay the client bytes of the Asterisk 13 recordings against the simulator.

Each ``>>>`` chunk of tests/data/conformance/asterisk-13/{01,02,03,04,05,10}*.txt is sent as
recorded; everything the simulator answers before the next ``>>>`` must equal the recorded
``<<<`` bytes (chunks joined), after masking what differs by nature: timestamps, EventTV and
SessionTV, SessionID, client ports and the MD5 challenge (the Key the client sends is
recomputed for our challenge, as a real client would). ``*** EOF`` must be an EOF here too.

The profile served has the recording's users and banner. Where the UCM guide deliberately
differs from stock Asterisk (an EMPTY permitted list denies everyone; stock allows all) the
recordings carry no case: ``nopermit01`` is deny-only there, which both deny.
"""

from __future__ import annotations

import ast
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from _conformance import CONFORMANCE_DIR
from test_sim_core_kit import Conn, make_profile, sim_running

from amicheck.profile import User
from amicheck.sim import Simulator

REC = CONFORMANCE_DIR / "asterisk-13"
FILES = ["01-connect.txt", "02-login-ok.txt", "03-login-failures.txt",
         "04-action-before-login.txt", "05-challenge-md5.txt", "10-logoff-ping.txt"]
SECRET = "test123"

_LINE = re.compile(r"^\[t=\s*[\d.]+\] \[(?P<conn>[^\]]+)\] (?P<dir>>>>|<<<|\*\*\*) (?P<rest>.*)$")
_MASKS = [
    (re.compile(rb"(EventTV|SessionTV): [^\r\n]*"), rb"\1: <tv>"),
    (re.compile(rb"Timestamp: \d+\.\d{6}"), rb"Timestamp: <ts>"),
    (re.compile(rb"SessionID: 0x[0-9a-f]+"), rb"SessionID: <id>"),
    (re.compile(rb"(IPV4/TCP/127\.0\.0\.\d+)/\d+"), rb"\1/<port>"),
    (re.compile(rb"Challenge: \d+"), rb"Challenge: <challenge>"),
]


@dataclass
class Step:
    send: bytes
    expect: bytes = b""
    eof: bool = False


@dataclass
class Replay:
    name: str
    source: str | None
    banner: bytes = b""
    steps: list[Step] = field(default_factory=list)


def _parse(path: Path) -> list[Replay]:
    conns: dict[str, Replay] = {}
    for line in path.read_text().splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        name, direction, rest = m["conn"], m["dir"], m["rest"]
        if name not in conns:
            src = re.search(r"src(\d+\.\d+\.\d+\.\d+)", name)
            conns[name] = Replay(name, src[1] if src else None)
        rep = conns[name]
        if direction == ">>>":
            rep.steps.append(Step(ast.literal_eval(rest)))
        elif direction == "<<<":
            data = ast.literal_eval(rest)
            if rep.steps:
                rep.steps[-1].expect += data
            else:
                rep.banner += data
        elif rest.startswith("EOF") and rep.steps:
            rep.steps[-1].eof = True
    return list(conns.values())


def _mask(data: bytes) -> bytes:
    for rx, repl in _MASKS:
        data = rx.sub(repl, data)
    return data


def _profile() -> object:
    users = [
        User("ucmamiuser1", SECRET, ("127.0.0.1/32",), ("all",)),
        User("aclblocked1", "Passw0rd!", ("127.0.0.2/32",), ("all",)),
        User("nopermit01", "Passw0rd!", (), ("all",)),
        *(User(f"priv_{c}", "Passw0rd!", ("127.0.0.1/32",), (c,))
          for c in ("call", "reporting", "originate", "agent", "user", "cdr", "dialplan")),
    ]
    return make_profile(users, banner="Asterisk Call Manager/2.10.6")


@pytest.fixture(scope="module")
def sim() -> object:
    with sim_running(_profile(), fail_delay=0.05) as s:  # type: ignore[arg-type]
        yield s


def _rewrite_key(send: bytes, recorded: str | None, ours: str | None) -> bytes:
    """A correct recorded Key becomes the correct Key for our challenge (case kept)."""
    m = re.search(rb"Key: ([0-9a-fA-F]{32})", send)
    if not m or recorded is None or ours is None:
        return send
    key = m[1].decode()
    if key.lower() != hashlib.md5((recorded + SECRET).encode()).hexdigest():
        return send
    new = hashlib.md5((ours + SECRET).encode()).hexdigest()
    new = new.upper() if key.isupper() else new
    return send.replace(m[1], new.encode())


def _read_exactly(c: Conn, start: int, size: int, eof: bool) -> bytes:
    """Read until ``size`` new bytes arrived (and EOF if expected), or the timeout."""
    import time

    deadline = time.monotonic() + 3
    while len(c.raw) - start < size and c._recv(deadline):
        pass
    if eof:
        c.closed(3)
    else:
        c._recv(time.monotonic() + 0.05)    # anything extra would show up in the diff
    return bytes(c.raw[start:])


@pytest.mark.parametrize("filename", FILES)
def test_replay_matches_asterisk13(sim: Simulator, filename: str) -> None:
    replays = _parse(REC / filename)
    assert replays, filename
    for rep in replays:
        with Conn.to(sim, source=rep.source) as c:
            assert c.banner() is not None
            assert bytes(c.raw) == rep.banner, f"{filename} [{rep.name}] banner"
            recorded_ch = ours_ch = None
            for i, step in enumerate(rep.steps):
                start = len(c.raw)
                c.send(_rewrite_key(step.send, recorded_ch, ours_ch))
                got = _read_exactly(c, start, len(step.expect), step.eof)
                rec = re.search(rb"Challenge: (\d+)", step.expect)
                mine = re.search(rb"Challenge: (\d+)", got)
                if rec and mine:
                    recorded_ch, ours_ch = rec[1].decode(), mine[1].decode()
                where = f"{filename} [{rep.name}] step {i} sent {step.send!r}"
                # lengths differ only by masked fields, so compare masked bytes
                assert _mask(got) == _mask(step.expect), where
                assert c.eof == step.eof, f"{where}: EOF expected={step.eof}"


def test_ucm_guide_differs_empty_permit_list_denies(sim: Simulator) -> None:
    """Stock Asterisk lets a user without permit/deny in from anywhere; the UCM denies."""
    with Conn.to(sim) as c:
        c.banner()
        c.send(b"Action: Login\r\nActionID: e\r\nUsername: nopermit01\r\nSecret: Passw0rd!\r\n\r\n")
        assert c.closed(3)
        assert c.raw.endswith(b"Response: Error\r\nActionID: e\r\nMessage: Authentication failed"
                              b"\r\n\r\n")
