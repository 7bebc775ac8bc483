"""amicheck's TLS verdicts against sslyze's own, on every TLS endpoint the tests can set up.

For each endpoint (the simulator with and without each TLS fault, the legacy servers of
tests/tls_servers.py, a port that speaks no TLS, the reference Asterisk 22 and 13) one
sslyze run gives both amicheck's :class:`ScanResult` and sslyze's raw result. sslyze's
verdict is its Mozilla-profile checker ("intermediate", the profile for servers not serving
browsers from before 2014) plus its raw findings. Issue 8: every weakness sslyze reports is
failed by amicheck with the weakness named, and amicheck fails nothing sslyze does not
support.

Where the two disagree by design, :data:`NOT_COMPARED` says why (web-PKI rules, CBC suites,
curves outside Mozilla's short list that are not weak).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

import pytest
from tls_servers import LEGACY, legacy_server, scanned_legacy, scanned_sim

from amicheck.profile import default_profile
from amicheck.sim import Simulator
from amicheck.tls import checks
from amicheck.tls.certificate import cert_report
from amicheck.tls.checks import Outcome
from amicheck.tls.model import WEAK_CLASSES, ScanResult, classify
from amicheck.tls.scan import scan_with_sslyze_result

HOST = "127.0.0.1"

#: Mozilla-profile issue keys amicheck does not compare, and why.
NOT_COMPARED = {
    "certificate_path_validation": "web PKI: a UCM certificate is not from a public CA",
    "maximum_certificate_lifespan": "web PKI (398/366-day rule): not an AMI requirement",
    "certificate_curves": "web PKI curve list; key strength is AMI-TLS-003",
    "certificate_types": "web PKI key types; key strength is AMI-TLS-003",
    "tls_vulnerability_fallback_scsv": "downgrade protection: no AMI requirement yet",
    "tls_vulnerability_extended_master_secret": "RFC 7627: no AMI requirement yet",
    "ciphersuites": "TLS 1.3 suites are all AEAD with forward secrecy",
}

#: Simulator fault profiles with a TLS effect (None: compliant).
SIM_FAULTS = (
    None,
    "expired-cert",
    "weak-cert-key",
    "cert-mismatch",
    "tls-legacy",
    "tls-weak-ciphers",
    "plaintext-on-tls-port",
    "tls-weak-dh",
    "tls-no-tls13",
    "tls-ca-leaf",
    "tls-no-san",
)


def _sim(fault: str | None) -> Callable[[], Generator[tuple[int, str], None, None]]:
    def run() -> Generator[tuple[int, str], None, None]:
        faults = (fault,) if fault else ()
        with Simulator(default_profile(), faults=faults, host=HOST, port=0, tls_port=0) as sim:
            assert sim.tls_port is not None
            yield sim.tls_port, HOST

    return run


def _legacy(name: str) -> Callable[[], Generator[tuple[int, str], None, None]]:
    def run() -> Generator[tuple[int, str], None, None]:
        with legacy_server(name) as srv:
            yield srv.port, HOST

    return run


def _asterisk(version: str) -> Callable[[], Generator[tuple[int, str], None, None]]:
    def run() -> Generator[tuple[int, str], None, None]:
        import refasterisk  # skips the test where the kit is absent or not built

        yield refasterisk.start(version).tls_port, HOST

    return run


ENDPOINTS: dict[str, Callable[[], Generator[tuple[int, str], None, None]]] = {
    **{f"sim:{f or 'compliant'}": _sim(f) for f in SIM_FAULTS},
    **{name: _legacy(name) for name in LEGACY},
    "asterisk:22": _asterisk("22"),
    "asterisk:13": _asterisk("13"),
}


def _mozilla_issues(raw: Any) -> dict[str, str]:
    from sslyze.mozilla_tls_profile.tls_config_checker import (
        MozillaTlsConfiguration,
        ServerNotCompliantWithTlsConfiguration,
        TlsConfigurationEnum,
        check_server_against_tls_configuration,
    )

    config = MozillaTlsConfiguration.get(TlsConfigurationEnum.MOZILLA_INTERMEDIATE)
    try:
        check_server_against_tls_configuration(raw, config)
    except ServerNotCompliantWithTlsConfiguration as exc:
        return dict(exc.issues)
    return {}


def _sslyze_accepted(raw: Any) -> dict[str, set[str]]:
    """sslyze's own view: version name -> accepted IANA suite names."""
    out: dict[str, set[str]] = {}
    for field, name in [
        ("ssl_2_0_cipher_suites", "SSLv2"),
        ("ssl_3_0_cipher_suites", "SSLv3"),
        ("tls_1_0_cipher_suites", "TLSv1.0"),
        ("tls_1_1_cipher_suites", "TLSv1.1"),
        ("tls_1_2_cipher_suites", "TLSv1.2"),
        ("tls_1_3_cipher_suites", "TLSv1.3"),
    ]:
        res = getattr(raw.scan_result, field).result
        if res is not None and res.accepted_cipher_suites:
            out[name] = {a.cipher_suite.name for a in res.accepted_cipher_suites}
    return out


def _no_tls_by_sslyze(port: int, sni: str) -> str:
    """sslyze's connectivity test alone (amicheck's preflight skipped): why it fails."""
    from sslyze.errors import ConnectionToServerFailed
    from sslyze.server_connectivity import check_connectivity_to_server
    from sslyze.server_setting import ServerNetworkConfiguration, ServerNetworkLocation

    try:
        check_connectivity_to_server(
            ServerNetworkLocation(HOST, port, ip_address=HOST),
            ServerNetworkConfiguration(sni, network_timeout=2, network_max_retries=1),
        )
    except ConnectionToServerFailed as exc:
        return type(exc).__name__
    return ""


def _compare(r: ScanResult, raw: Any) -> list[str]:
    """Every disagreement between amicheck's verdicts and sslyze's, as sentences."""
    bad: list[str] = []
    issues = _mozilla_issues(raw)
    verdicts = {name: check(r) for name, check in checks.LIVE_CHECKS.items()}
    failed = {name for name, v in verdicts.items() if v.outcome is Outcome.FAIL}
    errors = {name: v.message for name, v in verdicts.items() if v.outcome is Outcome.ERROR}
    accepted = _sslyze_accepted(raw)

    # versions: sslyze's accepted set is amicheck's; the prohibited ones fail, named
    assert {v.value for v in r.accepted_versions()} == set(accepted), "version sets differ"
    mozilla_bad_versions = set(accepted) - {"TLSv1.2", "TLSv1.3"}
    for version in mozilla_bad_versions:
        check = "ssl-versions" if version.startswith("SSL") else "legacy-versions"
        if check not in failed or version not in verdicts[check].message:
            bad.append(f"sslyze: {version} accepted; amicheck {check}: {verdicts[check]}")
    if ("legacy-versions" in failed or "ssl-versions" in failed) != ("tls_versions" in issues):
        bad.append(f"tls_versions: sslyze {issues.get('tls_versions')!r} vs {failed}")

    # suites: every suite amicheck calls weak is one Mozilla rejects; every suite Mozilla
    # rejects that has a weak class is failed with that class named
    all_suites = {s for v, names in accepted.items() if v != "TLSv1.3" for s in names}
    from sslyze.mozilla_tls_profile.tls_config_checker import (
        MozillaTlsConfiguration,
        TlsConfigurationEnum,
    )

    allowed = MozillaTlsConfiguration.get(TlsConfigurationEnum.MOZILLA_INTERMEDIATE).ciphers.iana
    rejected = all_suites - set(allowed)
    ours = {n for names in r.weak_classes().values() for n in names}
    if ours - rejected:
        bad.append(f"amicheck calls weak what Mozilla allows: {sorted(ours - rejected)}")
    for suite in rejected:
        classes = classify(suite) & set(WEAK_CLASSES)
        for cls in classes:
            msg = verdicts["weak-ciphers"].message
            if f"{cls} (" not in msg:
                bad.append(f"sslyze/Mozilla reject {suite} ({cls}); amicheck: {msg}")

    # vulnerabilities: sslyze's booleans, one to one
    sr = raw.scan_result
    pairs = [
        ("heartbleed", sr.heartbleed.result.is_vulnerable_to_heartbleed),
        ("ccs-injection", sr.openssl_ccs_injection.result.is_vulnerable_to_ccs_injection),
        ("robot", str(sr.robot.result.robot_result.value).startswith("VULNERABLE")),
        ("compression", sr.tls_compression.result.supports_compression),
        (
            "renegotiation",
            not sr.session_renegotiation.result.supports_secure_renegotiation
            or sr.session_renegotiation.result.is_vulnerable_to_client_renegotiation_dos,
        ),
    ]
    for name, sslyze_says in pairs:
        if bool(sslyze_says) != (name in failed):
            bad.append(f"{name}: sslyze vulnerable={sslyze_says}, amicheck {verdicts[name]}")
    if "tls_vulnerability_renegotiation" in issues and "RFC 5746" not in str(
        verdicts["renegotiation"].message
    ):
        bad.append("insecure renegotiation not named")

    # key exchange: Mozilla's DH/ECDH sizes and weak curves
    kx_msg = verdicts["key-exchange"].message
    if "dh_param_size" in issues and "DH group" not in kx_msg:
        bad.append(f"dh_param_size: {issues['dh_param_size']}; amicheck: {kx_msg}")
    curves_rejected = {c for c in issues.get("tls_curves", "").split("'")[1::2]}
    weak_curves = {c.name for c in r.curves if c.weak}
    if weak_curves - curves_rejected:
        bad.append(f"amicheck calls weak curves Mozilla accepts: {weak_curves - curves_rejected}")
    for c in weak_curves:
        if c not in kx_msg:
            bad.append(f"weak curve {c} not named: {kx_msg}")
    if "key-exchange" in failed and not (
        weak_curves or "dh_param_size" in issues or "ecdh_param_size" in issues
    ):
        bad.append(f"amicheck fails key exchange, sslyze does not: {kx_msg}")

    # certificate strength: Mozilla's RSA key size / signature vs AMI-TLS-003's codes
    if r.leaf is not None:
        codes = cert_report(r.leaf).codes
        if ("rsa_key_size" in issues) != ("weak-key" in codes):
            bad.append(f"rsa_key_size: sslyze {issues.get('rsa_key_size')!r}, amicheck {codes}")
        if "weak-signature" in codes and "certificate_signatures" not in issues:
            bad.append("amicheck calls the signature weak, sslyze does not")

    # nothing may be left untested on an endpoint sslyze scanned completely
    if errors:
        bad.append(f"amicheck could not judge: {errors}")
    unknown = (
        set(issues)
        - set(NOT_COMPARED)
        - {
            "tls_versions",
            "ciphers",
            "tls_curves",
            "dh_param_size",
            "ecdh_param_size",
            "rsa_key_size",
            "certificate_signatures",
            "tls_vulnerability_heartbleed",
            "tls_vulnerability_ccs_injection",
            "tls_vulnerability_robot",
            "tls_vulnerability_compression",
            "tls_vulnerability_renegotiation",
        }
    )
    if unknown:
        bad.append(f"sslyze issues this test does not map: {sorted(unknown)}")
    return bad


@pytest.mark.parametrize(
    "endpoint",
    [
        pytest.param(e, marks=pytest.mark.asterisk) if e.startswith("asterisk:") else e
        for e in ENDPOINTS
    ],
)
def test_amicheck_agrees_with_sslyze(endpoint: str) -> None:
    if endpoint.startswith("sim:"):
        fault = endpoint[4:]
        r, raw, _ = scanned_sim(None if fault == "compliant" else fault)
    elif endpoint in LEGACY:
        r, raw = scanned_legacy(endpoint)
    else:
        gen = ENDPOINTS[endpoint]()
        port, sni = next(gen)
        try:
            r, raw = scan_with_sslyze_result(HOST, port, server_name=sni, timeout=5.0)
        finally:
            gen.close()
    if raw is None:
        # amicheck stopped at its preflight; sslyze alone must not find TLS there either
        gen = ENDPOINTS[endpoint]()
        port, sni = next(gen)
        try:
            why = _no_tls_by_sslyze(port, sni)
        finally:
            gen.close()
        assert why, f"sslyze completes a handshake where amicheck says: {r.reason}"
        assert checks.handshake(r).outcome is not Outcome.PASS
        for name, check in checks.LIVE_CHECKS.items():
            assert check(r).outcome is Outcome.ERROR, name
        return
    assert raw.scan_result is not None
    problems = _compare(r, raw)
    assert not problems, f"{endpoint}:\n" + "\n".join(problems)
