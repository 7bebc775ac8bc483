"""``amicheck``: run the compliance suites, serve the simulator, read captures.

``amicheck run`` checks its input before pytest starts (profile, faults, and for a real target
that something answers with an AMI banner), so bad input ends with one line and exit status 2
instead of a screen of errors. Everything after ``--`` goes to pytest unchanged.

Where the suites come from: ``--suites DIR``, else ``$AMICHECK_SUITES``, else the package
``amicheck.suites`` if one is installed, else a ``suites`` directory inside the package, else
``suites/`` next to the package (the source checkout: what ``pip install -e .`` uses), else
``<prefix>/share/amicheck/suites`` (where a wheel puts them as data files).

Exit status: 0 compliant (checks ran, none failed or errored); 1 failures or errors (with
``--baseline OLD.json``: only regressions, new failures or errors; known ones exit 0); 2 bad
input (including suites that do not collect); 5 no verdict (no check ran: none selected, or
every one skipped); 130 interrupted; other values are pytest's (3 internal error, 4 usage).
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from amicheck.report.model import RunReport

__all__ = ["main", "probe_ami", "find_suites", "TargetCheckError", "build_parser"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NO_VERDICT, EXIT_INTERRUPTED = 0, 1, 2, 5, 130
PROBE_TIMEOUT = 3.0


class TargetCheckError(Exception):
    """The target is unreachable or does not speak plaintext AMI; the message says which."""


def _err(text: str) -> None:
    print(f"amicheck: error: {text}", file=sys.stderr)


# --- target probe ----------------------------------------------------------------------------


def _recv_some(sock: socket.socket, deadline: float) -> bytes | None:
    """Bytes until a newline or the deadline; b"" on close, None on timeout with nothing."""
    data = b""
    while b"\n" not in data:
        left = deadline - time.monotonic()
        if left <= 0:
            return data or None
        sock.settimeout(left)
        try:
            chunk = sock.recv(4096)
        except TimeoutError:
            return data or None
        except OSError:
            return data
        if not chunk:
            return data
        data += chunk
    return data


def _classify(data: bytes, where: str) -> str:
    if data.startswith(b"HTTP/") or data.lstrip()[:15].lower().startswith((b"<!doctype", b"<html")):
        return f"{where} is an HTTP server, not AMI"
    if data[:1] in (b"\x15", b"\x16") and data[1:2] == b"\x03":
        return f"{where} speaks TLS, not plaintext AMI (give the plaintext AMI port)"
    if data.startswith(b"SSH-"):
        return f"{where} is an SSH server, not AMI"
    return f"{where} did not send an AMI banner (got {data[:40]!r})"


def probe_ami(host: str, port: int, timeout: float = PROBE_TIMEOUT) -> str:
    """Connect and read the ``Asterisk Call Manager/...`` banner; returns it.

    Raises:
        TargetCheckError: refused, unreachable, silent, or not AMI (HTTP, TLS, other).
    """
    where = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except ConnectionRefusedError:
        raise TargetCheckError(f"{where}: connection refused (nothing listens there)") from None
    except TimeoutError:
        raise TargetCheckError(f"{where}: no answer within {timeout:g} s (unreachable or "
                               "filtered)") from None
    except socket.gaierror as exc:
        raise TargetCheckError(f"{host}: cannot resolve host name ({exc.strerror})") from None
    except OSError as exc:
        raise TargetCheckError(f"{where}: cannot connect ({exc.strerror or exc})") from None
    with sock:
        deadline = time.monotonic() + timeout
        data = _recv_some(sock, deadline)
        if data and data.startswith(b"Asterisk Call Manager/"):
            return data.split(b"\n", 1)[0].decode("utf-8", "replace").strip()
        if data:
            raise TargetCheckError(_classify(data, where))
        if data == b"":
            raise TargetCheckError(f"{where} closed the connection without an AMI banner")
        # Silent, so not AMI (AMI speaks first). HTTP and TLS servers wait for the client: ask
        # an HTTP question and classify the reply (a TLS server answers with an alert or hangs up)
        try:
            sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        except OSError:
            raise TargetCheckError(f"{where} sent no AMI banner and dropped the connection") \
                from None
        reply = _recv_some(sock, time.monotonic() + min(timeout, 2.0))
        if reply:
            raise TargetCheckError(_classify(reply, where))
        if reply == b"":
            raise TargetCheckError(f"{where} sent no AMI banner and closed the connection "
                                   "(a TLS port spoken to in plaintext?)")
        raise TargetCheckError(f"{where} sent no AMI banner within {timeout:g} s")


# --- suites ----------------------------------------------------------------------------------


def find_suites(explicit: str | None = None) -> Path:
    """The suites directory (see the module docstring for the search order)."""
    from amicheck.plugin.ids import shipped_suite_candidates

    if explicit:
        candidates = [Path(explicit)]
    elif os.environ.get("AMICHECK_SUITES"):
        candidates = [Path(os.environ["AMICHECK_SUITES"])]
    else:
        candidates = shipped_suite_candidates()
    for c in candidates:
        if c.is_dir():
            return c.resolve()
    raise TargetCheckError(
        f"compliance suites not found (looked in {', '.join(str(c) for c in candidates)}); "
        "use --suites DIR or set AMICHECK_SUITES"
    )


# --- argument parsing ------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit status 2), not usage + error."""

    def error(self, message: str) -> Any:  # argparse's signature says NoReturn
        _err(f"{self.prog}: {message} (see '{self.prog} -h')")
        raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    from amicheck.plugin.options import add_run_arguments

    p = _Parser(
        prog="amicheck",
        description="AMI test-and-compliance harness for Grandstream UCM6XXX PBXs.",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    run = sub.add_parser(
        "run", help="run the compliance suites (default: against the embedded simulator)",
        description="Run the compliance suites. Arguments after '--' go to pytest "
        "(e.g. -- -n 4 -k tls).",
        epilog="exit status: 0 compliant; 1 failures or errors; 2 bad input; 5 no verdict "
        "(no check ran: none selected, or all skipped); 130 interrupted",
    )
    add_run_arguments(run)
    sub.add_parser("sim", help="serve the UCM simulator in the foreground (see 'amicheck sim -h')",
                   add_help=False)
    sub.add_parser("bench", help="client benchmarks (see 'amicheck bench -h')", add_help=False)
    for name, text in (
        ("init", "write a first profile from one credential"),
        ("fleet", "audit many targets at once"),
        ("merge", "combine fleet shards into one report"),
        ("diff", "what got worse between two reports"),
    ):
        sub.add_parser(name, help=f"{text} (see 'amicheck {name} -h')", add_help=False)
    pcap = sub.add_parser("pcap", help="print the AMI messages of a capture file")
    pcap.add_argument("file", metavar="FILE", help="pcap or pcapng file")
    pcap.add_argument("--port", action="append", default=[], metavar="PORT",
                      help="also treat this TCP port as AMI (repeatable)")
    pcap.add_argument("--brief", action="store_true", help="one line per message, no headers")
    sub.add_parser("faults", help="list the simulator fault profiles")
    reqs = sub.add_parser("requirements", help="list the requirement catalogue")
    reqs.add_argument("--area", help="only this area (AUTH, TLS, ...)")
    return p


# --- commands --------------------------------------------------------------------------------


def _plugin_registered() -> bool:
    try:
        eps = metadata.entry_points(group="pytest11")
    except Exception:  # noqa: BLE001 - broken metadata: fall back to loading it explicitly
        return False
    return any(ep.value.split(":")[0] == "amicheck.plugin" for ep in eps)


def _one_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return "; ".join(lines) if lines else type(exc).__name__


def _preflight(args: argparse.Namespace) -> list[str]:
    """Check every input; returns the --ami-* options for pytest. Raises TargetCheckError.

    The values are checked by the option table's parsers (the same the plugin uses), the
    profile is loaded, the report directory proven writable, the simulator started once with
    the faults (or the real target probed), all before pytest starts.
    """
    import pytest

    from amicheck.errors import AmiCheckError, ProfileError
    from amicheck.plugin.options import parse_run_values, pytest_argv
    from amicheck.report.files import ReportDirError, check_report_dir

    try:
        values = parse_run_values(args)
    except pytest.UsageError as exc:
        raise TargetCheckError(str(exc)) from None
    spec = values["ami_target"]
    from amicheck.profile import default_profile, load_profile

    profile_path = values["ami_profile"]
    try:
        profile = load_profile(profile_path) if profile_path else default_profile()
    except (ProfileError, OSError) as exc:
        raise TargetCheckError(_one_line(exc)) from None
    try:
        check_report_dir(values["ami_report_dir"])
    except ReportDirError as exc:
        raise TargetCheckError(f"--report-dir: {exc}") from None
    if spec.is_sim:
        from amicheck.sim import Simulator
        from amicheck.sim.faults import resolve_faults

        try:
            faults = resolve_faults(values["ami_fault"])
            with Simulator(profile, faults=tuple(faults), host="127.0.0.1", port=0, tls_port=0):
                pass
        except AmiCheckError as exc:
            raise TargetCheckError(f"the simulator refused the input: {_one_line(exc)}") \
                from None
    else:
        for opt in ("fault", "fail-delay"):
            if values["ami_" + opt.replace("-", "_")] not in (None, []):
                raise TargetCheckError(f"--{opt} applies to the simulator only (target is "
                                       f"{spec})")
        assert spec.host is not None
        probe_ami(spec.host, spec.port or profile.settings.port, values["ami_timeout"])
    return pytest_argv(values)


def _exit_status(code: int, report: RunReport | None) -> int:
    """amicheck's exit status from pytest's and the report (see the module docstring).

    With ``--baseline`` only regressions fail the run: the plugin (which alone knows whether
    pytest stopped early) turns pytest's 1 into 0 when every failure was already in the
    baseline, so the status here stays a function of pytest's.
    """
    import pytest

    if code == int(pytest.ExitCode.INTERRUPTED):
        # Ctrl-C, or collection errors (bad requirement IDs: bad input)
        return EXIT_INTERRUPTED if report is not None and report.interrupted else EXIT_USAGE
    if code == int(pytest.ExitCode.USAGE_ERROR):
        return EXIT_USAGE
    if code == int(pytest.ExitCode.TESTS_FAILED):
        return EXIT_FAILED
    if code == int(pytest.ExitCode.NO_TESTS_COLLECTED):
        return EXIT_NO_VERDICT
    if code == int(pytest.ExitCode.OK):
        return EXIT_NO_VERDICT if report is None or report.no_verdict else EXIT_OK
    return code


def _cmd_run(args: argparse.Namespace, pytest_args: list[str]) -> int:
    import pytest

    try:
        suites = find_suites(args.ami_suites)
        opts = _preflight(args)
    except TargetCheckError as exc:
        _err(str(exc))
        return EXIT_USAGE
    report_dir = Path(opts[opts.index("--ami-report-dir") + 1])
    argv = [str(suites), *opts, "-p", "no:cacheprovider", "-o", "ami_require_ids=true",
            # this process imported the amicheck package before pytest could mark the plugin's
            # package for assertion rewriting; the plugin itself needs none
            "-W", "ignore:Module already imported so cannot be rewritten; amicheck"
            ":pytest.PytestAssertRewriteWarning"]
    if not _plugin_registered():
        argv[1:1] = ["-p", "amicheck.plugin"]
    argv += pytest_args
    started = time.time()
    code = int(pytest.main(argv))
    from amicheck.report.summary import print_summary

    report = print_summary(report_dir, sys.stdout, since=started)
    if report is None and code == int(pytest.ExitCode.NO_TESTS_COLLECTED):
        print("amicheck NO VERDICT: no checks ran", file=sys.stdout)
    return _exit_status(code, report)


def _cmd_pcap(args: argparse.Namespace) -> int:
    ports: list[int] = []
    for text in args.port:
        if not (text.isascii() and text.isdigit()) or not 0 < int(text) < 65536:
            _err(f"--port: port must be 1-65535, got {text!r}")
            return EXIT_USAGE
        ports.append(int(text))
    from amicheck.capture import CaptureFileError, check_capture_path

    path = Path(args.file)
    try:
        check_capture_path(path)  # stat first: a FIFO is never opened, a device never read
    except CaptureFileError as exc:
        _err(str(exc))
        return EXIT_USAGE
    from amicheck.capture import READ_ERRORS, format_ami, read_ami

    count = 0
    try:
        for line in format_ami(read_ami(path, ports=ports), headers=not args.brief):
            print(line)
            count += not line.startswith("    ")
    except BrokenPipeError:  # the reader went away (`amicheck pcap f | head`): not an error
        _silence_stdout()
        return EXIT_OK
    except READ_ERRORS as exc:
        _err(f"{path}: not a readable capture ({exc})")
        return EXIT_USAGE
    if count == 0:
        print(f"no AMI traffic found in {path}", file=sys.stderr)
    return EXIT_OK


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not complain."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _cmd_faults(args: argparse.Namespace) -> int:
    from amicheck.sim.faults import FAULTS

    width = max(len(n) for n in FAULTS)
    for name, fault in FAULTS.items():
        fails = ", ".join((*fault.fails, *(f"{r} (slow)" for r in fault.fails_slow)))
        print(f"{name:<{width}}  {fault.description}  [fails {fails}]")
    return EXIT_OK


def _cmd_requirements(args: argparse.Namespace) -> int:
    from amicheck.requirements import CATALOGUE

    area: str | None = args.area
    rows = [r for r in CATALOGUE.values()
            if area is None or r.area.upper() == area.upper().removeprefix("AMI-")]
    if not rows:
        _err(f"no requirements in area {area!r}")
        return EXIT_USAGE
    for r in rows:
        print(f"{r.id:<13} {r.severity.value:<8} {r.title}")
    return EXIT_OK


def _delegate(sub_main: Callable[[list[str]], int], argv: list[str]) -> int:
    try:
        return int(sub_main(argv))
    except SystemExit as exc:  # argparse --help / usage errors inside the subcommand
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE


def _sim_main(argv: list[str]) -> int:
    from amicheck.sim.cli import main as sim_main

    return _delegate(sim_main, argv)


def _bench_main(argv: list[str]) -> int:
    # The benchmarks live in the checkout (benchmarks/), not in the wheel: an editable
    # install maps only amicheck*, so put the checkout on the path when it is there.
    root = Path(__file__).resolve().parent.parent
    if (root / "benchmarks" / "cli.py").is_file() and str(root) not in sys.path:
        sys.path.insert(0, str(root))
    try:
        from benchmarks.cli import main as bench_main
    except ImportError:
        _err("the benchmarks are not available in this installation")
        return EXIT_USAGE
    return _delegate(bench_main, argv)


#: Subcommands with their own argument parser: ``amicheck NAME ARGS...`` -> ``main(ARGS)``.
#: (``init``, ``fleet``, ``merge`` and ``diff`` join here from amicheck.fleet.cli.)
def _fleet_main(name: str) -> Callable[[list[str]], int]:
    def run(argv: list[str]) -> int:
        from amicheck.fleet import cli as fleet_cli

        sub_main: Callable[[list[str]], int] = getattr(fleet_cli, f"main_{name}")
        return _delegate(sub_main, argv)

    return run


DELEGATED: dict[str, Callable[[list[str]], int]] = {
    "sim": _sim_main,
    "bench": _bench_main,
    **{name: _fleet_main(name) for name in ("init", "fleet", "merge", "diff")},
}

#: Subcommands parsed by :func:`build_parser`, by name.
COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "pcap": _cmd_pcap,
    "faults": _cmd_faults,
    "requirements": _cmd_requirements,
}


def main(argv: Sequence[str] | None = None) -> int:
    """The ``amicheck`` command; returns the exit status (never raises on bad input)."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] in DELEGATED:
        return DELEGATED[args_list[0]](args_list[1:])
    pytest_args: list[str] = []
    if "--" in args_list:
        cut = args_list.index("--")
        args_list, pytest_args = args_list[:cut], args_list[cut + 1 :]
    parser = build_parser()
    try:
        args = parser.parse_args(args_list)
    except SystemExit as exc:  # argparse printed usage or help
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if pytest_args and args.command != "run":
        _err("arguments after '--' are for 'amicheck run' only")
        return EXIT_USAGE
    try:
        if args.command == "run":
            return _cmd_run(args, pytest_args)
        if args.command in COMMANDS:
            return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        _err("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # output piped into head(1) and the like
        _silence_stdout()
        return EXIT_OK
    parser.print_help()
    return EXIT_USAGE
