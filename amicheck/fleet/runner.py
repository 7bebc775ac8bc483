"""Audit many targets at once: one ``amicheck run`` subprocess per target.

Why subprocesses: a run imports pytest, loads a profile and may start a simulator; one
process per target keeps them isolated (a crashing or hanging target cannot take others with
it) and makes a target's outcome exactly what ``amicheck run`` gives for it alone. Each child is
the leader of its own process group, so a target that outlives its deadline is killed with
everything it started. The loop polls (no threads): children mostly wait on the network, so
concurrency is bounded by memory and patience, not by CPU.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Protocol

from amicheck.fleet.model import TargetRow, TargetStatus, error_row, row_from_run
from amicheck.fleet.spec import FleetTarget

__all__ = ["Job", "run_targets", "default_jobs", "command_for", "LEAN_PYTEST_ARGS",
           "RUN_LOG", "SPAWN_MODES"]

#: Per-child pytest options that change no outcome but save ~10 MB and ~2 s of start-up per
#: child: the hypothesis plugin (a test dependency) loads on import and suites do not use it.
LEAN_PYTEST_ARGS: tuple[str, ...] = ("-p", "no:hypothesispytest")
#: A child's merged stdout and stderr, kept next to its reports as evidence.
RUN_LOG = "run.log"
#: Seconds between SIGTERM and SIGKILL of a target's process group.
KILL_GRACE_S = 3.0
#: Resident memory one child takes at its peak (measured: ~65-75 MB), for sizing --jobs.
CHILD_RSS_MB = 80
#: Default concurrent runs per CPU (see default_jobs).
PER_CPU = 13
_POLL_S = 0.1
_TAIL_BYTES = 64 * 1024


def default_jobs(n_targets: int) -> int:
    """How many targets to audit at once by default.

    A run spends ~93 % of its time waiting (30 s of its ~35-40 s is the auth-timeout check;
    it needs ~2-3 s of CPU), so a core keeps about a dozen runs busy (measured on 2 busy
    CPUs, 50 targets: 14 at once 225 s, 24 at once 154-192 s, 25 at once 129-159 s); memory
    caps it too (a quarter of what is available, at :data:`CHILD_RSS_MB` per child), and so
    does the fleet's size.
    """
    if n_targets < 1:
        return 1
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
        os.cpu_count() or 1)
    by_cpu = PER_CPU * max(1, cpus)
    by_mem = by_cpu
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    by_mem = max(1, int(line.split()[1]) // 1024 // 4 // CHILD_RSS_MB)
                    break
    except OSError:
        pass
    cap = max(1, min(n_targets, by_cpu, by_mem))
    # Even waves: 50 targets at a cap of 26 run as 25 + 25, not 26 + 24 or 24 + 24 + 2 (a
    # last wave of two takes a whole run's time for almost nothing).
    waves = -(-n_targets // cap)
    return max(1, -(-n_targets // waves))


def command_for(t: FleetTarget, report_dir: Path, *, pcap: bool = False,
                pytest_args: Sequence[str] = (), python: str = sys.executable) -> list[str]:
    """The ``amicheck run`` command line that audits ``t`` into ``report_dir``."""
    cmd = [python, "-m", "amicheck", "run", "--target", t.target,
           "--report-dir", str(report_dir)]
    if t.profile is not None:
        cmd += ["--profile", str(t.profile)]
    for f in t.faults:
        cmd += ["--fault", f]
    if t.outside_source:
        cmd += ["--outside-source", t.outside_source]
    if t.allow_destructive:
        cmd.append("--allow-destructive")
    if t.allow_bruteforce:
        cmd.append("--allow-bruteforce")
    if pcap:
        cmd.append("--pcap")
    cmd += ["--", *LEAN_PYTEST_ARGS, *pytest_args]
    return cmd


class _Proc(Protocol):
    pid: int
    returncode: int | None

    def poll(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int: ...


#: How children are started: "exec" a fresh ``python -m amicheck run`` (the default), or
#: "fork" the warmed-up fleet process (:mod:`amicheck.fleet.forkspawn`).
SPAWN_MODES = ("exec", "fork")


@dataclass
class Job:
    """A running (or finished) target audit."""

    target: FleetTarget
    directory: Path
    started: float = 0.0
    proc: _Proc | None = None
    log: IO[bytes] | None = None
    row: TargetRow | None = None
    killed_at: float | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def elapsed(self, now: float | None = None) -> float:
        return (time.monotonic() if now is None else now) - self.started


ProgressHook = Callable[[Sequence[Job], Sequence[Job], int], None]
ProfileLabel = Callable[[FleetTarget], str]


def _kill_group(proc: _Proc, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _log_tail(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - _TAIL_BYTES))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _why(path: Path, code: int | None) -> str:
    """One line explaining a run that left no report: its own error line if it printed one."""
    lines = [ln.strip() for ln in _log_tail(path).splitlines() if ln.strip()]
    mine = [ln for ln in lines if ln.startswith("amicheck: error:")]
    if mine:
        return mine[-1].removeprefix("amicheck: error:").strip()
    if code is not None and code < 0:
        return f"the run was killed by signal {-code} before writing a report"
    tail = lines[-1] if lines else "no output"
    return f"the run exited with status {code} without a report (last output: {tail[:160]})"


def _finish(job: Job, label: ProfileLabel, now: float) -> TargetRow:
    from amicheck.report.json_writer import from_json

    assert job.proc is not None
    t = job.target
    code = job.proc.returncode
    common = {"tags": t.tags, "faults": t.faults}
    duration = now - job.started
    if job.killed_at is not None:
        return error_row(t.name, t.target, label(t),
                         f"no result within the deadline of {t.deadline_s:g} s "
                         "(the run was killed with its process group)",
                         duration=duration, exit_status=code, **common)
    report_path = job.directory / "report.json"
    try:
        report = from_json(report_path.read_text("utf-8"))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        why = _why(job.directory / RUN_LOG, code)
        if report_path.exists():
            why = f"unreadable report.json ({exc}); {why}"
        return error_row(t.name, t.target, label(t), why, duration=duration,
                         exit_status=code, **common)
    row = row_from_run(t.name, t.target, label(t), report, exit_status=code,
                       duration=duration, **common)
    if code == 2 and row.status is not TargetStatus.INCOMPLETE:  # e.g. collection errors
        row = error_row(t.name, t.target, label(t), _why(job.directory / RUN_LOG, code),
                        duration=duration, exit_status=code, **common)
    return row


def _start(job: Job, cmd: list[str], spawn: str) -> None:
    if job.directory.exists():  # stale reports must never pass for this run's
        shutil.rmtree(job.directory)
    job.directory.mkdir(parents=True)
    job.log = open(job.directory / RUN_LOG, "wb")  # noqa: SIM115 - closed in _reap
    job.started = time.monotonic()
    if spawn == "fork":
        from amicheck.fleet.forkspawn import fork_run

        # cmd is [python, "-m", "amicheck", "run", ...]: the child calls main(["run", ...])
        job.proc = fork_run(cmd[3:], job.log.fileno())
        return
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    job.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=job.log,
                                stderr=subprocess.STDOUT, start_new_session=True, env=env)


def run_targets(targets: Sequence[FleetTarget], targets_dir: Path, *, jobs: int,
                label: ProfileLabel, pcap: bool = False, pytest_args: Sequence[str] = (),
                python: str = sys.executable, on_progress: ProgressHook | None = None,
                spawn: str = "exec") -> tuple[list[TargetRow], bool]:
    """Audit ``targets`` (at most ``jobs`` at once) into ``targets_dir/<name>/``.

    ``spawn`` is one of :data:`SPAWN_MODES`.

    Returns:
        The rows in the order the targets were given, and whether the run was interrupted
        (Ctrl-C: running children are killed, unfinished targets become error rows).
    """
    if spawn not in SPAWN_MODES:
        raise ValueError(f"spawn must be one of {SPAWN_MODES}, got {spawn!r}")
    if spawn == "fork":
        from amicheck.fleet.forkspawn import warm_up

        warm_up()
    pending = [Job(t, targets_dir / t.name) for t in targets]
    queue = list(pending)
    queue.reverse()
    running: list[Job] = []
    finished: list[Job] = []
    interrupted = False
    try:
        while queue or running:
            while queue and len(running) < max(1, jobs):
                job = queue.pop()
                _start(job, command_for(job.target, job.directory, pcap=pcap,
                                        pytest_args=pytest_args, python=python), spawn)
                running.append(job)
            time.sleep(_POLL_S)
            now = time.monotonic()
            for job in list(running):
                assert job.proc is not None
                if job.proc.poll() is not None:
                    _reap(job, label, now)
                    running.remove(job)
                    finished.append(job)
                    if on_progress:
                        on_progress(finished, running, len(pending))
                elif job.killed_at is None and job.elapsed(now) > job.target.deadline_s:
                    job.killed_at = now
                    _kill_group(job.proc, signal.SIGTERM)
                elif job.killed_at is not None and now - job.killed_at > KILL_GRACE_S:
                    _kill_group(job.proc, signal.SIGKILL)
            if on_progress:
                on_progress(finished, running, len(pending))
    except KeyboardInterrupt:
        interrupted = True
        for job in running:
            assert job.proc is not None
            _kill_group(job.proc, signal.SIGKILL)
        for job in running:
            assert job.proc is not None
            job.proc.wait()
            if job.log:
                job.log.close()
    rows = []
    for job in pending:
        if job.row is None:
            t = job.target
            job.row = error_row(t.name, t.target, label(t),
                                "not audited: the fleet run was interrupted",
                                tags=t.tags, faults=t.faults)
        rows.append(job.row)
    return rows, interrupted


def _reap(job: Job, label: ProfileLabel, now: float) -> None:
    assert job.proc is not None
    # The child is gone; make sure nothing it started (a stray simulator) outlives it.
    _kill_group(job.proc, signal.SIGKILL)
    if job.log:
        job.log.close()
    job.row = _finish(job, label, now)
