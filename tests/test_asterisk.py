"""The whole suite catalogue against real stock Asterisk 22 and 13: zero false alarms.

Each requirement that fails on a reference server must be a real, explained deviation of
stock Asterisk (as the kit configures it) from the UCM rules; the explanation sits next to
the expectation. A new failure here is either a harness bug to fix or a newly understood
deviation to document; an error (a check that could not run) is always a harness bug.

Needs the reference Asterisk kit (``../shared/asterisk``); skips with the reason where it
is absent or not built (``refasterisk build all``; ``.ci/run`` does it).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import refasterisk

pytestmark = pytest.mark.asterisk

#: Deviations both versions share, with why each is real.
_COMMON: dict[str, str] = {
    "AMI-CFG-003": (
        "the kit grants system, command, config, log, verbose, agi, aoc, test and message "
        "(priv_system0, …), which stock Asterisk offers and a UCM does not"
    ),
    "AMI-CFG-004": (
        "nopermit01 has no permit line (deny 0.0.0.0/0 only): a UCM user needs at least one "
        "Permitted IP entry"
    ),
    "AMI-PRV-004": (
        "stock BridgeKick/BridgeDestroy/BridgeList register with no privilege "
        "(main/manager_bridges.c: Priv: <none>); a compliant UCM requires call"
    ),
    "AMI-TLS-006": (
        "the default tlscipher list (OpenSSL DEFAULT) accepts static-RSA key exchange "
        "(AES256-GCM-SHA384, no forward secrecy)"
    ),
    "AMI-TLS-016": (
        "the kit's asterisk.crt is self-signed with CA:TRUE: a client that verifies "
        "certificates refuses it as a server certificate (upload a CA-signed leaf)"
    ),
}

#: requirement ID -> why stock Asterisk NN really fails it.
EXPECTED: dict[str, dict[str, str]] = {
    "22": {
        **_COMMON,
        "AMI-FRM-009": (
            "over TLS Asterisk 22 reads 1 KB per wake-up: of 100 pipelined Pings about a "
            "third are answered, the rest only after the client's next write (the TLS stall)"
        ),
    },
    "13": {
        **_COMMON,
        "AMI-FRM-009": (
            "Asterisk 13 on OpenSSL 3 drops a TLS connection that pipelines a burst of "
            "actions (the TLS drop)"
        ),
    },
}


def _outcomes(report: Path) -> tuple[dict[str, str], dict[str, str]]:
    data = json.loads(report.read_text(encoding="utf-8"))
    outcomes = {r["requirement"]: r["outcome"] for r in data["results"]}
    messages = {r["requirement"]: r["message"] for r in data["results"]}
    return outcomes, messages


@pytest.mark.parametrize("version", refasterisk.VERSIONS)
def test_suites_against_real_asterisk(version: str, tmp_path: Path) -> None:
    """Every suite check runs; exactly the explained deviations fail; nothing errors."""
    inst = refasterisk.start(version)
    profile = refasterisk.write_profile(inst, tmp_path / f"asterisk-{version}.toml")
    out = tmp_path / "reports"
    with refasterisk.exclusive(version):  # a whole run fills the auth limit: take turns
        proc = subprocess.run(
            [
                sys.executable, "-m", "amicheck", "run",
                "--target", f"127.0.0.1:{inst.port}",
                "--profile", str(profile),
                "--outside-source", "127.0.0.2",
                "--allow-bruteforce",  # the kit is ours, on loopback: exercise AMI-AUTH-007 too
                "--report-dir", str(out),
            ],
            capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
    report = out / "report.json"
    assert report.exists(), f"no report.json; exit {proc.returncode}\n{proc.stderr[-3000:]}"
    outcomes, messages = _outcomes(report)
    errors = {rid: messages[rid] for rid, o in outcomes.items() if o == "error"}
    assert not errors, f"checks that could not run against Asterisk {version}: {errors}"
    failed = {rid for rid, o in outcomes.items() if o == "fail"}
    expected = set(EXPECTED[version])
    unexplained = {rid: messages[rid] for rid in failed - expected}
    assert not unexplained, f"unexplained failures on Asterisk {version}: {unexplained}"
    assert not expected - failed, (
        f"expected deviations of Asterisk {version} no longer found: "
        f"{sorted(expected - failed)} (a check lost its teeth, or the kit changed)"
    )
    skipped = {rid for rid, o in outcomes.items() if o == "skip"}
    assert not skipped, f"checks skipped against Asterisk {version}: {sorted(skipped)}"
    assert proc.returncode == 1, proc.stdout[-2000:]
