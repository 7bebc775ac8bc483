"""The TLS suite (suites/test_tls.py) against the legacy servers of tests/tls_servers.py.

Issue 8 point 4: every TLS requirement fails on at least one endpoint. The weaknesses the
simulator's own OpenSSL cannot serve (SSLv3, RC4, 3DES, Heartbleed, CCS injection, ROBOT,
insecure renegotiation, small DH groups and curves) come from these servers; each run must
fail exactly the requirements listed, with the weakness named in the message.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tls_servers import legacy_server

SUITES = Path(__file__).resolve().parents[1] / "suites"

#: The suite's checks that need only the TLS port (no AMI session, no plain port).
SCAN_TESTS = (
    "test_certificate_validity or test_certificate_strength or test_protocol_versions or "
    "test_cipher_suites or test_ssl_versions or test_heartbleed or test_ccs_injection or "
    "test_robot or test_renegotiation or test_compression or test_key_exchange_groups or "
    "test_end_entity_certificate or test_tls13_offered"
)

#: legacy server -> {requirement ID: text its failure message must contain}.
EXPECTED: dict[str, dict[str, str]] = {
    "gnutls-rc4-3des": {
        "AMI-TLS-005": "TLSv1.0",
        "AMI-TLS-006": "RC4 (",
        "AMI-TLS-013": "client-initiated",
    },
    "gnutls-tls10": {
        "AMI-TLS-005": "TLSv1.1",
        "AMI-TLS-006": "static-RSA",
        "AMI-TLS-013": "client-initiated",
    },
    "gnutls-null-anon": {  # anon DH uses the 1024-bit group; NULL suites drop TLS 1.3
        "AMI-TLS-005": "TLSv1.0",
        "AMI-TLS-006": "NULL (",
        "AMI-TLS-013": "client-initiated",
        "AMI-TLS-015": "DH group of 1024 bits",
        "AMI-TLS-017": "TLS 1.3 is not offered",
    },
    "gnutls-dh1024": {
        "AMI-TLS-005": "TLSv1.0",
        "AMI-TLS-013": "client-initiated",
        "AMI-TLS-015": "DH group of 1024 bits",
        "AMI-TLS-017": "TLS 1.3 is not offered",
    },
    "gnutls-p192": {
        "AMI-TLS-005": "TLSv1.0",
        "AMI-TLS-006": "static-RSA",
        "AMI-TLS-013": "client-initiated",
        "AMI-TLS-015": "secp192r1",
        "AMI-TLS-017": "TLS 1.3 is not offered",
    },
    "gnutls-no-secure-reneg": {
        "AMI-TLS-005": "TLSv1.0",
        "AMI-TLS-006": "static-RSA",
        "AMI-TLS-013": "RFC 5746",
        "AMI-TLS-017": "TLS 1.3 is not offered",
    },
    "gnutls-client-reneg": {"AMI-TLS-006": "static-RSA", "AMI-TLS-013": "client-initiated"},
    "tlslite-ssl3": {
        "AMI-TLS-005": "TLSv1.0",
        "AMI-TLS-006": "3DES (",
        "AMI-TLS-009": "SSLv3",
        "AMI-TLS-017": "TLS 1.3 is not offered",
    },
    "tlslite-rc4": {"AMI-TLS-005": "TLSv1.0", "AMI-TLS-006": "RC4 ("},
    "tlslite-heartbleed": {
        "AMI-TLS-006": "static-RSA",
        "AMI-TLS-010": "CVE-2014-0160",
        "AMI-TLS-017": "TLS 1.3 is not offered",
    },
    "tlslite-ccs-injection": {
        "AMI-TLS-006": "static-RSA",
        "AMI-TLS-011": "CVE-2014-0224",
        "AMI-TLS-017": "TLS 1.3 is not offered",
    },
    "tlslite-robot": {
        "AMI-TLS-006": "static-RSA",
        "AMI-TLS-012": "ROBOT",
        "AMI-TLS-017": "TLS 1.3 is not offered",
    },
}


def _profile(path: Path, tls_port: int) -> Path:
    path.write_text(
        f"""[target]
name = "legacy-tls"
host = "127.0.0.1"

[settings]
port = 7777
tls_enable = true
tls_port = {tls_port}
tls_bind = "127.0.0.1"

[tls]
plaintext_allowed = true
""",
        encoding="utf-8",
    )
    return path


@pytest.mark.parametrize("name", list(EXPECTED))
def test_suite_fails_what_the_server_serves(pytester: pytest.Pytester, name: str) -> None:
    report_dir = pytester.path / "reports"
    with legacy_server(name) as srv:
        profile = _profile(pytester.path / "legacy.toml", srv.port)
        pytester.runpytest_inprocess(
            str(SUITES / "test_tls.py"),
            "-p", "no:cacheprovider",
            "--ami-target", "127.0.0.1:7777",
            "--ami-profile", str(profile),
            "--ami-report-dir", str(report_dir),
            "-k", SCAN_TESTS,
        )  # fmt: skip
    data = json.loads((report_dir / "report.json").read_text(encoding="utf-8"))
    results = {r["requirement"]: r for r in data["results"]}
    failing = {rid for rid, r in results.items() if r["outcome"] in ("fail", "error")}
    expected = EXPECTED[name]
    assert failing == set(expected), {
        rid: (results[rid]["outcome"], results[rid]["message"][:160]) for rid in failing
    }
    for rid, text in expected.items():
        assert results[rid]["outcome"] == "fail", results[rid]
        assert text in results[rid]["message"], (rid, results[rid]["message"])
