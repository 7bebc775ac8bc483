"""The reference Asterisk kit (``../shared/asterisk/refasterisk``) as a test resource.

Real stock Asterisk 22.10.1 and 13.38.3 on loopback, built from the tarballs the kit ships.
Tests that need them call :func:`start` and skip with the reason when the kit is absent (a
user's fresh clone) or not built; CI builds it first (``.ci/run``). ``start`` is locked and
idempotent in the kit, so xdist workers share one instance per version.
"""

from __future__ import annotations

import fcntl
import os
import shlex
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: The kit: beside the checkout, or where AMICHECK_REFASTERISK says (e.g. from a worktree).
KIT = Path(
    os.environ.get("AMICHECK_REFASTERISK") or ROOT.parent / "shared" / "asterisk" / "refasterisk"
)
VERSIONS = ("22", "13")


def _ledger() -> Path:
    """Where this test run notes the instances it started (xdist workers share the
    controller's file: their parent process is the controller)."""
    owner = os.getppid() if os.environ.get("PYTEST_XDIST_WORKER") else os.getpid()
    return Path(tempfile.gettempdir()) / f"amicheck-refasterisk-{owner}.started"


#: Thresholds for a shared 2-core CI machine: the integration runs check conformance, not
#: how fast this machine is (AMI-PRF still measures; its limits are the profile's to set).
CI_THRESHOLDS = """
[thresholds]
ping_p50_ms = 20.0
ping_p95_ms = 50.0
ping_p99_ms = 200.0
pipeline_min_per_s = 200
parse_min_mb_per_s = 2
"""


@dataclass(frozen=True)
class Instance:
    """One running reference Asterisk."""

    version: str
    port: int
    tls_port: int
    banner: str
    prefix: Path

    @property
    def cert(self) -> Path:
        return self.prefix / "etc" / "asterisk" / "keys" / "asterisk.crt"

    @property
    def key(self) -> Path:
        return self.prefix / "etc" / "asterisk" / "keys" / "asterisk.key"


def _run(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(KIT), *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def _ephemeral_range() -> tuple[int, int]:
    """The kernel's range for automatic ports (``bind(0)``, a client's source port)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def _candidate_ports(version: str) -> Iterator[tuple[int, int]]:
    """AMI and AMI-over-TLS port pairs for ``version`` outside the ephemeral range.

    The kit's defaults (57777/55039, 57778/55040) lie inside Linux's ephemeral range, where
    any simulator bound to port 0 or any client's source port can take them mid-run (CI
    lost a whole run to ``127.0.0.1:55040 is already in use``). The pairs are the same for
    every xdist worker, so workers that race to start one version ask for the same ports.
    """
    low, high = _ephemeral_range()
    if low > 13000:
        base = low - 12000  # Linux's default range: 20768
    elif high < 64000:
        base = high + 500
    else:  # no room outside the range: free pairs inside it, a lost bind retried
        base = 20768
    offset = VERSIONS.index(version)
    for i in range(8):
        port = base + 100 * i + offset
        yield port, port + 50


def _free(port: int) -> bool:
    s = socket.socket()
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def _running_ports(status: str, version: str) -> tuple[int, int] | None:
    """The ports of a running ``version`` from ``refasterisk status``; (0, 0) while it is
    still starting (the kit writes its ports once both banners answer); None if stopped."""
    for line in status.splitlines():
        if line.startswith(f"asterisk {version} running"):
            kv = dict(w.split("=", 1) for w in line.split() if "=" in w)
            if not (kv.get("port") or "").isdigit() or not (kv.get("tls_port") or "").isdigit():
                return 0, 0
            return int(kv["port"]), int(kv["tls_port"])
    return None


def start(version: str) -> Instance:
    """Start (or reuse) reference Asterisk ``version``; skip when the kit can't serve it.

    A running instance is reused on its own ports. Otherwise the first free pair of
    :func:`_candidate_ports` is asked for, and a start that loses its port to another
    process between the check and Asterisk's bind is retried on the next pair.
    """
    if not KIT.exists():
        pytest.skip(f"reference Asterisk kit not present ({KIT})")
    errors: list[str] = []
    candidates = _candidate_ports(version)
    deadline = time.monotonic() + 120
    attempts = 0
    while attempts < 4 and time.monotonic() < deadline:
        status = _run("status", timeout=30).stdout
        for line in status.splitlines():
            if line.startswith(f"asterisk {version} ") and (
                " not-built" in line or " outdated" in line
            ):
                pytest.skip(f"reference Asterisk {version} not built: run {KIT} build all")
        ports = _running_ports(status, version)
        if ports == (0, 0):  # another worker's start is under way: wait for its ports
            time.sleep(0.5)
            continue
        attempts += 1
        if ports is None:
            ports = next((p for p in candidates if _free(p[0]) and _free(p[1])), None)
            if ports is None:
                break
            # ours to stop at the end of the run; one that was already running is left alone
            with _ledger().open("a", encoding="utf-8") as f:
                f.write(version + "\n")
        r = _run("start", version, "--port", str(ports[0]), "--tls-port", str(ports[1]), timeout=90)
        if r.returncode == 0:
            ready = dict(
                kv.split("=", 1) for kv in shlex.split(r.stdout.strip().splitlines()[-1])[3:]
            )
            return Instance(
                version=version,
                port=int(ready["port"]),
                tls_port=int(ready["tls_port"]),
                banner=ready["banner"],
                prefix=Path(ready["prefix"]),
            )
        errors.append(r.stderr.strip())
        if not any(m in errors[-1] for m in ("in use", "already running", "Unable to bind")):
            break
    detail = "\n".join(errors) or (
        "no free port pair outside the ephemeral range"
        if attempts
        else "it stayed 'running' with no ports (a start that never finished) for 120 s"
    )
    raise AssertionError(f"refasterisk start {version} failed: {detail}")


@contextmanager
def exclusive(version: str) -> Iterator[None]:
    """Hold reference Asterisk ``version`` for one user of the whole test run at a time.

    A whole-catalogue run fills the server's unauthenticated-session limit (AMI-AUTH-006)
    and holds connections for its 30 s auth timeout, so a fidelity script or another run
    beside it on the same server would be refused: the xdist workers take turns.
    """
    lock = Path(tempfile.gettempdir()) / f"amicheck-refasterisk-{version}.lock"
    with lock.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def users_toml() -> str:
    """The kit's AMI users as ``[[users]]`` profile entries (secrets included: test values)."""
    r = _run("users", timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout


def write_profile(inst: Instance, path: Path) -> Path:
    """A profile describing ``inst`` as the kit configures it (see the kit's manager.conf)."""
    path.write_text(
        f"""[target]
name = "asterisk-{inst.version}"
host = "127.0.0.1"

[settings]
port = {inst.port}
tls_enable = true
tls_port = {inst.tls_port}
tls_bind = "127.0.0.1"
write_timeout_ms = 100
timestamp_events = false
auth_timeout_s = 30
auth_limit = 50
banner = "{inst.banner}"

[tls]
cert = "{inst.cert}"
key = "{inst.key}"
{CI_THRESHOLDS}
{users_toml()}""",
        encoding="utf-8",
    )
    return path


def stop_started() -> None:
    """Stop the instances this test run started (end of the run, controller only)."""
    ledger = _ledger()
    try:
        versions = set(ledger.read_text(encoding="utf-8").split())
    except FileNotFoundError:
        return
    for version in sorted(versions & set(VERSIONS)):
        _run("stop", version, timeout=60)
    ledger.unlink(missing_ok=True)
