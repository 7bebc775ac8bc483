"""amicheck.tlsaudit is a shim over amicheck.tls: the names it exports are the package's own
objects, and the hand-written handshake probes are gone (sslyze scans instead)."""

from __future__ import annotations

import importlib

from amicheck import tlsaudit


def test_shim_reexports_the_package() -> None:
    homes = [
        importlib.import_module(f"amicheck.tls.{m}")
        for m in ("certificate", "chain", "material", "model", "plaintext", "scan")
    ]
    for name in tlsaudit.__all__:
        obj = getattr(tlsaudit, name)
        assert any(getattr(m, name, None) is obj for m in homes), name


def test_probes_are_gone() -> None:
    for name in ("probe_versions", "probe_cipher_classes", "audit_endpoint", "local_support",
                 "handshake"):
        assert not hasattr(tlsaudit, name), name
