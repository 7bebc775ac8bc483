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
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: The kit: beside the checkout, or where AMICHECK_REFASTERISK says (e.g. from a worktree).
KIT = Path(
    os.environ.get("AMICHECK_REFASTERISK")
    or ROOT.parent / "shared" / "asterisk" / "refasterisk"
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


def start(version: str) -> Instance:
    """Start (or reuse) reference Asterisk ``version``; skip when the kit can't serve it."""
    if not KIT.exists():
        pytest.skip(f"reference Asterisk kit not present ({KIT})")
    status = _run("status", timeout=30).stdout
    for line in status.splitlines():
        if line.startswith(f"asterisk {version} ") and (
            " not-built" in line or " outdated" in line
        ):
            pytest.skip(f"reference Asterisk {version} not built: run {KIT} build all")
    if f"asterisk {version} running" not in status:
        # ours to stop at the end of the run; one that was already running is left alone
        with _ledger().open("a", encoding="utf-8") as f:
            f.write(version + "\n")
    r = _run("start", version, timeout=90)
    assert r.returncode == 0, f"refasterisk start {version} failed: {r.stderr.strip()}"
    ready = dict(kv.split("=", 1) for kv in shlex.split(r.stdout.strip().splitlines()[-1])[3:])
    return Instance(
        version=version,
        port=int(ready["port"]),
        tls_port=int(ready["tls_port"]),
        banner=ready["banner"],
        prefix=Path(ready["prefix"]),
    )


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
