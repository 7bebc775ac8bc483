"""Start target runs by forking a warmed-up fleet process instead of a fresh interpreter.

``python -m amicheck run`` spends ~0.6 s of CPU and ~45 MB importing pytest, the plugin, the
simulator and cryptography before it audits anything. With ``--spawn fork`` the fleet process
imports exactly what ``amicheck run`` imports before it starts pytest (so assertion rewriting
and everything after it happen in the child as in a standalone run), then forks one child per
target, which calls ``amicheck.runcmd.main_run([...])``: the same code and arguments as the
subprocess, in its own session and process group, its output in the target's ``run.log``.
The imported pages are shared copy-on-write, which cuts the summed PSS (real memory) of the
children; the summed RSS counts shared pages once per process and hardly changes.

Only safe from a single-threaded process (POSIX fork copies one thread); the fleet command is
one. Not available on platforms without ``os.fork``.
"""

from __future__ import annotations

import gc
import os
import signal
import sys
import traceback
from collections.abc import Sequence

__all__ = ["ForkedRun", "warm_up", "fork_run", "available", "fork_safe"]

#: What ``amicheck run`` imports before ``pytest.main`` (its preflight), nothing more.
_WARM_MODULES = ("pytest", "amicheck.runcmd", "amicheck.errors", "amicheck.plugin",
                 "amicheck.profile", "amicheck.sim", "amicheck.sim.faults",
                 "amicheck.report.json_writer")


def available() -> bool:
    return hasattr(os, "fork")


def fork_safe() -> bool:
    """Whether forking this process is safe: POSIX, one thread, and no pytest session running
    here (its capture and import hooks must not leak into a target's run)."""
    import threading

    if not available() or threading.active_count() != 1:
        return False
    return not any(type(h).__name__ == "AssertionRewritingHook" for h in sys.meta_path)


def warm_up() -> None:
    """Import what every child needs, once, in the parent."""
    import importlib

    for name in _WARM_MODULES:
        importlib.import_module(name)


class ForkedRun:
    """The ``Popen`` subset the runner uses, for a forked child."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                self.returncode = -1
                return self.returncode
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            try:
                _, status = os.waitpid(self.pid, 0)
                self.returncode = os.waitstatus_to_exitcode(status)
            except ChildProcessError:
                self.returncode = -1
        return self.returncode


def fork_run(argv: Sequence[str], log_fd: int) -> ForkedRun:
    """Fork a child that runs ``amicheck run ARGV`` (``argv[0]`` is ``"run"``) with
    stdout/stderr on ``log_fd``."""
    sys.stdout.flush()
    sys.stderr.flush()
    # Keep the collector off the inherited objects: it would write to (and so copy) every
    # shared page it scans in the child.
    gc.freeze()
    pid = os.fork()
    if pid:
        return ForkedRun(pid)
    code = 70  # EX_SOFTWARE: the child crashed before main returned
    try:
        os.setsid()
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        os.closerange(3, 1 << 16)  # other targets' logs stay the parent's
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        from amicheck.runcmd import main_run

        if not argv or argv[0] != "run":
            raise ValueError(f"a forked fleet worker runs 'amicheck run', not {argv[:1]}")
        code = int(main_run(list(argv[1:])))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - report it in run.log, never return to the parent
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)
