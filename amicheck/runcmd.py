"""``amicheck run``: the compliance suites under pytest, input checked first.

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

Its own module, apart from the ``amicheck`` dispatcher (cli.py), so that a forked fleet worker
(fleet/forkspawn.py) runs exactly this without importing the dispatcher that imports the fleet.
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

__all__ = ["main_run", "run_parser", "probe_ami", "find_suites", "TargetCheckError",
           "EXIT_OK", "EXIT_FAILED", "EXIT_USAGE", "EXIT_NO_VERDICT", "EXIT_INTERRUPTED"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NO_VERDICT, EXIT_INTERRUPTED = 0, 1, 2, 5, 130
PROBE_TIMEOUT = 3.0

RUN_HELP = "run the compliance suites (default: against the embedded simulator)"
RUN_DESCRIPTION = ("Run the compliance suites. Arguments after '--' go to pytest "
                   "(e.g. -- -n 4 -k tls).")
RUN_EPILOG = ("exit status: 0 compliant; 1 failures or errors; 2 bad input; 5 no verdict "
              "(no check ran: none selected, or all skipped); 130 interrupted")


class TargetCheckError(Exception):
    """The target is unreachable or does not speak plaintext AMI; the message says which."""


def err(text: str) -> None:
    """One ``amicheck: error: ...`` line on stderr."""
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


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit status 2), not usage + error."""

    def error(self, message: str) -> Any:  # argparse's signature says NoReturn
        err(f"{self.prog}: {message} (see '{self.prog} -h')")
        raise SystemExit(EXIT_USAGE)


def run_parser() -> argparse.ArgumentParser:
    """The parser of ``amicheck run``'s own arguments (the option table's run options)."""
    from amicheck.plugin.options import add_run_arguments

    p = OneLineParser(prog="amicheck run", description=RUN_DESCRIPTION, epilog=RUN_EPILOG)
    add_run_arguments(p)
    return p


# --- the command -----------------------------------------------------------------------------


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
        err(str(exc))
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


def silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not complain."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def split_at_dashes(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """``(ours, pytest's)``: the arguments before and after the first ``--``."""
    args = list(argv)
    if "--" not in args:
        return args, []
    cut = args.index("--")
    return args[:cut], args[cut + 1 :]


def guarded(command: Callable[[], int]) -> int:
    """``command()``, with Ctrl-C and a reader that went away as exit statuses, not tracebacks."""
    try:
        return command()
    except KeyboardInterrupt:
        err("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # output piped into head(1) and the like
        silence_stdout()
        return EXIT_OK


def main_run(argv: Sequence[str]) -> int:
    """``amicheck run ARGV...``; returns the exit status (never raises on bad input)."""
    args_list, pytest_args = split_at_dashes(argv)
    try:
        args = run_parser().parse_args(args_list)
    except SystemExit as exc:  # argparse printed usage or help
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    return guarded(lambda: _cmd_run(args, pytest_args))
