"""Loader for the recorded real-Asterisk AMI traffic in tests/data/conformance/.

The recordings (copied from the team's shared/conformance/, see its README.md) have one
line per event: ``[t=  0.000] [c1] <<< b'...'`` where ``>>>`` is what the client sent,
``<<<`` one recv() chunk from the server, ``***`` connection events, ``---`` comments.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

CONFORMANCE_DIR = Path(__file__).parent / "data" / "conformance"

_LINE = re.compile(
    r"^\[t=\s*(?P<t>[\d.]+)\] \[(?P<conn>[^\]]+)\] (?P<dir>>>>|<<<|\*\*\*|---) ?(?P<rest>.*)$"
)


@dataclass
class Frame:
    t: float
    direction: str  # ">>>", "<<<", "***", "---"
    data: bytes = b""
    note: str = ""


@dataclass
class Connection:
    name: str
    frames: list[Frame] = field(default_factory=list)

    @property
    def received(self) -> bytes:
        return b"".join(f.data for f in self.frames if f.direction == "<<<")

    @property
    def sent(self) -> bytes:
        return b"".join(f.data for f in self.frames if f.direction == ">>>")

    def chunks(self, direction: str) -> list[bytes]:
        return [f.data for f in self.frames if f.direction == direction]


def load(path: Path) -> dict[str, Connection]:
    """Connections of one recording, in order of first appearance."""
    conns: dict[str, Connection] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        m = _LINE.match(raw)
        if not m:
            continue
        conn = conns.setdefault(m["conn"], Connection(m["conn"]))
        rest = m["rest"]
        if m["dir"] in (">>>", "<<<"):
            conn.frames.append(Frame(float(m["t"]), m["dir"], ast.literal_eval(rest)))
        else:
            conn.frames.append(Frame(float(m["t"]), m["dir"], note=rest))
    return conns


def recordings(version: str = "asterisk-13") -> list[Path]:
    return sorted((CONFORMANCE_DIR / version).glob("*.txt"))
