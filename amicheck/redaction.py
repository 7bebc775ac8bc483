"""Secrets and values derived from them, known process-wide, for redaction.

An MD5 login key is password-equivalent (md5(challenge + secret) can be cracked offline
with the challenge beside it), so every place that computes one goes through
:func:`md5_key`, which registers the key; report, log and capture writers mask everything
:func:`derived_secrets` returns, next to the profile's raw secrets.
"""

from __future__ import annotations

import hashlib
import threading

__all__ = ["md5_key", "register_derived", "derived_secrets"]

#: Bound on remembered derived values (a long run computes a few per MD5 check).
MAX_DERIVED = 100_000

_lock = threading.Lock()
_derived: dict[str, None] = {}


def register_derived(value: str) -> None:
    """Remember ``value`` as secret-derived: writers must mask it wherever it appears."""
    if not value:
        return
    with _lock:
        if len(_derived) >= MAX_DERIVED:
            _derived.pop(next(iter(_derived)))
        _derived[value] = None


def derived_secrets() -> frozenset[str]:
    """Every secret-derived value registered so far in this process."""
    with _lock:
        return frozenset(_derived)


def md5_key(challenge: str, secret: str) -> str:
    """The AMI MD5 login key, lower-case hex md5(challenge + secret), registered as secret."""
    key = hashlib.md5((challenge + secret).encode("utf-8")).hexdigest()
    register_derived(key)
    return key
