"""``amicheck``: run the compliance suites, serve the simulator, read captures.

The dispatcher: ``run`` lives in runcmd.py (its input checks, exit statuses and the suites
search order are described there), ``sim`` in sim/cli.py, ``init``/``fleet``/``merge``/``diff``
in fleet/cli.py, ``bench`` in the checkout's benchmarks/; ``pcap``, ``faults`` and
``requirements`` are small enough to live here.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from amicheck.runcmd import (
    EXIT_INTERRUPTED,
    EXIT_NO_VERDICT,
    EXIT_OK,
    EXIT_USAGE,
    RUN_HELP,
    OneLineParser,
    TargetCheckError,
    find_suites,
    guarded,
    main_run,
    probe_ami,
    silence_stdout,
    split_at_dashes,
)
from amicheck.runcmd import err as _err

__all__ = ["main", "probe_ami", "find_suites", "TargetCheckError", "build_parser",
           "EXIT_OK", "EXIT_USAGE", "EXIT_NO_VERDICT", "EXIT_INTERRUPTED"]


# --- argument parsing ------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The dispatcher's parser: the commands it parses itself, and the names of the others."""
    p = OneLineParser(
        prog="amicheck",
        description="AMI test-and-compliance harness for Grandstream UCM6XXX PBXs.",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("run", help=f"{RUN_HELP} (see 'amicheck run -h')", add_help=False)
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
        silence_stdout()
        return EXIT_OK
    except READ_ERRORS as exc:
        _err(f"{path}: not a readable capture ({exc})")
        return EXIT_USAGE
    if count == 0:
        print(f"no AMI traffic found in {path}", file=sys.stderr)
    return EXIT_OK


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
    "run": main_run,
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
    args_list, pytest_args = split_at_dashes(args_list)
    parser = build_parser()
    try:
        args = parser.parse_args(args_list)
    except SystemExit as exc:  # argparse printed usage or help
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if pytest_args:
        _err("arguments after '--' are for 'amicheck run' only")
        return EXIT_USAGE
    if args.command in COMMANDS:
        return guarded(lambda: COMMANDS[args.command](args))
    parser.print_help()
    return EXIT_USAGE
