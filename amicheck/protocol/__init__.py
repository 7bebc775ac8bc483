"""The AMI codec, sans-I/O: messages, the incremental parsers, the encoder, the session and
the events it hands back (:mod:`amicheck.protocol.events`).

Nothing here imports socket, ssl, asyncio, time or scapy: the same code serves the client,
the simulator, the pcap reader and the benchmarks.
"""

from __future__ import annotations

from amicheck.protocol.encoder import encode
from amicheck.protocol.message import Message, MessageKind, Violation
from amicheck.protocol.parser import Parser
from amicheck.protocol.request import Request, RequestParser
from amicheck.protocol.session import ClientSession

__all__ = [
    "Message",
    "MessageKind",
    "Violation",
    "Parser",
    "Request",
    "RequestParser",
    "ClientSession",
    "encode",
]
