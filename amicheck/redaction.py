"""Secrets and values derived from them, known process-wide, and masking them in any output.

An MD5 login key is password-equivalent (md5(challenge + secret) can be cracked offline
with the challenge beside it), so every place that computes one goes through
:func:`md5_key`, which registers the key; report, log and capture writers mask everything
:func:`derived_secrets` returns, next to the profile's raw secrets and their hex and base64
encodings (:func:`secret_forms`). :func:`scrub_text` masks them in text, :func:`scrub_report`
in a pytest report (traceback with ``-l`` locals and ``-vv`` diffs, captured output and logs,
user properties) before any reporter sees it.

Keys computed without :func:`md5_key` are caught too: every ``Challenge:`` a transcript
receives is registered (:func:`register_challenge`), and md5(challenge + secret) is masked for
every secret a writer is given.

Matching is by overlapping occurrence, and the union of all occurrences is masked, so a
secret that overlaps another cannot leave a tail behind. Hex forms (MD5 keys, hex-encoded
secrets) are found case-insensitively through one scan for hex runs plus set look-ups, so the
cost does not grow with the number of registered keys.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import re
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the protocol side never imports pytest
    import pytest

__all__ = [
    "MASK",
    "MIN_SECRET_LEN",
    "md5_key",
    "register_derived",
    "derived_secrets",
    "derived_version",
    "register_challenge",
    "challenges_seen",
    "secret_forms",
    "Matcher",
    "matcher",
    "scrub_text",
    "scrub_bytes",
    "scrub_report",
]

#: What a secret value becomes.
MASK = "********"
#: Shorter values are not searched for in free text: masking every ``ab`` would destroy the
#: output, and the profile rules refuse such secrets anyway (``Secret:``/``Key:`` values are
#: masked by position whatever their length).
MIN_SECRET_LEN = 4
#: Hex forms shorter than this are matched as literals, not through the hex-run scan.
_HEX_MIN = 8
#: Bound on remembered derived values (a long run computes a few per MD5 check).
MAX_DERIVED = 100_000

_lock = threading.Lock()
_derived: dict[str, None] = {}
_version = 0  # bumped when matchers built earlier are stale (a new non-hex derived value)
#: hex derived values (MD5 keys), lower-cased by length: looked up live by every matcher
_derived_hex: dict[int, set[str]] = {}
#: Bound on remembered challenges (each costs one md5 per secret, once).
MAX_CHALLENGES = 10_000
_challenges: list[str] = []
_challenge_set: set[str] = set()
_challenge_keys: dict[frozenset[str], tuple[int, set[str]]] = {}
_gen = 0  # bumped on every registration: matchers refresh their look-up tables
_HEX_CHARS = frozenset("0123456789abcdefABCDEF")


def _is_hex(value: str) -> bool:
    return len(value) >= _HEX_MIN and _HEX_CHARS.issuperset(value)


def register_derived(value: str) -> None:
    """Remember ``value`` as secret-derived: writers must mask it wherever it appears."""
    global _version, _gen
    if not value:
        return
    with _lock:
        if value in _derived:
            return
        _gen += 1
        if len(_derived) >= MAX_DERIVED:
            _derived.pop(next(iter(_derived)))
            _rebuild_hex_locked()
        _derived[value] = None
        if _is_hex(value):
            _derived_hex.setdefault(len(value), set()).add(value.lower())
        else:
            _version += 1  # literal forms live in the matchers: they are stale now


def _rebuild_hex_locked() -> None:
    _derived_hex.clear()
    for v in _derived:
        if _is_hex(v):
            _derived_hex.setdefault(len(v), set()).add(v.lower())


def register_challenge(challenge: str) -> None:
    """Remember an MD5 challenge a server sent: md5(challenge + secret) is masked for every
    secret a writer knows, even where a key was computed without :func:`md5_key`."""
    global _gen
    challenge = challenge.strip()
    if not challenge or len(challenge) > 256:
        return
    with _lock:
        if challenge in _challenge_set:
            return
        _gen += 1
        if len(_challenges) >= MAX_CHALLENGES:
            del _challenges[: MAX_CHALLENGES // 2]
            _challenge_set.clear()
            _challenge_set.update(_challenges)
            _challenge_keys.clear()
        _challenges.append(challenge)
        _challenge_set.add(challenge)


def challenges_seen() -> tuple[str, ...]:
    """The challenges registered so far (at most :data:`MAX_CHALLENGES`, newest last)."""
    with _lock:
        return tuple(_challenges)


def _keys_for(secrets: frozenset[str]) -> set[str]:
    """md5(challenge + secret) for every registered challenge, computed once per pair."""
    with _lock:
        done, keys = _challenge_keys.get(secrets, (0, set()))
        todo = _challenges[done:]
        if todo:
            for c in todo:
                for sec in secrets:
                    keys.add(hashlib.md5((c + sec).encode("utf-8", "surrogateescape"))
                             .hexdigest())
            if len(_challenge_keys) >= 64:
                _challenge_keys.pop(next(iter(_challenge_keys)))
            _challenge_keys[secrets] = (len(_challenges), keys)
        return keys


def derived_version() -> int:
    """A number that changes whenever a matcher built earlier is stale (for caches)."""
    return _version


def derived_secrets() -> frozenset[str]:
    """Every secret-derived value registered so far in this process."""
    with _lock:
        return frozenset(_derived)


def md5_key(challenge: str, secret: str) -> str:
    """The AMI MD5 login key, lower-case hex md5(challenge + secret), registered as secret."""
    key = hashlib.md5((challenge + secret).encode("utf-8")).hexdigest()
    register_derived(key)
    return key


def _encodings(secret: str) -> set[str]:
    raw = secret.encode("utf-8", "surrogateescape")
    forms = {secret, raw.hex(), raw.hex().upper()}
    for enc in (base64.b64encode(raw), base64.urlsafe_b64encode(raw)):
        text = enc.decode("ascii")
        forms.add(text)
        forms.add(text.rstrip("="))
    return forms


def secret_forms(secrets: Iterable[str]) -> set[str]:
    """Every string to mask: each secret, its hex (lower/upper) and base64 (std/urlsafe,
    padded or not) forms, and every registered derived value (also upper/lower-cased)."""
    secrets = [s for s in secrets if s]
    forms: set[str] = set()
    for s in secrets:
        forms |= _encodings(s)
    for d in derived_secrets():
        forms.update((d, d.lower(), d.upper()))
    if secrets:
        for key in _keys_for(frozenset(secrets)):
            forms.update((key, key.upper()))
    forms.discard("")
    return forms


_HEX_RUN_TEXT = re.compile(rf"[0-9A-Fa-f]{{{_HEX_MIN},}}")
_HEX_RUN_BYTES = re.compile(_HEX_RUN_TEXT.pattern.encode("ascii"))


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    spans.sort()
    out: list[tuple[int, int]] = []
    for a, b in spans:
        if out and a <= out[-1][1]:
            if b > out[-1][1]:
                out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


class Matcher:
    """Finds every occurrence of a set of forms in text or bytes.

    Literal forms are searched with ``str.find`` (C speed, overlaps found); hex forms with
    one regex scan for runs of hex digits, each window of a known length looked up in a set
    (lower-cased: any letter case matches). Besides its own forms, a matcher looks up the
    live registries: derived hex values and the keys of registered challenges for
    ``secrets``, so registering a key or a challenge never needs a new matcher.
    """

    __slots__ = ("_lit", "_blit", "_hex", "_key", "_static_longest", "_gen", "_cached")

    def __init__(self, forms: Iterable[str], secrets: Iterable[str] = ()) -> None:
        lits: set[str] = set()
        hexes: dict[int, set[str]] = {}
        for f in forms:
            if len(f) < MIN_SECRET_LEN:
                continue
            if _is_hex(f):
                hexes.setdefault(len(f), set()).add(f.lower())
            else:
                lits.add(f)
        # a padded base64 form is masked through its unpadded prefix (only "=" is left)
        lits = {f for f in lits if not (f.endswith("=") and f.rstrip("=") in lits)}
        self._lit = sorted(lits, key=len, reverse=True)
        self._blit = [s.encode("utf-8", "surrogateescape") for s in self._lit]
        self._hex = {n: frozenset(v) for n, v in hexes.items()}
        self._key = frozenset(s for s in secrets if s)
        lengths = [len(b) for b in self._blit] + list(self._hex)
        self._static_longest = max(lengths, default=0)
        self._gen = -1
        self._cached: list[tuple[int, list[Any]]] = []

    def _tables(self) -> list[tuple[int, list[Any]]]:
        """Hex look-up tables by length, ours and the live registries' (cached per change)."""
        gen = _gen
        if gen == self._gen:
            return self._cached
        tables: dict[int, list[Any]] = {n: [v] for n, v in self._hex.items()}
        with _lock:
            live = [(n, v) for n, v in _derived_hex.items() if v]
            challenges = bool(_challenges)
        for n, v in live:
            tables.setdefault(n, []).append(v)
        if challenges and self._key:
            tables.setdefault(32, []).append(_keys_for(self._key))
        self._cached = sorted(tables.items())
        self._gen = gen
        return self._cached

    @property
    def longest(self) -> int:
        """The longest form in bytes (what a split-aware caller must keep of earlier data)."""
        tables = self._tables()
        return max(self._static_longest, tables[-1][0]) if tables else self._static_longest

    @property
    def empty(self) -> bool:
        """True when there is nothing to find (no forms, nothing registered)."""
        return not self._static_longest and not self._tables()

    def spans(self, data: str | bytes) -> list[tuple[int, int]]:
        """Merged ``(start, end)`` ranges of ``data`` covered by any form."""
        if not data:
            return []
        spans: list[tuple[int, int]] = []
        tables = self._tables()
        if isinstance(data, str):
            self._find(data, self._lit, spans)
            if tables:
                self._find_hex(data, _HEX_RUN_TEXT, tables, spans)
        else:
            self._find(data, self._blit, spans)
            if tables:
                self._find_hex(data, _HEX_RUN_BYTES, tables, spans)
        return _merge(spans) if spans else spans

    @staticmethod
    def _find(data: Any, lits: list[Any], spans: list[tuple[int, int]]) -> None:
        for lit in lits:
            at = data.find(lit)
            while at >= 0:
                spans.append((at, at + len(lit)))
                at = data.find(lit, at + 1)

    @staticmethod
    def _find_hex(data: Any, run: re.Pattern[Any], tables: list[tuple[int, list[Any]]],
                  spans: list[tuple[int, int]]) -> None:
        for m in run.finditer(data):
            a, b = m.span()
            text = data[a:b].lower()
            if isinstance(text, bytes):
                text = text.decode("ascii")
            for n, sets in tables:
                if n > b - a:
                    break
                for i in range(b - a - n + 1):
                    window = text[i:i + n]
                    if any(window in known for known in sets):
                        spans.append((a + i, a + i + n))

    def sub(self, data: Any, mask: Any) -> Any:
        """``data`` (str or bytes) with every covered range replaced by ``mask``."""
        spans = self.spans(data)
        if not spans:
            return data
        out = []
        pos = 0
        for a, b in spans:
            out.append(data[pos:a])
            out.append(mask)
            pos = b
        out.append(data[pos:])
        return data[:0].join(out)


_cache_lock = threading.Lock()
_cache: dict[frozenset[str], tuple[int, Matcher]] = {}
_CACHE_MAX = 64


def matcher(secrets: Iterable[str]) -> Matcher:
    """The (cached) :class:`Matcher` for ``secret_forms(secrets)`` as of now."""
    key = frozenset(s for s in secrets if s)
    with _cache_lock:
        hit = _cache.get(key)
    if hit is not None and hit[0] == _version:
        return hit[1]
    version = _version
    static = set().union(*(_encodings(s) for s in key)) if key else set()
    static |= {d for d in derived_secrets() if not _is_hex(d)}
    built = Matcher(static, key)
    with _cache_lock:
        if len(_cache) >= _CACHE_MAX:
            _cache.pop(next(iter(_cache)))
        _cache[key] = (version, built)
    return built


def scrub_text(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret, encoding of one and derived value masked as ``********``."""
    if not text:
        return text
    result: str = matcher(secrets).sub(text, MASK)
    return result


def scrub_bytes(data: bytes, secrets: Iterable[str]) -> bytes:
    """:func:`scrub_text` for bytes (pcap payloads, raw logs)."""
    if not data:
        return data
    result: bytes = matcher(secrets).sub(data, MASK.encode("ascii"))
    return result


# --- pytest reports ----------------------------------------------------------------------------


def _scrub_obj(obj: Any, m: Matcher, depth: int = 0) -> Any:
    """Scrub str leaves of plain containers and of pytest's repr dataclasses, in place."""
    if isinstance(obj, str):
        return m.sub(obj, MASK)
    if depth > 12 or obj is None or isinstance(obj, (int, float, bool)):
        return obj
    if isinstance(obj, list):
        obj[:] = [_scrub_obj(x, m, depth + 1) for x in obj]
        return obj
    if isinstance(obj, tuple):
        return tuple(_scrub_obj(x, m, depth + 1) for x in obj)
    if isinstance(obj, dict):
        return {k: _scrub_obj(v, m, depth + 1) for k, v in obj.items()}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            new = _scrub_obj(value, m, depth + 1)
            if new is not value:
                object.__setattr__(obj, f.name, new)  # pytest's repr classes are frozen-ish
        return obj
    return obj


def _render(longrepr: Any) -> str:
    if isinstance(longrepr, tuple):
        return " ".join(str(x) for x in longrepr)
    return str(longrepr)


def scrub_report(report: pytest.TestReport | pytest.CollectReport, secrets: Iterable[str]) -> None:
    """Mask every secret form and derived value in ``report`` before any reporter reads it.

    Covers ``longrepr`` (traceback lines, ``-l`` locals, ``-vv`` diffs, the crash message,
    chained exceptions, the skip tuple), ``sections`` (captured stdout/stderr/log) and
    ``user_properties`` values. The traceback object is kept when its parts can be scrubbed
    (so the terminal summary keeps its crash line); if anything still shows after that, it
    becomes the scrubbed rendered text.
    """
    m = matcher(secrets)
    if m.empty:
        return
    longrepr = report.longrepr
    if longrepr is not None:
        if isinstance(longrepr, str):
            report.longrepr = m.sub(longrepr, MASK)
        elif m.spans(_render(longrepr)):
            if isinstance(longrepr, tuple):
                report.longrepr = _scrub_obj(longrepr, m)
            else:
                try:
                    _scrub_obj(longrepr, m)
                except Exception:  # noqa: BLE001 - fall back to plain text below
                    pass
                text = _render(report.longrepr)
                if m.spans(text):
                    report.longrepr = m.sub(text, MASK)
    sections = getattr(report, "sections", None)
    if sections:
        report.sections = [(m.sub(t, MASK), m.sub(c, MASK)) for t, c in sections]
    if isinstance(getattr(report, "user_properties", None), list):
        props: list[tuple[str, object]] = report.user_properties
        props[:] = [(n, _scrub_obj(v, m)) for n, v in props]
