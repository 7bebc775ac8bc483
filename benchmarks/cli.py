"""``python -m benchmarks parser|client|sim|all [--quick]`` (also ``amicheck bench ...``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

__all__ = ["main"]


def _parser(quick: bool, rounds: int | None, seed: int) -> int:
    from benchmarks.parser import bench_parser

    return bench_parser(quick, rounds, seed)


def _client(quick: bool, rounds: int | None, seed: int) -> int:
    from benchmarks.client import bench_client

    return bench_client(quick)


def _sim(quick: bool, rounds: int | None, seed: int) -> int:
    from benchmarks.sim import bench_sim

    return bench_sim(quick)


_BENCHES: dict[str, Callable[[bool, int | None, int], int]] = {
    "parser": _parser,
    "client": _client,
    "sim": _sim,
}


def main(argv: list[str] | None = None) -> int:
    """Run the named benchmarks; returns the exit status (argparse exits 2 on bad usage)."""
    ap = argparse.ArgumentParser(prog="amicheck bench",
                                 description="Benchmarks of amicheck against in-process floors.")
    ap.add_argument("which", nargs="*", default=["parser"],
                    choices=[*_BENCHES, "all"], metavar="{parser,client,sim,all}",
                    help="which benchmark(s) to run (default: parser)")
    ap.add_argument("--quick", action="store_true",
                    help="tiny sizes, one round: seconds instead of minutes (CI)")
    ap.add_argument("--rounds", type=int, default=None, metavar="N",
                    help="parser: rounds per measurement (min; default 7, quick 1)")
    ap.add_argument("--seed", type=int, default=13, help="parser: stream seed (default 13)")
    args = ap.parse_args(argv)
    if args.rounds is not None and args.rounds < 1:
        ap.error("--rounds must be at least 1")
    names = list(_BENCHES) if "all" in args.which else args.which
    status = 0
    for i, name in enumerate(names):
        if i:
            print(flush=True)
        status = max(status, _BENCHES[name](args.quick, args.rounds, args.seed))
    return status


if __name__ == "__main__":
    sys.exit(main())
