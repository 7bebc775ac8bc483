"""The one table of amicheck options, and the parsers that check each value.

Every option is declared once, in :data:`OPTIONS`. The table drives the pytest options
(``--ami-target``, the ``ami_target`` ini key) and ``amicheck run``'s flags (``--target``), and
turns the values ``amicheck run`` checked back into pytest arguments (:func:`pytest_argv`),
so an option added here appears everywhere at once. Parsers raise :class:`OptionError` with
a reason; the caller prefixes the flag the user typed.
"""

from __future__ import annotations

import argparse
import ipaddress
import math
import os
import re
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest

from amicheck.filekind import not_regular

__all__ = [
    "OPTIONS",
    "Option",
    "OptionError",
    "TargetSpec",
    "parse_target",
    "parse_source",
    "parse_fail_delay",
    "parse_timeout",
    "parse_profile_path",
    "parse_baseline",
    "Baseline",
    "add_pytest_options",
    "add_run_arguments",
    "pytest_argv",
    "DEFAULT_REPORT_DIR",
    "PROBE_TIMEOUT",
]

DEFAULT_REPORT_DIR = "reports"
PROBE_TIMEOUT = 3.0
MAX_FAIL_DELAY = 60.0
#: A baseline is read whole: a bigger file is not a report.json (a full run's is ~1 MB).
MAX_BASELINE_BYTES = 256 * 1024 * 1024


class OptionError(ValueError):
    """A bad option value; the message is the reason, without the option's name."""


# --- value parsers ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TargetSpec:
    """A parsed ``--ami-target``: the simulator, or a host with an optional port."""

    host: str | None = None  # None: the embedded simulator
    port: int | None = None

    @property
    def is_sim(self) -> bool:
        return self.host is None

    def __str__(self) -> str:
        if self.host is None:
            return "sim"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}" if self.port else host


_HOST_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")


def _port(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) < 65536:
        raise OptionError(f"port must be 1-65535, got {text!r}")
    return int(text)


def parse_target(value: str) -> TargetSpec:
    """``sim`` | ``HOST`` | ``HOST:PORT`` | ``[IPv6]:PORT``."""
    text = value.strip()
    if text.lower() == "sim":
        return TargetSpec()
    host, port = text, None
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise OptionError(f"unclosed '[' in {value!r}")
        host, rest = text[1:end], text[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise OptionError(f"expected ':PORT' after ']' in {value!r}")
            port = _port(rest[1:])
    elif text.count(":") == 1:
        host, _, p = text.partition(":")
        port = _port(p)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not _HOST_RE.match(host):
            raise OptionError(f"expected 'sim' or HOST[:PORT], got {value!r}") from None
    return TargetSpec(host, port)


def parse_source(value: str) -> str:
    """A local IP address (the outside source of ACL checks): it must be bindable here.

    A non-local address would make every ACL check fail as if the target refused us; binding
    a socket to port 0 proves the address is ours without sending anything.
    """
    try:
        addr = ipaddress.ip_address(value.strip())
    except ValueError:
        raise OptionError(f"not an IP address: {value!r}") from None
    family = socket.AF_INET6 if addr.version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.bind((str(addr), 0))
    except OSError as exc:
        raise OptionError(
            f"{addr} is not an address of this host ({exc.strerror or exc}); give a local "
            "address outside the users' permitted lists"
        ) from None
    return str(addr)


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise OptionError(f"not a number of seconds: {value!r}") from None
    if not math.isfinite(seconds):
        raise OptionError(f"must be a finite number of seconds, got {value!r}")
    return seconds


def parse_fail_delay(value: str) -> float:
    """Seconds (0..60) the simulator waits before answering a failed login."""
    seconds = _seconds(value)
    if not 0 <= seconds <= MAX_FAIL_DELAY:
        raise OptionError(f"must be between 0 and {MAX_FAIL_DELAY:g} s, got {value!r}")
    return seconds


def parse_timeout(value: str) -> float:
    """A finite, positive number of seconds."""
    seconds = _seconds(value)
    if seconds <= 0:
        raise OptionError(f"must be more than 0 s, got {value!r}")
    return seconds


def parse_profile_path(value: str) -> Path:
    """An existing regular file (stat only: a FIFO is never opened, so nothing hangs)."""
    path = Path(value).expanduser()
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise OptionError(f"no such file: {value}") from None
    except OSError as exc:
        raise OptionError(f"cannot read {value}: {exc.strerror or exc}") from None
    refused = not_regular(mode, "a profile file")
    if refused:
        raise OptionError(f"{value} {refused}")
    return path.resolve()


@dataclass(frozen=True, eq=False)
class Baseline:
    """A loaded and checked ``--baseline`` report.json.

    ``str()`` is the path as the user gave it, so :func:`pytest_argv` hands the same file to
    the plugin and the reports name it as typed.
    """

    name: str
    path: Path
    data: Mapping[str, Any] = field(repr=False)

    def __str__(self) -> str:
        return self.name


def parse_baseline(value: str) -> Baseline:
    """A report.json of an earlier run, read and checked now: before any test runs.

    Stat first (a FIFO is never opened, a device never read), then
    :func:`amicheck.fleet.baseline.load_report`; a fleet.json is refused here because a run
    can only be compared with a run.
    """
    text = value.strip()
    if not text:
        raise OptionError("empty path")
    if text.startswith("-"):  # so that pytest_argv's "--ami-baseline NAME" stays one value
        text = os.path.join(".", text)
    path = Path(text).expanduser()
    try:
        st = path.stat()
    except FileNotFoundError:
        raise OptionError(f"no such file: {text}") from None
    except OSError as exc:
        raise OptionError(f"cannot read {text}: {exc.strerror or exc}") from None
    refused = not_regular(st.st_mode, "a report.json")
    if refused:
        raise OptionError(f"{text} {refused}")
    if st.st_size > MAX_BASELINE_BYTES:
        raise OptionError(f"{text}: {st.st_size} bytes, too big for a report.json")
    from amicheck.fleet.baseline import BaselineError, load_report
    from amicheck.report.json_writer import SCHEMA

    try:
        data = load_report(path)
    except BaselineError as exc:
        raise OptionError(str(exc)) from None
    if data.get("schema") != SCHEMA:
        raise OptionError(f"{text}: a {data.get('schema')} report; a run's baseline is the "
                          f"report.json ({SCHEMA}) of an earlier run")
    return Baseline(text, path.resolve(), data)


def parse_path(value: str) -> Path:
    """A path; checked where it is used (the report directory before the run)."""
    if not value.strip():
        raise OptionError("empty path")
    return Path(os.path.normpath(Path(value).expanduser().absolute()))


def parse_fault(value: str) -> str:
    """A fault name; checked against the simulator's list when the run is configured."""
    name = value.strip()
    if not name:
        raise OptionError("empty fault name")
    return name


# --- the table -------------------------------------------------------------------------------

Kind = Literal["value", "flag", "append"]
IniType = Literal["string", "bool", "args"]
_INI_TYPES: dict[Kind, IniType] = {"value": "string", "flag": "bool", "append": "args"}


@dataclass(frozen=True)
class Option:
    """One amicheck option, as pytest and ``amicheck run`` both spell it.

    ``name`` gives ``--ami-NAME`` and the ini key ``ami_NAME`` (pytest) and ``--NAME``
    (``amicheck run``). ``pytest=False`` options exist only in ``amicheck run``; ``path``
    values from an ini file are taken relative to that file.
    """

    name: str
    help: str
    kind: Kind = "value"
    parse: Callable[[str], Any] | None = None
    metavar: str | None = None
    pytest: bool = True
    path: bool = False
    run_default: str | None = None
    ini_help: str = ""

    @property
    def dest(self) -> str:
        return "ami_" + self.name.replace("-", "_")

    @property
    def pytest_flag(self) -> str:
        return f"--ami-{self.name}"

    @property
    def run_flag(self) -> str:
        return f"--{self.name}"

    @property
    def ini_type(self) -> IniType:
        return _INI_TYPES[self.kind]

    def convert(self, text: str, flag: str) -> Any:
        """``parse(text)``, or a :class:`pytest.UsageError` naming ``flag``."""
        if self.parse is None:
            return text
        try:
            return self.parse(text)
        except OptionError as exc:
            raise pytest.UsageError(f"{flag}: {exc}") from None


OPTIONS: tuple[Option, ...] = (
    Option("target", "AMI endpoint to check: 'sim' (default) starts the embedded UCM simulator; "
           "HOST[:PORT] a real device (port defaults to the profile's)",
           parse=parse_target, metavar="sim|HOST[:PORT]", run_default="sim",
           ini_help="AMI endpoint: sim or HOST[:PORT]"),
    Option("profile", "target profile (TOML); default: the built-in compliant profile",
           parse=parse_profile_path, metavar="FILE", path=True,
           ini_help="target profile file (relative to the ini file)"),
    Option("fault", "simulator fault profile to switch on (repeatable; simulator only; "
           "'amicheck faults' lists them)", kind="append", parse=parse_fault, metavar="NAME",
           ini_help="simulator fault profiles"),
    Option("allow-destructive", "run checks that change state on a real target", kind="flag",
           ini_help="run state-changing checks"),
    Option("allow-bruteforce", "run password-guessing checks against a real target",
           kind="flag", ini_help="run password guessing"),
    Option("outside-source", "a local address outside the users' permitted lists, for ACL "
           "checks against a real target (the simulator uses 127.0.0.2)",
           parse=parse_source, metavar="IP", ini_help="address outside the ACL for ACL checks"),
    Option("report-dir", f"where junit.xml, report.html and report.json go (default: "
           f"{DEFAULT_REPORT_DIR}/)", parse=parse_path, metavar="DIR", path=True,
           run_default=DEFAULT_REPORT_DIR, ini_help="report directory (relative to the ini file)"),
    Option("pcap", "write each test's AMI traffic as a pcap into the report directory "
           "(secrets redacted)", kind="flag", ini_help="write pcaps of each test's AMI traffic"),
    Option("fail-delay", "simulator only: delay before a failed login is answered (default: "
           "the stock 1 s; shorter for fast self-tests)", parse=parse_fail_delay,
           metavar="SECONDS", ini_help="simulator failed-login delay in seconds"),
    Option("baseline", "report.json of an earlier run: regressions against it (new failures "
           "or errors) are marked in every report, and only they fail the run",
           parse=parse_baseline, metavar="OLD.json", path=True,
           ini_help="baseline report.json (relative to the ini file)"),
    Option("suites", "suites directory (default: the shipped one)", metavar="DIR",
           pytest=False),
    Option("timeout", f"target probe timeout (default {PROBE_TIMEOUT:g} s)",
           parse=parse_timeout, metavar="SECONDS", pytest=False, run_default=str(PROBE_TIMEOUT)),
)


def add_pytest_options(parser: pytest.Parser) -> None:
    """The ``--ami-*`` options and ``ami_*`` ini keys (``pytest_addoption``)."""
    group = parser.getgroup("amicheck", "amicheck: AMI compliance checks")
    for opt in OPTIONS:
        if not opt.pytest:
            continue
        if opt.kind == "flag":
            group.addoption(opt.pytest_flag, dest=opt.dest, action="store_true", default=None,
                            help=opt.help)
        else:
            flag = opt.pytest_flag

            def convert(text: str, opt: Option = opt, flag: str = flag) -> Any:
                return opt.convert(text, flag)

            group.addoption(flag, dest=opt.dest, default=None, type=convert,
                            action="append" if opt.kind == "append" else "store",
                            metavar=opt.metavar, help=opt.help)
        default: Any = {"flag": False, "append": []}.get(opt.kind, "")
        parser.addini(opt.dest, opt.ini_help or opt.help, type=opt.ini_type, default=default)


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """``amicheck run``'s flags: raw strings, checked by the run before pytest starts."""
    for opt in OPTIONS:
        if opt.kind == "flag":
            parser.add_argument(opt.run_flag, dest=opt.dest, action="store_true", help=opt.help)
        elif opt.kind == "append":
            parser.add_argument(opt.run_flag, dest=opt.dest, action="append", default=[],
                                metavar=opt.metavar, help=opt.help)
        else:
            parser.add_argument(opt.run_flag, dest=opt.dest, default=opt.run_default,
                                metavar=opt.metavar, help=opt.help)


def parse_run_values(ns: argparse.Namespace) -> dict[str, Any]:
    """The checked values of ``amicheck run``'s flags, by dest; UsageError names the flag."""
    values: dict[str, Any] = {}
    for opt in OPTIONS:
        raw = getattr(ns, opt.dest)
        if opt.kind == "flag":
            values[opt.dest] = bool(raw)
        elif opt.kind == "append":
            values[opt.dest] = [opt.convert(r, opt.run_flag) for r in raw]
        else:
            values[opt.dest] = None if raw is None else opt.convert(raw, opt.run_flag)
    return values


def pytest_argv(values: Mapping[str, Any]) -> list[str]:
    """The pytest arguments that carry ``values`` (checked, by dest) to the plugin."""
    argv: list[str] = []
    for opt in OPTIONS:
        if not opt.pytest:
            continue
        value = values.get(opt.dest)
        if opt.kind == "flag":
            if value:
                argv.append(opt.pytest_flag)
        elif opt.kind == "append":
            for v in value or ():
                argv += [opt.pytest_flag, str(v)]
        elif value is not None:
            argv += [opt.pytest_flag, repr(value) if isinstance(value, float) else str(value)]
    return argv
