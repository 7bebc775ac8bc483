"""Evidence of each test: transcripts on failure, pcaps, redaction, and letting go of clients.

The clients a test opened live in its item's stash only from setup to the end of its
teardown report: once the transcript (failing tests) and the pcap (``--ami-pcap``) are
taken, the plugin drops them, so their received messages are freed with the test instead of
staying reachable through ``session.items`` until the session ends.
"""

from __future__ import annotations

import ctypes
import functools
import re
from collections.abc import Callable, Generator, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from amicheck.plugin.settings import run_state

if TYPE_CHECKING:
    from amicheck.client import AmiClient

__all__ = ["attach_clients", "render_transcript", "redact_report", "write_test_pcap"]

TRANSCRIPT_SECTION = "AMI transcript"  # amicheck.report.collector reads the same title
PCAP_PROPERTY = "ami_pcap"
_clients_key = pytest.StashKey[list["AmiClient"]]()


def attach_clients(item: pytest.Item, clients: list[AmiClient]) -> None:
    """Keep ``clients`` with ``item`` until its teardown report is made."""
    item.stash[_clients_key] = clients


def render_transcript(client: AmiClient) -> str:
    """The redacted exchange of one client as text (``>>>`` sent, ``<<<`` received)."""
    return client.transcript.render()


#: Report section naming the memory caps a client hit (what was dropped).
CAPS_SECTION = "amicheck caps"


def redact_report(report: pytest.TestReport, secrets: Iterable[str]) -> None:
    """Mask ``secrets`` and everything derived from them in what ``report`` writes out.

    The one place reports are redacted: failure text (with ``-l``, the locals too), crash
    lines, captured sections and user properties; the secrets' hex/base64 forms and every
    registered MD5 key are masked as well (:func:`amicheck.redaction.scrub_report`).
    """
    from amicheck.redaction import scrub_report

    scrub_report(report, secrets)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None elsewhere."""
    try:
        libc = ctypes.CDLL(None)
        trim: Callable[[int], int] = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


def _give_back_memory() -> None:
    """Hand the memory a test's clients held back to the system (glibc keeps freed heap
    otherwise, so RSS would only ever grow against a target that streams events)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def _transcript_section(clients: list[AmiClient]) -> str:
    parts = []
    for i, c in enumerate(clients, 1):
        text = render_transcript(c).rstrip()
        if text:
            tls = " (TLS)" if c.stream.is_tls else ""
            parts.append(f"--- connection {i} to {c.peer}{tls} ---\n{text}")
    return "\n".join(parts)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    clients = item.stash.get(_clients_key, None)
    if call.when == "teardown" and clients is not None:
        # the last report of this test: nothing needs its clients any more
        del item.stash[_clients_key]
    if clients is None:
        from amicheck.plugin.ids import is_suite_item

        if not is_suite_item(item):
            return report
    elif clients:
        if report.failed:
            section = _transcript_section(clients)
            if section:
                report.sections.append((TRANSCRIPT_SECTION, section))
        if call.when == "call":
            # a client that hit its memory caps says so: the evidence is then partial
            notes = [f"connection {i}: {c.cap_note}" for i, c in enumerate(clients, 1)
                     if c.cap_note]
            if notes:
                report.sections.append((CAPS_SECTION, "\n".join(notes)))
    if call.when == "teardown" and clients is not None:
        had = bool(clients)
        clients.clear()
        if had:
            _give_back_memory()
    try:
        secrets = run_state(item.config).secrets()
    except Exception:  # noqa: BLE001 - a broken profile is reported elsewhere
        secrets = set()
    redact_report(report, secrets)
    return report


def write_test_pcap(item: pytest.Item, clients: list[AmiClient], report_dir: Path) -> None:
    """Write the test's traffic to ``report_dir/pcap/<nodeid>.pcap``; note it on the item."""
    from amicheck.capture import write_pcap

    frames = [f for c in clients for f in c.transcript.frames]
    if not frames:
        return
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", item.nodeid).strip("_")[:150] or "test"
    path = report_dir / "pcap" / f"{name}.pcap"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_pcap(path, frames, secrets=run_state(item.config).secrets())
    item.user_properties.append((PCAP_PROPERTY, str(path)))
