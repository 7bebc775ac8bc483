"""Fleet benchmark: N simulated UCMs audited with full suites, against one target alone.

    python benchmarks/fleet_bench.py                 # 50 targets, default --jobs
    python benchmarks/fleet_bench.py --targets 12 --jobs 12 --json
    python benchmarks/fleet_bench.py --targets 3 -- -m "not slow"   # a quick smoke run

First one target's ``amicheck run`` runs alone (the floor, measured in the same run), then
``amicheck fleet`` audits N targets (a mix of compliant and faulted simulators, each a real
simulator on its own loopback ports). While they run, the whole process tree is sampled every
0.25 s: the peak of the summed RSS of every process (what the goal is stated in; it counts
shared library pages once per process, so it overstates) and of the summed PSS (shared pages
divided among their users: the honest total). Goals (issue 11): 50 targets in < 150 s wall and
< 1 GB. Exit status 0 when the goals are met (or not checked: --no-check), 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

GOAL_WALL_S = 150.0
GOAL_MEM_MB = 1024.0
FAULT_MIX = ("", "weak-password", "banner-mismatch", "privilege-leak", "", "expired-cert",
             "user-enumeration", "")


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]


def _tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(_children(p))
    return out


def _mem_kb(pid: int) -> tuple[int, int]:
    """(RSS, PSS) in KiB of one process; zeros if it is gone."""
    rss = pss = 0
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Rss:"):
                rss = int(line.split()[1])
            elif line.startswith("Pss:"):
                pss = int(line.split()[1])
    except (OSError, ValueError):
        pass
    return rss, pss


class Sampler:
    """Peak summed RSS/PSS and peak process count of a process tree, sampled in a thread."""

    def __init__(self, pid: int, interval: float = 0.25) -> None:
        self.pid = pid
        self.interval = interval
        self.peak_rss_kb = self.peak_pss_kb = self.peak_procs = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            pids = _tree(self.pid)
            mems = [_mem_kb(p) for p in pids]
            self.peak_rss_kb = max(self.peak_rss_kb, sum(m[0] for m in mems))
            self.peak_pss_kb = max(self.peak_pss_kb, sum(m[1] for m in mems))
            self.peak_procs = max(self.peak_procs, len(pids))
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def _cpu_children() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _measure(cmd: list[str], timeout: float) -> dict[str, float]:
    cpu0 = _cpu_children()
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    sampler = Sampler(proc.pid)
    try:
        _, err = proc.communicate(timeout=timeout)
    finally:
        sampler.stop()
    wall = time.monotonic() - t0
    if proc.returncode not in (0, 1):
        raise SystemExit(f"fleet_bench: {' '.join(cmd[:5])}... exited {proc.returncode}: "
                         f"{err.strip().splitlines()[-1:] or ''}")
    return {"wall_s": wall, "cpu_s": _cpu_children() - cpu0,
            "peak_rss_mb": sampler.peak_rss_kb / 1024, "peak_pss_mb": sampler.peak_pss_kb / 1024,
            "peak_processes": sampler.peak_procs}


def write_fleet(path: Path, n: int) -> None:
    """A fleet file of ``n`` simulated targets cycling through :data:`FAULT_MIX`."""
    lines = ['[fleet]\nname = "bench"\n[defaults]\ndeadline_s = 600\n']
    for i in range(n):
        fault = FAULT_MIX[i % len(FAULT_MIX)]
        lines.append(f'[[targets]]\nname = "ucm-{i + 1:03d}"\n'
                     + (f'faults = ["{fault}"]\n' if fault else ""))
    path.write_text("\n".join(lines), "utf-8")


def main(argv: list[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    pytest_args: list[str] = []
    if "--" in args_list:
        cut = args_list.index("--")
        args_list, pytest_args = args_list[:cut], args_list[cut + 1:]
    p = argparse.ArgumentParser(prog="fleet_bench", description=__doc__.split("\n")[0])
    p.add_argument("--targets", type=int, default=50, help="fleet size (default 50)")
    p.add_argument("--jobs", type=int, help="amicheck fleet --jobs (default: its own)")
    p.add_argument("--spawn", choices=("auto", "exec", "fork"), default="auto",
                   help="amicheck fleet --spawn (default auto)")
    p.add_argument("--keep", metavar="DIR", help="write the reports here and keep them")
    p.add_argument("--json", action="store_true", help="print the numbers as JSON")
    p.add_argument("--no-check", action="store_true", help="do not judge the goals")
    p.add_argument("--no-single", action="store_true", help="skip the one-target floor")
    args = p.parse_args(args_list)
    py = sys.executable
    with tempfile.TemporaryDirectory(prefix="fleet-bench-") as tmp:
        base = Path(args.keep).resolve() if args.keep else Path(tmp)
        base.mkdir(parents=True, exist_ok=True)
        fleet = base / "bench-fleet.toml"
        write_fleet(fleet, args.targets)
        tail = ["--", *pytest_args] if pytest_args else []
        single = None
        if not args.no_single:
            single = _measure([py, "-m", "amicheck", "run", "--report-dir",
                               str(base / "single"), "--", "-p", "no:hypothesispytest",
                               *pytest_args], timeout=900)
        cmd = [py, "-m", "amicheck.fleet", "fleet", str(fleet), "--report-dir",
               str(base / "fleet"), "--quiet"]
        if args.jobs:
            cmd += ["--jobs", str(args.jobs)]
        cmd += ["--spawn", args.spawn]
        fleet_m = _measure(cmd + tail, timeout=3600)
        data = json.loads((base / "fleet" / "fleet.json").read_text("utf-8"))
        summary = data["summary"]
        jobs = data["run"].get("jobs")
        spawn = data["run"].get("spawn", "exec")
    n = args.targets
    result = {
        "targets": n,
        "jobs": jobs,
        "spawn": spawn,
        "cpus": os.cpu_count(),
        "load_avg_1m": os.getloadavg()[0],
        "fleet": fleet_m,
        "targets_per_min": n / fleet_m["wall_s"] * 60,
        "single": single,
        "wall_vs_single": fleet_m["wall_s"] / single["wall_s"] if single else None,
        "errors": summary["error"],
        "statuses": {k: summary[k] for k in ("compliant", "not-compliant", "incomplete",
                                             "error")},
        "goals": {"wall_s": GOAL_WALL_S, "memory_mb": GOAL_MEM_MB},
    }
    verdicts = {
        f"wall < {GOAL_WALL_S:.0f} s": fleet_m["wall_s"] < GOAL_WALL_S,
        f"summed RSS < {GOAL_MEM_MB:.0f} MB": fleet_m["peak_rss_mb"] < GOAL_MEM_MB,
        f"summed PSS < {GOAL_MEM_MB:.0f} MB": fleet_m["peak_pss_mb"] < GOAL_MEM_MB,
        "no harness errors": summary["error"] == 0,
    }
    ok = all(verdicts.values())
    result["verdicts"] = verdicts
    result["goals_met"] = ok
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"fleet of {n} simulated UCMs, {jobs} at once ({spawn}), {os.cpu_count()} CPUs "
              f"(load average {result['load_avg_1m']:.1f}):")
        print(f"  wall {fleet_m['wall_s']:.1f} s  ->  {result['targets_per_min']:.1f} "
              f"targets/minute; CPU {fleet_m['cpu_s']:.0f} s")
        if single:
            print(f"  one target alone: {single['wall_s']:.1f} s wall, {single['cpu_s']:.1f} s "
                  f"CPU, {single['peak_rss_mb']:.0f} MB RSS; fleet/single wall = "
                  f"{result['wall_vs_single']:.2f}")
        print(f"  peak memory: {fleet_m['peak_rss_mb']:.0f} MB summed RSS, "
              f"{fleet_m['peak_pss_mb']:.0f} MB summed PSS, {fleet_m['peak_processes']} "
              "processes")
        print(f"  outcomes: {result['statuses']}")
        print("  goals: "
              + ", ".join(f"{k} {'met' if v else 'NOT met'}" for k, v in verdicts.items()))
    return 0 if ok or args.no_check else 1


if __name__ == "__main__":
    sys.exit(main())
