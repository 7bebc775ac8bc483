"""Scan one TLS endpoint with sslyze and return :class:`~amicheck.tls.model.ScanResult`.

sslyze's nassl ships a legacy OpenSSL next to the modern one, so SSL 2.0/3.0, EXPORT, RC4,
DES and 3DES are really offered: nothing is "not testable". sslyze runs its probes on a few
concurrent connections (``concurrency``); on this project's simulator a full scan takes about
a second. Before sslyze runs, one plain TCP connection checks that something listens and that
it does not speak first (a TLS server never does: a banner means plaintext on a TLS port), so
a port without TLS is a quick, explicit ``no handshake`` rather than a retry loop.

Every wait has a deadline: sslyze's own network timeout per connection, and ``deadline`` for
the whole scan (an overrun is an ``error`` result, the worker thread is left to finish).
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import threading
import time
import warnings
from pathlib import Path
from traceback import TracebackException
from typing import Any

from amicheck.tls.model import (
    AcceptedSuite,
    Curve,
    KeyExchange,
    Probe,
    ScanResult,
    ScanStatus,
    TlsVersion,
    VersionScan,
    classify,
    curve_bits,
)

__all__ = ["scan", "preflight", "SPEAK_FIRST_WAIT"]

#: How long the preflight connection listens for a server that speaks first (plaintext AMI
#: sends its banner at once).
SPEAK_FIRST_WAIT = 0.3

_VERSION_COMMANDS = {
    TlsVersion.SSL2_0: "ssl_2_0_cipher_suites",
    TlsVersion.SSL3_0: "ssl_3_0_cipher_suites",
    TlsVersion.TLS1_0: "tls_1_0_cipher_suites",
    TlsVersion.TLS1_1: "tls_1_1_cipher_suites",
    TlsVersion.TLS1_2: "tls_1_2_cipher_suites",
    TlsVersion.TLS1_3: "tls_1_3_cipher_suites",
}
_OTHER_COMMANDS = (
    "certificate_info",
    "tls_compression",
    "openssl_ccs_injection",
    "tls_fallback_scsv",
    "heartbleed",
    "robot",
    "session_renegotiation",
    "elliptic_curves",
    "tls_extended_master_secret",
)
#: sslyze connectivity failures that mean "something answered, no TLS handshake completed".
#: First byte of a TLS record a server answers a ClientHello with: handshake, alert (and
#: the SSLv2 record-length high bit, which a legacy SSLv2-only server may send).
_TLS_RECORD_TYPES = frozenset({0x15, 0x16}) | frozenset(range(0x80, 0x100))
_NO_HANDSHAKE_ERRORS = frozenset(
    {"ServerTlsConfigurationNotSupported", "ServerRejectedTlsHandshake", "TlsHandshakeTimedOut"}
)


def _client_hello(server_name: str | None) -> bytes:
    """The bytes of a stdlib TLS ClientHello (TLS 1.2-1.3), made in memory."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=server_name)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def preflight(
    host: str, port: int, timeout: float, server_name: str | None = None
) -> tuple[ScanStatus, str] | None:
    """One TCP connection and one ClientHello: None if the answer looks like TLS.

    ``ERROR`` when nothing can be reached (refused, unreachable, connect timeout);
    ``NO_HANDSHAKE`` when the server speaks first (plaintext AMI sends its banner), answers
    the ClientHello with bytes that are not a TLS record, or stays silent for ``timeout``.
    A close or reset after the ClientHello is left to sslyze (an old server may refuse this
    hello and accept another version's).
    """
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except ConnectionRefusedError:
        return ScanStatus.ERROR, f"connection refused: nothing listens on {host}:{port}"
    except OSError as exc:
        return ScanStatus.ERROR, f"cannot connect to {host}:{port}: {exc.strerror or exc}"
    try:
        sock.settimeout(SPEAK_FIRST_WAIT)
        try:
            data = sock.recv(64)
        except TimeoutError:
            data = None  # quiet, as a TLS server waiting for a ClientHello is
        except OSError as exc:
            return ScanStatus.NO_HANDSHAKE, f"{host}:{port} reset the connection: {exc}"
        if data == b"":
            return ScanStatus.NO_HANDSHAKE, f"{host}:{port} closed the connection at once"
        if data is not None:
            return (
                ScanStatus.NO_HANDSHAKE,
                f"{host}:{port} speaks first ({_first_line(data)!r}) instead of waiting for a "
                "TLS ClientHello: it does not speak TLS",
            )
        sock.settimeout(timeout)
        try:
            sock.sendall(_client_hello(server_name))
            answer = sock.recv(5)
        except TimeoutError:
            return (
                ScanStatus.NO_HANDSHAKE,
                f"{host}:{port} did not answer a TLS ClientHello within {timeout:g} s",
            )
        except OSError:
            return None
        if answer and answer[0] not in _TLS_RECORD_TYPES:
            return (
                ScanStatus.NO_HANDSHAKE,
                f"{host}:{port} answered a TLS ClientHello with {_first_line(answer)!r}: "
                "it does not speak TLS",
            )
        return None
    finally:
        sock.close()


def _first_line(data: bytes) -> str:
    return data.split(b"\n", 1)[0].strip().decode("latin-1", "replace")[:60]


def _trace_text(trace: TracebackException | None) -> tuple[str, str]:
    """(exception class name, one-line message) of an sslyze error trace."""
    if trace is None:
        return "", "unknown error"
    name = getattr(trace, "exc_type_str", None) or getattr(trace.exc_type, "__name__", "")
    text = "".join(trace.format_exception_only()).strip().splitlines()
    return str(name).rsplit(".", 1)[-1], text[-1] if text else str(name)


def _attempt(scan_result: Any, command: str) -> tuple[Any, str]:
    """(result, "") of one sslyze scan command, or (None, why it failed)."""
    attempt = getattr(scan_result, command)
    if attempt.result is not None:
        return attempt.result, ""
    _, text = _trace_text(attempt.error_trace)
    reason = (
        attempt.error_reason.value if attempt.error_reason is not None else attempt.status.value
    )
    return None, f"{command}: {reason}: {text}"


def _key_exchange(key: Any) -> KeyExchange | None:
    if key is None:
        return None
    curve = getattr(key, "curve_name", None)
    return KeyExchange(str(key.type_name), int(key.size), str(curve) if curve else None)


def _versions(res: Any, errors: list[str]) -> tuple[VersionScan, ...]:
    out: list[VersionScan] = []
    for version, command in _VERSION_COMMANDS.items():
        result, err = _attempt(res, command)
        if result is None:
            errors.append(err)
            out.append(VersionScan(version, None, error=err))
            continue
        suites = tuple(
            AcceptedSuite(
                version=version,
                name=a.cipher_suite.name,
                openssl_name=a.cipher_suite.openssl_name,
                key_bits=a.cipher_suite.key_size,
                classes=classify(a.cipher_suite.name, anonymous=a.cipher_suite.is_anonymous),
                key_exchange=_key_exchange(a.ephemeral_key),
            )
            for a in result.accepted_cipher_suites
        )
        out.append(VersionScan(version, bool(suites), suites))
    return tuple(out)


def _probe(res: Any, command: str, errors: list[str], read: Any) -> Probe:
    result, err = _attempt(res, command)
    if result is None:
        errors.append(err)
        return Probe(None, error=err)
    value, detail = read(result)
    return Probe(value, detail)


def _robot(r: Any) -> tuple[bool | None, str]:
    verdict = str(r.robot_result.value)
    if verdict.startswith("VULNERABLE"):
        return True, verdict
    if verdict.startswith("NOT_VULNERABLE"):
        return False, verdict
    return None, verdict  # UNKNOWN_INCONSISTENT_RESULTS: no verdict


def _from_sslyze(
    host: str, port: int, server_name: str, server_result: Any, elapsed: float, engine: str
) -> ScanResult:
    base: dict[str, Any] = dict(
        host=host, port=port, server_name=server_name, elapsed=elapsed, engine=engine
    )
    if server_result.scan_result is None:
        name, text = _trace_text(server_result.connectivity_error_trace)
        status = ScanStatus.NO_HANDSHAKE if name in _NO_HANDSHAKE_ERRORS else ScanStatus.ERROR
        return ScanResult(status=status, reason=f"{name}: {text}" if name else text, **base)
    res = server_result.scan_result
    errors: list[str] = []
    versions = _versions(res, errors)
    cert, cert_err = _attempt(res, "certificate_info")
    chain: tuple[Any, ...] = ()
    if cert is not None and cert.certificate_deployments:
        chain = tuple(cert.certificate_deployments[0].received_certificate_chain)
    elif cert is not None:
        cert_err = "certificate_info: no certificate deployment received"
    if cert_err:
        errors.append(cert_err)
    curves_res, curves_err = _attempt(res, "elliptic_curves")
    curves: tuple[Curve, ...] = ()
    if curves_res is not None:
        curves = tuple(Curve(c.name, curve_bits(c.name)) for c in curves_res.supported_curves or ())
    else:
        errors.append(curves_err)
    heartbleed = _probe(
        res, "heartbleed", errors, lambda r: (r.is_vulnerable_to_heartbleed, "CVE-2014-0160")
    )
    ccs = _probe(
        res,
        "openssl_ccs_injection",
        errors,
        lambda r: (r.is_vulnerable_to_ccs_injection, "CVE-2014-0224"),
    )
    robot = _probe(res, "robot", errors, _robot)
    secure_reneg = _probe(
        res, "session_renegotiation", [], lambda r: (r.supports_secure_renegotiation, "RFC 5746")
    )
    client_reneg = _probe(
        res,
        "session_renegotiation",
        errors,
        lambda r: (
            r.is_vulnerable_to_client_renegotiation_dos,
            f"{r.client_renegotiations_success_count} client renegotiations accepted",
        ),
    )
    compression = _probe(
        res, "tls_compression", errors, lambda r: (r.supports_compression, "CRIME")
    )
    scsv = _probe(
        res, "tls_fallback_scsv", errors, lambda r: (r.supports_fallback_scsv, "RFC 7507")
    )
    ems = _probe(
        res,
        "tls_extended_master_secret",
        errors,
        lambda r: (r.supports_ems_extension, "RFC 7627"),
    )
    return ScanResult(
        status=ScanStatus.COMPLETED,
        versions=versions,
        chain=chain,
        chain_error=cert_err,
        heartbleed=heartbleed,
        ccs_injection=ccs,
        robot=robot,
        secure_renegotiation=secure_reneg,
        client_renegotiation=client_reneg,
        compression=compression,
        fallback_scsv=scsv,
        extended_master_secret=ems,
        curves=curves,
        curves_error=curves_err,
        errors=tuple(errors),
        **base,
    )


def _quiet_sslyze_warnings() -> None:
    # sslyze parses its bundled trust stores on each certificate_info run; one root has a
    # negative serial number, which cryptography 46 warns about. Not ours, not actionable.
    from cryptography.utils import CryptographyDeprecationWarning

    warnings.filterwarnings(
        "ignore",
        message="Parsed a serial number which wasn't positive",
        category=CryptographyDeprecationWarning,
    )


def scan(
    host: str,
    port: int,
    *,
    server_name: str | None = None,
    timeout: float = 5.0,
    deadline: float = 60.0,
    concurrency: int = 5,
    ca_file: Path | None = None,
) -> ScanResult:
    """Scan ``host:port``: versions SSLv2..TLS 1.3, suites, chain, vulnerabilities, curves.

    Args:
        server_name: SNI to send and the name the chain is validated for (default: ``host``,
            as sslyze does; an IP literal in SNI is against RFC 6066 and a strict server
            may refuse it, so pass the name the profile uses for the target).
        timeout: per-connection network timeout (sslyze rounds it up to whole seconds).
        deadline: the whole scan; past it the result is ``ERROR`` ("scan exceeded ...").
        concurrency: connections sslyze opens at once to this server.
        ca_file: a PEM CA file sslyze validates the chain against (besides its own stores).
    """
    result, _ = scan_with_sslyze_result(
        host,
        port,
        server_name=server_name,
        timeout=timeout,
        deadline=deadline,
        concurrency=concurrency,
        ca_file=ca_file,
    )
    return result


def scan_with_sslyze_result(
    host: str,
    port: int,
    *,
    server_name: str | None = None,
    timeout: float = 5.0,
    deadline: float = 60.0,
    concurrency: int = 5,
    ca_file: Path | None = None,
) -> tuple[ScanResult, Any]:
    """:func:`scan`, and sslyze's own ``ServerScanResult`` (None if sslyze did not run).

    For comparing amicheck's verdicts with sslyze's (its Mozilla-profile checker).
    """
    t0 = time.monotonic()
    sni = server_name or host
    early = preflight(host, port, timeout, None if _ip_or_none(sni) else sni)
    if early is not None:
        status, reason = early
        return (
            ScanResult(host, port, sni, status, reason, time.monotonic() - t0, engine=_engine()),
            None,
        )
    try:
        from sslyze.plugins.certificate_info.implementation import CertificateInfoExtraArgument
        from sslyze.plugins.scan_commands import ScanCommand
        from sslyze.scanner.models import ScanCommandsExtraArguments, ServerScanRequest
        from sslyze.scanner.scanner import Scanner
        from sslyze.server_setting import ServerNetworkConfiguration, ServerNetworkLocation
    except ImportError as exc:  # a broken install: say so, do not pass
        why = f"sslyze cannot be imported ({exc}): pip install 'sslyze>=6.3.1,<7'"
        return ScanResult(host, port, sni, ScanStatus.ERROR, why, time.monotonic() - t0), None

    _quiet_sslyze_warnings()
    extra = (
        ScanCommandsExtraArguments(
            certificate_info=CertificateInfoExtraArgument(custom_ca_file=ca_file)
        )
        if ca_file is not None
        else ScanCommandsExtraArguments()
    )
    request = ServerScanRequest(
        server_location=ServerNetworkLocation(host, port, ip_address=_ip_or_none(host)),
        network_configuration=ServerNetworkConfiguration(
            tls_server_name_indication=sni,
            network_timeout=max(1, round(timeout)),
            network_max_retries=1,
        ),
        scan_commands={ScanCommand(c) for c in (*_VERSION_COMMANDS.values(), *_OTHER_COMMANDS)},
        scan_commands_extra_arguments=extra,
    )
    box: list[Any] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            scanner = Scanner(per_server_concurrent_connections_limit=concurrency)
            scanner.queue_scans([request])
            box.extend(scanner.get_results())
        except Exception as exc:  # an engine bug must become an error result, not a crash
            failure.append(exc)

    worker = threading.Thread(target=run, name=f"sslyze {host}:{port}", daemon=True)
    worker.start()
    worker.join(max(0.0, deadline - (time.monotonic() - t0)))
    elapsed = time.monotonic() - t0
    if worker.is_alive():
        why = f"scan exceeded {deadline:g} s (sslyze still running)"
        return ScanResult(host, port, sni, ScanStatus.ERROR, why, elapsed, engine=_engine()), None
    if failure or not box:
        why = f"{type(failure[0]).__name__}: {failure[0]}" if failure else "no result"
        why = f"sslyze failed: {why}"
        return ScanResult(host, port, sni, ScanStatus.ERROR, why, elapsed, engine=_engine()), None
    return _from_sslyze(host, port, sni, box[0], elapsed, _engine()), box[0]


def _ip_or_none(host: str) -> str | None:
    """``host`` if it is an IP literal (sslyze then skips DNS), else None (sslyze resolves)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return None
    return host


def _engine() -> str:
    try:
        from sslyze.__version__ import __version__
    except ImportError:
        return "sslyze (not installed)"
    return f"sslyze {__version__}"
