"""``amicheck sim``: serve a profile in the foreground until Ctrl-C (or SIGTERM).

Exit status: 0 after a clean stop, 2 for bad input (profile, fault name, arguments), 1 if
the simulator could not start or raised while serving. Errors are one clear message each,
never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import NoReturn

from amicheck.errors import AmiCheckError, ProfileError
from amicheck.filekind import not_regular
from amicheck.sim.faults import FAULTS, UnknownFaultError

__all__ = ["main", "build_parser", "MAX_PROFILE_BYTES"]

#: A profile is a few KB; anything larger is not one (and /dev/zero must not be read).
MAX_PROFILE_BYTES = 1024 * 1024


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument in one line (no usage block), exit status 2."""

    def error(self, message: str) -> NoReturn:
        _err(f"{message} (see 'amicheck sim --help')")
        raise SystemExit(2)


def _port(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0-65535 (0: any free port), got {value}")
    return value


def _config_problem(path: str) -> str | None:
    """Why ``path`` cannot be a profile, checked before anything reads it (FIFOs, devices
    and huge files would hang or exhaust memory); None when it may be loaded."""
    try:
        st = Path(path).stat()
    except OSError as exc:
        return f"--config {path}: {exc.strerror or exc}"
    refused = not_regular(st.st_mode, "a profile file")
    if refused:
        return f"--config {path}: {refused}"
    if st.st_size > MAX_PROFILE_BYTES:
        return f"--config {path}: {st.st_size} bytes, more than a profile ({MAX_PROFILE_BYTES})"
    return None


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="amicheck sim",
        description="Serve a UCM6XXX AMI simulator for a profile, in the foreground.",
    )
    p.add_argument(
        "--config",
        metavar="FILE",
        help="profile TOML to serve (default: the built-in compliant profile)",
    )
    p.add_argument(
        "--fault",
        metavar="NAME",
        action="append",
        default=[],
        help="enable a fault profile (repeatable; see --list-faults)",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument(
        "--port",
        type=_port,
        default=None,
        help="AMI port (default: the profile's; 0 = any free port)",
    )
    p.add_argument(
        "--tls-port",
        type=_port,
        default=None,
        help="TLS port (default: the profile's; 0 = any free port)",
    )
    p.add_argument("--seed", type=int, default=0, help="PBX/challenge seed (default 0)")
    p.add_argument(
        "--state-dir",
        metavar="DIR",
        default=None,
        help="where ami_certificate.pem/ami_private.pem go (default: temporary)",
    )
    p.add_argument("--list-faults", action="store_true", help="list the fault profiles and exit")
    return p


def _err(text: str) -> None:
    print(f"amicheck sim: {text}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Run the simulator until SIGINT/SIGTERM; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed usage/help
        return int(exc.code or 0) if isinstance(exc.code, int) else 2
    if args.list_faults:
        width = max(len(n) for n in FAULTS)
        for name, fault in FAULTS.items():
            print(f"{name:<{width}}  {fault.description}")
        return 0

    from amicheck.profile import default_profile, load_profile
    from amicheck.sim.server import Simulator

    problem = _config_problem(args.config) if args.config else None
    if problem is not None:
        _err(problem)
        return 2
    logging.basicConfig(level=logging.INFO, format="amicheck sim: %(message)s")
    try:
        profile = load_profile(args.config) if args.config else default_profile()
        sim = Simulator(
            profile,
            faults=args.fault,
            host=args.host,
            port=args.port,
            tls_port=args.tls_port,
            seed=args.seed,
            state_dir=args.state_dir,
        )
    except ProfileError as exc:
        _err(f"{exc.path}: profile refused ({len(exc.problems)} problem(s)):")
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    except UnknownFaultError as exc:
        _err(str(exc))
        return 2
    except (AmiCheckError, OSError) as exc:
        _err(str(exc))
        return 2

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    old = {}
    if threading.current_thread() is threading.main_thread():
        old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            sim.start()
        except (AmiCheckError, OSError) as exc:
            _err(str(exc))
            return 1
        tls = f", TLS on {sim.host}:{sim.tls_port}" if sim.tls_port else ""
        if sim.behaviour.stock_port_open:
            tls += f", stock port on {sim.host}:{sim.stock_port}"
        faults = ", ".join(sorted(sim.faults)) or "none"
        print(
            f"amicheck sim: serving {profile.name!r} on {sim.host}:{sim.port}{tls} "
            f"(faults: {faults}); Ctrl-C stops",
            flush=True,
        )
        while not stop.wait(0.2):
            if sim.errors:
                break
        sim.stop()
        try:
            sim.check_errors()
        except AmiCheckError as exc:
            _err(f"{exc} (cause: {exc.__cause__!r})")
            return 1
        print("amicheck sim: stopped", flush=True)
        return 0
    finally:
        sim.stop()
        for s, handler in old.items():
            signal.signal(s, handler)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
