"""Real legacy TLS servers on loopback, for weaknesses the simulator's OpenSSL cannot serve.

* :class:`TlsliteServer` -- tlslite-ng (pure Python) in a thread on 127.0.0.1: SSL 3.0, RC4,
  3DES, NULL, anonymous DH, static RSA, finite-field DH with a chosen group.
* :class:`GnutlsServer` -- ``gnutls-serv`` (Debian package gnutls-bin) with a legacy priority
  string: RC4/3DES next to AES-GCM (the issue-8 case), NULL, anon-DH, TLS 1.0/1.1, a 1024-bit
  DH group, a 192-bit curve, no secure renegotiation. gnutls-serv can only bind every
  interface, so it runs in its own network namespace (``unshare -n``) and a relay started in
  that namespace accepts on a 127.0.0.1 socket this process opened and passed down: nothing
  listens beyond loopback.

:data:`LEGACY` names one server per weakness; ``legacy_server(name)`` starts it, or skips the
test with the reason (tool missing, no namespaces) -- never a silent pass.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import ipaddress
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from amicheck.profile import default_profile
from amicheck.sim import Simulator
from amicheck.tls.material import Authority, CertPair, dh_params_pem
from amicheck.tls.model import ScanResult
from amicheck.tls.scan import scan_with_sslyze_result

with warnings.catch_warnings():  # tlslite-ng 0.8 imports asyncore (deprecated in 3.11)
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        import tlslite
        import tlslite.tlsconnection as _tlslite_conn
    except ImportError:  # the test extra is not installed: its fixtures skip
        tlslite = None

if tlslite is not None:
    # sslyze (like the suites) sends the target's IP literal as SNI; OpenSSL and GnuTLS
    # servers ignore it, tlslite refuses it (RFC 6066). The legacy servers stand in for
    # OpenSSL-based firmware, so they accept it as OpenSSL does.
    _strict_hostname = _tlslite_conn.is_valid_hostname

    def _lenient_hostname(name: Any) -> bool:
        text = bytes(name).decode("ascii", "replace") if not isinstance(name, str) else name
        try:
            ipaddress.ip_address(text)
        except ValueError:
            return bool(_strict_hostname(name))
        return True

    _tlslite_conn.is_valid_hostname = _lenient_hostname

LOOPBACK = "127.0.0.1"
#: Port gnutls-serv listens on inside its own network namespace (nothing else runs there).
_INNER_PORT = 5556
_INNER_PORT_S = str(_INNER_PORT)
#: The relay script run inside the namespace (standard library only: starts fast).
_RELAY = Path(__file__).with_name("tls_relay.py")
_START_TIMEOUT = 15.0

_CA: list[Authority] = []


def test_authority() -> Authority:
    """One CA per test run for every legacy server's leaf (generated on first use)."""
    if not _CA:
        _CA.append(Authority.generate("amicheck legacy-server CA"))
    return _CA[0]


test_authority.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def leaf(key_bits: int = 2048) -> CertPair:
    """An end-entity leaf for localhost/127.0.0.1 from :func:`test_authority`."""
    return test_authority().issue("legacy.localhost", key_bits=key_bits)


# --- tlslite-ng ------------------------------------------------------------------------------


def _linger_close(conn: socket.socket) -> None:
    """Close after the peer has read what we sent (FIN, drain): unread input would make the
    kernel send a RST that can overtake our last alert."""
    with contextlib.suppress(OSError):
        conn.shutdown(socket.SHUT_WR)
        conn.settimeout(1.0)
        while conn.recv(4096):
            pass
    conn.close()


class _FlawedSocket:
    """A socket for tlslite that reproduces, on the wire, what a vulnerable OpenSSL did.

    * ``heartbleed`` (CVE-2014-0160): heartbeat requests are answered at any time, even in
      the handshake and without the RFC 6520 padding, with ``payload_length`` bytes (past the
      payload: a fixed filler standing in for leaked memory).
    * ``ccs-injection`` (CVE-2014-0224): a ChangeCipherSpec before the ClientKeyExchange is
      accepted, so the next record is "decrypted" with the wrong keys: bad_record_mac.

    Plaintext records only (both flaws act before encryption starts); everything else goes
    to tlslite unchanged.
    """

    _LEAK = b"-leaked-memory-"

    def __init__(self, sock: socket.socket, flaws: frozenset[str]) -> None:
        self._sock = sock
        self._flaws = flaws
        self._in = b""
        self._out = b""
        self._seen_key_exchange = False
        self._early_ccs = False
        self._eof = False
        self._held: list[bytes] = []  # heartbeat answers, sent after ServerHelloDone
        self._flight_done = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)

    def _sent(self, data: bytes) -> None:
        if data[:1] == b"\x16" and b"\x0e\x00\x00\x00" in data:
            self._flight_done = True  # ServerHelloDone: OpenSSL read the heartbeat after it
        if self._flight_done:
            for reply in self._held:
                self._sock.sendall(reply)
            self._held.clear()

    def send(self, data: bytes) -> int:
        n = self._sock.send(data)
        self._sent(bytes(data[:n]))
        return n

    def sendall(self, data: bytes) -> None:
        self._sock.sendall(data)
        self._sent(bytes(data))

    def recv(self, n: int) -> bytes:
        while not self._out and not self._eof:
            data = self._sock.recv(65536)
            if not data:
                self._eof = True
                break
            self._in += data
            self._records()
        out, self._out = self._out[:n], self._out[n:]
        return out

    def _records(self) -> None:
        while len(self._in) >= 5:
            length = int.from_bytes(self._in[3:5], "big")
            if len(self._in) < 5 + length:
                return
            record, self._in = self._in[: 5 + length], self._in[5 + length :]
            kind, version, body = record[0], record[1:3], record[5:]
            if kind == 24 and "heartbleed" in self._flaws and body[:1] == b"\x01":
                claimed = int.from_bytes(body[1:3], "big")
                payload = (body[3:] + self._LEAK * (claimed // len(self._LEAK) + 1))[:claimed]
                reply = b"\x02" + claimed.to_bytes(2, "big") + payload
                self._held.append(bytes([24]) + version + len(reply).to_bytes(2, "big") + reply)
                self._sent(b"")
                continue
            if kind == 22 and body[:1] == b"\x10":
                self._seen_key_exchange = True
            if kind == 20 and "ccs-injection" in self._flaws and not self._seen_key_exchange:
                self._early_ccs = True
                continue
            if kind == 23 and self._early_ccs:
                self._sock.sendall(b"\x15" + version + b"\x00\x02\x02\x14")  # bad_record_mac
                self._eof = True
                self._in = b""
                return
            self._out += record


def _oracle_key(key: Any, conn: socket.socket) -> Any:
    """A copy of ``key`` that is a Bleichenbacher oracle (ROBOT) on ``conn``: a bad PKCS#1
    padding gets a handshake_failure alert at once, where tlslite (rightly) carries on with
    a random premaster secret and fails on the Finished (bad_record_mac)."""

    class OracleKey(type(key)):  # type: ignore[misc]
        def decrypt(self, data: bytes) -> Any:
            em = bytes(self._raw_private_key_op_bytes(bytes(data)))
            sep = em.find(b"\x00", 2)
            if em[:2] != b"\x00\x02" or sep < 10 or len(em) - sep - 1 != 48:
                with contextlib.suppress(OSError):
                    conn.sendall(b"\x15\x03\x03\x00\x02\x02\x28")  # handshake_failure
                    conn.settimeout(0.3)
                    while conn.recv(4096):  # read the client's CCS + Finished: no RST later
                        pass
                raise ValueError("bad PKCS#1 padding")
            return super().decrypt(data)

    oracle = copy.copy(key)
    oracle.__class__ = OracleKey
    return oracle


@dataclass
class TlsliteServer:
    """tlslite-ng on 127.0.0.1 in a daemon thread: handshake, send a banner, close.

    ``settings`` are HandshakeSettings attributes (``minVersion``, ``cipherNames``,
    ``keyExchangeNames``, ``dhParams`` ...); ``anon`` serves anonymous DH only; ``flaws``
    reproduces old OpenSSL bugs (``heartbleed``, ``ccs-injection``, ``robot``).
    """

    settings: dict[str, Any]
    anon: bool = False
    flaws: frozenset[str] = frozenset()
    pair: CertPair = field(default_factory=leaf)
    host: str = LOOPBACK
    port: int = 0
    handshakes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        from tlslite import X509CertChain, parsePEMKey

        self._chain = X509CertChain()
        self._chain.parsePemList(self.pair.cert_pem.decode())
        self._key = parsePEMKey(self.pair.key_pem.decode(), private=True)
        self._sock = socket.create_server((LOOPBACK, 0))
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="tlslite", daemon=True)
        self._thread.start()

    def _handshake_settings(self) -> Any:
        from tlslite import HandshakeSettings

        hs = HandshakeSettings()
        for k, v in self.settings.items():
            setattr(hs, k, v)
        return hs

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        from tlslite import TLSConnection

        conn.settimeout(5.0)
        sock: Any = _FlawedSocket(conn, self.flaws) if self.flaws else conn
        tls = TLSConnection(sock)
        try:
            if self.anon:
                tls.handshakeServer(anon=True, settings=self._handshake_settings())
            else:
                key = _oracle_key(self._key, conn) if "robot" in self.flaws else self._key
                tls.handshakeServer(
                    certChain=self._chain,
                    privateKey=key,
                    settings=self._handshake_settings(),
                )
            self.handshakes.append(f"{tls.getVersionName()} {tls.getCipherName()}")
            tls.write(b"Asterisk Call Manager/2.7.0\r\n")
            tls.close()
        except Exception as exc:  # refused handshakes are the point: record, go on
            self.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            _linger_close(conn)

    def close(self) -> None:
        """Stop accepting and close the listener."""
        self._stop.set()
        self._thread.join(5)
        self._sock.close()


# --- gnutls-serv in a network namespace ---------------------------------------------------


def gnutls_unavailable() -> str | None:
    """Why gnutls-serv cannot run here (None: it can)."""
    if shutil.which("gnutls-serv") is None:
        return "gnutls-serv is not installed (Debian package gnutls-bin)"
    if shutil.which("unshare") is None:
        return "unshare (util-linux) is missing: gnutls-serv cannot be confined to loopback"
    probe = subprocess.run(
        ["unshare", "-n", "true"], capture_output=True, text=True, timeout=10, check=False
    )
    if probe.returncode != 0:
        return (
            "gnutls-serv binds every interface and network namespaces are not allowed here "
            f"(unshare -n: {probe.stderr.strip() or probe.returncode})"
        )
    return None


class GnutlsServer:
    """``gnutls-serv --priority PRIORITY`` reachable only on 127.0.0.1:``port``."""

    def __init__(
        self,
        priority: str,
        *,
        dhparams: bytes | None = None,
        key_bits: int = 2048,
        extra: tuple[str, ...] = (),
    ) -> None:
        self.priority = priority
        self.host = LOOPBACK
        self._dir = Path(tempfile.mkdtemp(prefix="amicheck-gnutls-"))
        pair = leaf(key_bits)
        cert, key = self._dir / "cert.pem", self._dir / "key.pem"
        pair.write(cert, key)
        cmd = [
            "gnutls-serv",
            "--port",
            str(_INNER_PORT),
            "--echo",
            "--disable-client-cert",
            "--x509certfile",
            str(cert),
            "--x509keyfile",
            str(key),
            "--priority",
            priority,
        ]
        if dhparams is not None:
            (self._dir / "dh.pem").write_bytes(dhparams)
            cmd += ["--dhparams", str(self._dir / "dh.pem")]
        cmd += list(extra)
        self._listener = socket.create_server((LOOPBACK, 0))
        self.port: int = self._listener.getsockname()[1]
        fd = self._listener.fileno()
        self._log = open(self._dir / "log.txt", "w+b")  # noqa: SIM115 - closed in close()
        self._proc = subprocess.Popen(
            ["unshare", "-n", "--", sys.executable, str(_RELAY), str(fd), _INNER_PORT_S, *cmd],
            pass_fds=(fd,),
            stdout=subprocess.PIPE,
            stderr=self._log,
        )
        self._listener.close()  # the relay holds it now
        assert self._proc.stdout is not None
        ready, _, _ = select.select([self._proc.stdout], [], [], _START_TIMEOUT)
        line = self._proc.stdout.readline() if ready else b""
        if line.strip() != b"ready":
            self.close()
            raise RuntimeError(f"gnutls-serv ({priority}) did not start: {self.log()[-400:]}")

    def log(self) -> str:
        """gnutls-serv's and the relay's stderr so far."""
        self._log.flush()
        return (self._dir / "log.txt").read_text(errors="replace")

    def close(self) -> None:
        """Stop the relay (which stops gnutls-serv) and remove the files."""
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
        if self._proc.stdout is not None:
            self._proc.stdout.close()
        self._log.close()
        shutil.rmtree(self._dir, ignore_errors=True)


# --- one server per weakness ---------------------------------------------------------------

#: Priority strings: each starts from NORMAL (what a current GnuTLS serves) plus one deviation.
_GNUTLS_LEGACY = "NORMAL:+ARCFOUR-128:+3DES-CBC:+RSA"

#: tlslite-ng at TLS 1.2 only, AEAD suites with ECDHE (the flawed servers' base).
_TLS12: dict[str, Any] = {
    "minVersion": (3, 3),
    "maxVersion": (3, 3),
    "cipherNames": ["aes128gcm", "aes256gcm"],
}

#: name -> (what it serves, starter). Each is one deviation from a sane server.
LEGACY: dict[str, tuple[str, Callable[[], Any]]] = {
    "gnutls-rc4-3des": (
        "GnuTLS, legacy priority: RC4 and 3DES (and static RSA) next to AES-GCM",
        lambda: GnutlsServer(_GNUTLS_LEGACY),
    ),
    "gnutls-tls10": (
        "GnuTLS accepting TLS 1.0 and 1.1",
        lambda: GnutlsServer("NORMAL:+VERS-TLS1.0:+VERS-TLS1.1"),
    ),
    "gnutls-null-anon": (
        "GnuTLS with NULL encryption and anonymous DH",
        lambda: GnutlsServer("NORMAL:+NULL:+ANON-DH:+ANON-ECDH", dhparams=dh_params_pem()),
    ),
    "gnutls-dh1024": (
        "GnuTLS offering DHE with a 1024-bit group only",
        lambda: GnutlsServer(
            "NORMAL:-VERS-TLS1.3:-KX-ALL:+DHE-RSA:-GROUP-ALL", dhparams=dh_params_pem()
        ),
    ),
    "gnutls-p192": (
        "GnuTLS also offering ECDHE on secp192r1",
        lambda: GnutlsServer("NORMAL:-VERS-TLS1.3:+GROUP-SECP192R1"),
    ),
    "gnutls-no-secure-reneg": (
        "GnuTLS without RFC 5746 secure renegotiation",
        lambda: GnutlsServer("NORMAL:-VERS-TLS1.3:%DISABLE_SAFE_RENEGOTIATION"),
    ),
    "gnutls-client-reneg": (
        "GnuTLS at TLS 1.2+ with its default: it honours client-initiated renegotiation",
        lambda: GnutlsServer("NORMAL:-VERS-TLS1.0:-VERS-TLS1.1"),
    ),
    "tlslite-ssl3": (
        "tlslite-ng accepting SSL 3.0",
        lambda: TlsliteServer({"minVersion": (3, 0), "maxVersion": (3, 3)}),
    ),
    "tlslite-rc4": (
        "tlslite-ng with RC4 and 3DES suites at TLS 1.2",
        lambda: TlsliteServer(
            {"cipherNames": ["aes128gcm", "rc4", "3des"], "keyExchangeNames": ["ecdhe_rsa", "rsa"]}
        ),
    ),
    "tlslite-heartbleed": (
        "tlslite-ng at TLS 1.2 answering heartbeats the way OpenSSL 1.0.1f did (Heartbleed)",
        lambda: TlsliteServer(_TLS12, flaws=frozenset({"heartbleed"})),
    ),
    "tlslite-ccs-injection": (
        "tlslite-ng at TLS 1.2 accepting an early ChangeCipherSpec (CCS injection)",
        lambda: TlsliteServer(_TLS12, flaws=frozenset({"ccs-injection"})),
    ),
    "tlslite-robot": (
        "tlslite-ng with RSA key exchange and a padding oracle (ROBOT)",
        lambda: TlsliteServer({**_TLS12, "keyExchangeNames": ["rsa"]}, flaws=frozenset({"robot"})),
    ),
}


@contextlib.contextmanager
def legacy_server(name: str) -> Iterator[Any]:
    """Start ``LEGACY[name]`` for the block, or skip the test saying why it cannot run."""
    if name.startswith("gnutls-"):
        why = gnutls_unavailable()
        if why:
            pytest.skip(why)
    if name.startswith("tlslite-") and tlslite is None:
        pytest.skip("tlslite-ng is not installed (pip install -e '.[test]')")
    _, start = LEGACY[name]
    try:
        server = start()
    except ImportError as exc:
        pytest.skip(f"{name}: {exc}")
    try:
        yield server
    finally:
        server.close()


# --- scans shared by the test modules -------------------------------------------------------


@functools.cache
def scanned_legacy(name: str) -> tuple[ScanResult, Any]:
    """One scan of ``LEGACY[name]`` per test process: amicheck's result and sslyze's raw one.

    test_tls_scan and test_tls_vs_sslyze judge the same scans (a scan of a tlslite server
    takes 10-20 s on this machine); skips like :func:`legacy_server`.
    """
    with legacy_server(name) as srv:
        return scan_with_sslyze_result(LOOPBACK, srv.port, timeout=5.0)


@functools.cache
def scanned_sim(fault: str | None) -> tuple[ScanResult, Any, bytes]:
    """One scan of the simulator with ``fault`` (None: compliant) per test process, with the
    certificate file the simulator was given."""
    faults = (fault,) if fault else ()
    with Simulator(default_profile(), faults=faults, host=LOOPBACK, port=0, tls_port=0) as sim:
        assert sim.tls_port is not None and sim.tls_cert_path is not None
        result, raw = scan_with_sslyze_result(LOOPBACK, sim.tls_port, timeout=5.0)
        return result, raw, sim.tls_cert_path.read_bytes()
