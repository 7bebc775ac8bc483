"""``amicheck fleet | merge | diff | init``: each a ``main_*(argv) -> int`` with its own parser.

Exit status (all four): 0 fine; 1 something failed (fleet, merge: a target not compliant, or
with ``--baseline`` only: something worse than the baseline; diff: something got worse);
2 bad input (one line per problem on stderr, never a traceback); 130 interrupted.
Arguments of ``fleet`` after ``--`` go to every target's pytest (e.g. ``-- -m "not slow"``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

__all__ = ["main_fleet", "main_merge", "main_diff", "main_init", "main", "EXIT_OK",
           "EXIT_FAILED", "EXIT_USAGE", "EXIT_INTERRUPTED"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
_MAX_LISTED = 10


def _err(prog: str, text: str) -> None:
    for line in text.splitlines() or [""]:
        print(f"amicheck {prog}: error: {line}", file=sys.stderr)


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace | int:
    try:
        return parser.parse_args(list(argv))
    except SystemExit as exc:  # --help or a usage error (argparse printed it)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text!r}")
    return int(text)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 86400:
        raise argparse.ArgumentTypeError(f"must be seconds in (0, 86400], got {text!r}")
    return value


# --- fleet ---------------------------------------------------------------------------------


def fleet_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="amicheck fleet",
        description="Audit every target of a fleet file concurrently and write a fleet report "
        "(fleet.html, fleet.json, junit.xml, targets/<name>/). Arguments after '--' go to "
        "each target's pytest (e.g. -- -m 'not slow').")
    p.add_argument("fleet_file", metavar="FLEET.toml", help="the fleet file")
    p.add_argument("--report-dir", default="reports", metavar="DIR",
                   help="where the fleet report goes (default: reports)")
    p.add_argument("--jobs", "-j", type=_positive_int, metavar="N",
                   help="targets audited at once (default: sized for this machine)")
    p.add_argument("--shard", metavar="K/N",
                   help="audit only shard K of N (a stable partition by target name)")
    p.add_argument("--baseline", metavar="OLD.json",
                   help="a previous fleet.json: mark regressions, and fail only on them")
    p.add_argument("--pcap", action="store_true", help="write a pcap per test")
    p.add_argument("--deadline", type=_seconds, metavar="SECONDS",
                   help="per-target wall-clock limit for every target (overrides the file)")
    p.add_argument("--spawn", choices=("auto", "exec", "fork"), default="auto",
                   help="start each target's run as a fresh 'python -m amicheck run' (exec) "
                   "or by forking this warmed-up process (fork: ~30%% less CPU, shared "
                   "memory; POSIX only); auto (default): fork where that is safe")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress display")
    return p


def _split_dashdash(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    argv = list(argv)
    if "--" in argv:
        cut = argv.index("--")
        return argv[:cut], argv[cut + 1:]
    return argv, []


def _profile_label(base: Path | None) -> Callable[..., str]:
    from amicheck.fleet.spec import FleetTarget

    def label(t: FleetTarget) -> str:
        if t.profile is None:
            return "built-in"
        if base is not None:
            try:
                return Path(os.path.relpath(t.profile, base)).as_posix()
            except ValueError:  # another drive (Windows)
                pass
        return t.profile.as_posix()

    return label


def _print_summary(report: object, paths: Sequence[Path], out: TextIO) -> None:
    from amicheck.fleet.model import FleetReport, TargetStatus
    from amicheck.report.model import Outcome

    assert isinstance(report, FleetReport)
    counts = report.status_counts()
    print("", file=out)
    print("=" * 72, file=out)
    status = "COMPLIANT" if report.ok else "NOT COMPLIANT"
    listed = ", ".join(f"{counts[s]} {s.value}" for s in TargetStatus if counts[s])
    print(f"amicheck fleet {report.fleet} {status}: {len(report.rows)} target(s), {listed}",
          file=out)
    if report.baseline is not None:
        print(f"baseline {report.baseline}: {report.regressions} regression(s)", file=out)
    worst = [r for r in report.worst_first() if r.status is not TargetStatus.COMPLIANT]
    for row in worst[:_MAX_LISTED]:
        if row.error:
            detail = row.error
        else:
            detail = (f"{row.count(Outcome.FAIL)} failed, {row.count(Outcome.ERROR)} errors: "
                      + " ".join(row.failing()[:6]) + (" ..." if len(row.failing()) > 6 else ""))
        new = f" [{len(row.regressions)} new]" if row.regressions else ""
        print(f"  {row.status.value.upper():13} {row.name}{new}  {detail}"[:160], file=out)
    if len(worst) > _MAX_LISTED:
        print(f"  ... and {len(worst) - _MAX_LISTED} more (see fleet.html)", file=out)
    for p in paths:
        print(f"{p.name:>10}: {p}", file=out)


def _exit_for(report: object) -> int:
    from amicheck.fleet.model import FleetReport

    assert isinstance(report, FleetReport)
    if report.baseline is not None:
        return EXIT_FAILED if report.regressions else EXIT_OK
    return EXIT_OK if report.ok else EXIT_FAILED


def main_fleet(argv: Sequence[str] | None = None) -> int:
    """``amicheck fleet FLEET.toml [--report-dir DIR] [--jobs N] [--shard K/N] ...``."""
    own, pytest_args = _split_dashdash(sys.argv[1:] if argv is None else argv)
    args = _parse(fleet_parser(), own)
    if isinstance(args, int):
        return args
    from dataclasses import replace

    from amicheck import __version__
    from amicheck.fleet import baseline as bl
    from amicheck.fleet.model import FleetReport, requirements_of
    from amicheck.fleet.output import write_reports
    from amicheck.fleet.progress import Progress
    from amicheck.fleet.runner import default_jobs, run_targets
    from amicheck.fleet.spec import FleetError, load_fleet, parse_shard
    from amicheck.report.json_writer import from_json

    try:
        fleet = load_fleet(args.fleet_file)
        shard = parse_shard(args.shard) if args.shard else None
    except FleetError as exc:
        _err("fleet", str(exc))
        return EXIT_USAGE
    old = None
    if args.baseline:
        try:
            old = bl.load_report(args.baseline)
            bl.compare(old, {"schema": "amicheck-fleet/1", "targets": []})
        except bl.BaselineError as exc:
            _err("fleet", f"--baseline: {exc}")
            return EXIT_USAGE
    from amicheck.fleet.forkspawn import available, fork_safe

    spawn = args.spawn
    if spawn == "fork" and not available():
        _err("fleet", "--spawn fork needs os.fork (POSIX); use --spawn exec")
        return EXIT_USAGE
    if spawn == "auto":
        spawn = "fork" if fork_safe() else "exec"
    targets = fleet.select(shard)
    if args.deadline:
        targets = tuple(replace(t, deadline_s=args.deadline) for t in targets)
    jobs = args.jobs or default_jobs(len(targets))
    report_dir = Path(args.report_dir).resolve()
    targets_dir = report_dir / "targets"
    shard_text = f"{shard[0]}/{shard[1]}" if shard else "1/1"
    progress = None if args.quiet else Progress(sys.stderr)
    if progress is not None:
        print(f"fleet: auditing {len(targets)} of {len(fleet.targets)} target(s)"
              + (f" (shard {shard_text})" if shard else "") + f", {jobs} at once, into "
              f"{report_dir}", file=sys.stderr)
    started = datetime.now(UTC)
    t0 = time.monotonic()
    label = _profile_label(fleet.path.parent if fleet.path else None)
    rows, interrupted = run_targets(
        targets, targets_dir, jobs=jobs, label=label, pcap=args.pcap,
        pytest_args=[*fleet.extra_args, *pytest_args], on_progress=progress,
        spawn=spawn)
    if progress is not None:
        progress.close()
    reports = []
    for t in targets:
        try:
            reports.append(from_json((targets_dir / t.name / "report.json").read_text("utf-8")))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    report = FleetReport(
        fleet=fleet.name, rows=tuple(sorted(rows, key=lambda r: r.name)),
        requirements=requirements_of(reports), version=__version__,
        started=started.isoformat(timespec="seconds"),
        finished=datetime.now(UTC).isoformat(timespec="seconds"),
        duration=time.monotonic() - t0, shards=(shard_text,), fleet_size=len(fleet.targets),
        extra={"jobs": jobs, "spawn": spawn},
    )
    if old is not None:
        report = bl.mark(report, bl.compare(old, report), Path(args.baseline).name)
    paths = write_reports(report, report_dir)
    _print_summary(report, paths, sys.stdout)
    if interrupted:
        _err("fleet", "interrupted: unfinished targets are reported as not audited")
        return EXIT_INTERRUPTED
    return _exit_for(report)


# --- merge ---------------------------------------------------------------------------------


def merge_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="amicheck merge",
        description="Combine the report directories of 'amicheck fleet --shard K/N' runs "
        "into one fleet report, identical to an unsharded run's.")
    p.add_argument("dirs", nargs="+", metavar="DIR", help="shard report directories")
    p.add_argument("--report-dir", required=True, metavar="OUT",
                   help="where the merged report goes")
    p.add_argument("--baseline", metavar="OLD.json",
                   help="a previous fleet.json: mark regressions, and fail only on them")
    return p


def main_merge(argv: Sequence[str] | None = None) -> int:
    """``amicheck merge DIR... --report-dir OUT [--baseline OLD.json]``."""
    args = _parse(merge_parser(), sys.argv[1:] if argv is None else argv)
    if isinstance(args, int):
        return args
    from amicheck.fleet import baseline as bl
    from amicheck.fleet.model import MergeError, from_json, merge
    from amicheck.fleet.output import FLEET_FILES, write_reports

    parts = []
    problems = []
    for d in args.dirs:
        path = Path(d) / FLEET_FILES["json"]
        try:
            parts.append(from_json(path.read_text("utf-8")))
        except OSError as exc:
            problems.append(f"{path}: cannot read ({exc.strerror or exc}); is {d} the "
                            "--report-dir of an 'amicheck fleet' run?")
        except (ValueError, KeyError, TypeError) as exc:
            problems.append(f"{path}: not a fleet report ({exc})")
    if problems:
        _err("merge", "\n".join(problems))
        return EXIT_USAGE
    try:
        report = merge(parts)
        old = bl.load_report(args.baseline) if args.baseline else None
        if old is not None:
            report = bl.mark(report, bl.compare(old, report), Path(args.baseline).name)
    except (MergeError, bl.BaselineError) as exc:
        _err("merge", str(exc))
        return EXIT_USAGE
    out = Path(args.report_dir).resolve()
    out_targets = out / "targets"
    for d in args.dirs:
        src = (Path(d) / "targets").resolve()
        if not src.is_dir() or src == out_targets:
            continue
        for child in sorted(src.iterdir()):
            if child.is_dir():
                dest = out_targets / child.name
                if dest.exists():
                    shutil.rmtree(dest)
                shutil.copytree(child, dest)
    paths = write_reports(report, out)
    _print_summary(report, paths, sys.stdout)
    return _exit_for(report)


# --- diff ----------------------------------------------------------------------------------


def diff_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="amicheck diff",
        description="Compare two report.json (one run) or two fleet.json files: new "
        "failures, fixed, still failing, per target for fleets. Exit status 1 when "
        "something got worse, 0 otherwise, 2 on bad input.")
    p.add_argument("old", metavar="OLD.json", help="the baseline")
    p.add_argument("new", metavar="NEW.json", help="the new report")
    p.add_argument("--json", action="store_true", help="print the comparison as JSON")
    return p


def main_diff(argv: Sequence[str] | None = None) -> int:
    """``amicheck diff OLD.json NEW.json``."""
    args = _parse(diff_parser(), sys.argv[1:] if argv is None else argv)
    if isinstance(args, int):
        return args
    import dataclasses
    import json

    from amicheck.fleet import baseline as bl

    try:
        comp = bl.compare(bl.load_report(args.old), bl.load_report(args.new))
    except bl.BaselineError as exc:
        _err("diff", str(exc))
        return EXIT_USAGE
    if args.json:
        print(json.dumps({"kind": comp.kind, "worse": comp.worse, "totals": comp.totals(),
                          "targets": [dataclasses.asdict(t) for t in comp.targets]},
                         indent=2))
    else:
        for line in bl.format_comparison(comp):
            print(line)
    return EXIT_FAILED if comp.worse else EXIT_OK


# --- init ----------------------------------------------------------------------------------


def main_init(argv: Sequence[str] | None = None) -> int:
    """``amicheck init --target HOST[:PORT] --user NAME [...]`` (see amicheck.fleet.onboard)."""
    from amicheck.fleet.onboard import main as onboard_main

    return onboard_main(sys.argv[1:] if argv is None else argv)


# --- python -m amicheck.fleet ----------------------------------------------------------------

_COMMANDS: dict[str, Callable[[Sequence[str]], int]] = {
    "fleet": main_fleet, "merge": main_merge, "diff": main_diff, "init": main_init}


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m amicheck.fleet fleet|merge|diff|init ...`` (until ``amicheck`` wires them)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in _COMMANDS:
        asked = bool(args) and args[0] in ("-h", "--help")
        print("usage: python -m amicheck.fleet {fleet,merge,diff,init} ... (each has -h)",
              file=sys.stdout if asked else sys.stderr)
        return EXIT_OK if asked else EXIT_USAGE
    try:
        return _COMMANDS[args[0]](args[1:])
    except KeyboardInterrupt:
        _err(args[0], "interrupted")
        return EXIT_INTERRUPTED
