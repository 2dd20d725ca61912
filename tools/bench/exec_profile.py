"""Where an exec's cost goes under each exec tracer, on the exec loop flat out.

    sudo .venv/bin/python -m tools.bench.exec_profile [--duration 4] [--rounds 3]

The main benchmark says how much each tracer slows the exec loop (fork() +
execv() of a static child, flat out); this says why. Each round runs the loop
untraced, under each tracer, and untraced again (the baseline is the mean of the
two), and for the traced run counts, per exec the loop made:

- the in-kernel programs: each BPF program's run time and runs, from the
  kernel's own statistics (turned on through bpf(2) for the traced run only:
  ``bpf_stats.py``; they cost two clock reads per program run), which also say
  which hooks fire per exec;
- the workload's CPU time (the loop and its children, the programs included:
  they run in the traced task), against the untraced run's;
- the tracer's own CPU time and how often it was woken (context switches of
  its threads): the reader competing with the workload for the CPUs;
- the machine's idle share, which shows whether the CPUs were the limit.

Writes exec_profile.md and exec_profile.json to docs/benchmarks/. The main
benchmark (python -m tools.bench) is unaffected.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
from typing import Any, Dict, List, Optional, Tuple

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from tools.bench import bpf_stats, procstat, workloads
from tools.bench.running import (
    NotStarted,
    Running,
    Tracers,
    core_beside_libbpf,
    generated_by,
    one_line,
    rounds_parser,
    side_run,
)
from tools.bench.tracers import LIBBPF_TOOLS

TOKEN = "execprof"
ATTACH_MODES = ("ebpf-core", "ebpf-core/tp_btf")


def tracers() -> Tracers:
    """Each tracer, started as tools.bench does (-x: failed execs too)."""
    return core_beside_libbpf("execsnoop", ["-x"], LIBBPF_TOOLS["exec"])


class Loop:
    """The exec loop flat out: one run's execs, wall time and CPU time (children too)."""

    def __init__(self, bins: workloads.Binaries, workdir: str) -> None:
        self.child = workloads.child_copy(bins, workdir, f"hx{TOKEN}")
        self.argv = [bins.execloop, self.child, TOKEN, "0"]
        self.pids = os.path.join(workdir, "pids.bin")

    def run(self, duration: float) -> Dict[str, float]:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        idle0, total0 = _cpu_ticks()
        out = subprocess.run([*self.argv, str(duration), self.pids], capture_output=True,
                             text=True, check=True).stdout.split()
        idle1, total1 = _cpu_ticks()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        execs = int(out[out.index("produced") + 1])
        wall = int(out[out.index("elapsed_ns") + 1]) / 1e9
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        return {"execs": execs, "rate": execs / wall, "cpu_us": cpu * 1e6 / max(execs, 1),
                "idle": (idle1 - idle0) / max(total1 - total0, 1)}


def _cpu_ticks() -> Tuple[int, int]:
    """(idle + iowait, all) ticks of every CPU since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    return fields[3] + fields[4], sum(fields[:8])


def switches(pid: int) -> int:
    """Voluntary context switches (each a sleep, then a wake-up) of every thread of the tree."""
    total = 0
    for p in procstat.tree(pid):
        try:
            tids = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{p}/task/{tid}/status") as f:
                    total += sum(int(line.split()[1]) for line in f
                                 if line.startswith("voluntary_ctxt_switches:"))
            except (OSError, ValueError):
                continue
    return total


def traced_run(loop: Loop, argv: List[str], marker: Optional[bytes], duration: float,
               workdir: str) -> Dict[str, Any]:
    """The loop under one tracer, with the kernel counting its programs' run time."""
    tracer = Running(argv, ready_on_stderr=marker, out_path=os.path.join(workdir, "out"))
    try:
        with bpf_stats.run_time_stats():
            progs0 = bpf_stats.programs_of(tracer.pid)
            cpu0, sw0 = procstat.cpu_seconds(tracer.pid), switches(tracer.pid)
            run = loop.run(duration)
            cpu1, sw1 = procstat.cpu_seconds(tracer.pid), switches(tracer.pid)
            progs1 = bpf_stats.programs_of(tracer.pid)
        named = bpf_stats.names(iter(progs1))  # while the programs are loaded
    finally:
        err = tracer.stop()
    if tracer.returncode() not in (0, None) and marker is not None:
        raise NotStarted(f"{argv[0]} exited {tracer.returncode()}: {one_line(err)}")
    execs = max(run["execs"], 1)
    progs = {name: {"runs_per_exec": c["runs_per_op"], "ns_per_run": c["ns_per_run"],
                    "ns_per_exec": c["ns_per_op"]}
             for name, c in bpf_stats.costs(progs0, progs1, named, execs).items()}
    run.update(tracer_cpu_us=(cpu1 - cpu0) * 1e6 / execs,
               tracer_switches=(sw1 - sw0) / execs,
               programs=progs,
               bpf_ns=sum(v["ns_per_exec"] for v in progs.values()))
    return run


def measure(bins: workloads.Binaries, duration: float, rounds: int) -> Dict[str, Any]:
    rows: Dict[str, List[Dict[str, Any]]] = {}
    errors: Dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="ht-exec-profile-") as work:
        loop = Loop(bins, work)
        for _ in range(rounds):
            for name, argv, marker in tracers():
                before = loop.run(duration)
                try:
                    traced = traced_run(loop, argv, marker, duration, work)
                except (OSError, RuntimeError) as exc:
                    errors[name] = str(exc)
                    continue
                after = loop.run(duration)
                base = {k: (before[k] + after[k]) / 2 for k in ("rate", "cpu_us", "idle")}
                traced.update(slowdown=base["rate"] / traced["rate"],
                              untraced_rate=base["rate"], untraced_cpu_us=base["cpu_us"],
                              untraced_idle=base["idle"])
                rows.setdefault(name, []).append(traced)
    out: Dict[str, Any] = {name: _summary(runs) for name, runs in rows.items()}
    out.update({name: {"error": why} for name, why in errors.items() if name not in out})
    return out


def _median(runs: List[Dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def _summary(runs: List[Dict[str, Any]]) -> Dict[str, Any]:
    keys = ("slowdown", "rate", "untraced_rate", "cpu_us", "untraced_cpu_us", "bpf_ns",
            "tracer_cpu_us", "tracer_switches", "idle", "untraced_idle")
    row: Dict[str, Any] = {k: round(_median(runs, k), 3) for k in keys}
    row["rounds"] = len(runs)
    row["slowdown_min"] = round(min(r["slowdown"] for r in runs), 3)
    row["slowdown_max"] = round(max(r["slowdown"] for r in runs), 3)
    progs: Dict[str, List[Dict[str, float]]] = {}
    for r in runs:
        for name, p in r["programs"].items():
            progs.setdefault(name, []).append(p)
    row["programs"] = {name: {k: round(statistics.median(p[k] for p in ps), 2)
                              for k in ("runs_per_exec", "ns_per_run", "ns_per_exec")}
                       for name, ps in sorted(progs.items())}
    return row


def render(result: Dict[str, Any]) -> str:
    lines = [
        "# The exec loop flat out: where each exec's cost goes",
        "",
        generated_by("tools.bench.exec_profile", result) +
        f", load average at start {result['load_start']}, at end {result['load_end']}."
        f" The exec loop (fork() + execv() of a static child, flat out, {result['duration']} s)"
        " runs untraced, under a tracer, and untraced again; medians of"
        f" {result['rounds']} rounds, every figure per exec the loop made. Our tracers run"
        " as in `python -m tools.bench` (`execsnoop --json -x`, output to a file).",
        "",
        "- *workload CPU*: the loop and its children (BPF programs run in them, so they"
        " are inside it); *BPF*: the kernel's run-time statistics of the tracer's programs,"
        " on for the traced run only (BPF_ENABLE_STATS through bpf(2));"
        " *tracer CPU*: the tracer's own process; *wake-ups*: its context switches;"
        " *idle*: the share of both CPUs nobody used. With the CPUs this busy, every"
        " CPU-µs a tracer adds per exec (*added*: BPF + tracer CPU) is taken from the loop.",
        "",
        "| tracer | slowdown (min-max) | execs/s traced (untraced) | workload CPU µs traced"
        " (untraced) | BPF µs | tracer CPU µs | added µs | tracer wake-ups |"
        " idle traced (untraced) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    progs: List[str] = []
    for name, row in result["tracers"].items():
        if "error" in row:
            lines.append(f"| {name} | did not run: {row['error']} | | | | | | | |")
            continue
        lines.append(
            f"| {name} | {row['slowdown']:.3f}x ({row['slowdown_min']:.3f}-"
            f"{row['slowdown_max']:.3f}) | {row['rate']:,.0f} ({row['untraced_rate']:,.0f}) |"
            f" {row['cpu_us']:.1f} ({row['untraced_cpu_us']:.1f}) | {row['bpf_ns'] / 1e3:.2f} |"
            f" {row['tracer_cpu_us']:.1f} | {row['bpf_ns'] / 1e3 + row['tracer_cpu_us']:.1f} |"
            f" {row['tracer_switches']:.2f} |"
            f" {row['idle']:.1%} ({row['untraced_idle']:.1%}) |")
        for prog, p in row["programs"].items():
            progs.append(f"| {name} | {prog} | {p['runs_per_exec']:.2f} | {p['ns_per_run']:,.0f} |"
                         f" {p['ns_per_exec']:,.0f} |")
    lines += ["", "Per program (only those that ran during the loop):", "",
              "| tracer | program | runs per exec | ns per run | ns per exec |",
              "|---|---|---:|---:|---:|", *progs]
    return "\n".join(lines) + "\n"


def main(argv: Optional[List[str]] = None) -> int:
    args = rounds_parser("tools.bench.exec_profile", __doc__, duration=4.0,
                         rounds=3).parse_args(argv)
    return side_run("exec_profile", args.out,
                    lambda bins: measure(bins, args.duration, args.rounds),
                    {"duration": args.duration, "rounds": args.rounds}, render)


if __name__ == "__main__":
    sys.exit(main())
