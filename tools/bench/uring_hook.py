"""What seeing io_uring opens costs in the kernel, with and without io_uring in the load.

    sudo .venv/bin/python -m tools.bench.uring_hook [--rate 10000] [--duration 4] [--rounds 3]

The main benchmark's uring-open-loop rows show that we see the opens made
through io_uring (and libbpf-tools does not); this says what the programs that
see them cost, from the kernel's own run-time statistics (bpf_stats.py), per
open the loop made: the open loop (open syscalls) and the same loop through
io_uring (IORING_OP_OPENAT), at one fixed rate, under each eBPF tracer. The
io_uring programs fire only on io_uring's own tracepoints, so on the open loop
they should not run at all: *with and without* the hook is the open loop's
programs against the io_uring loop's, in one run, not two builds. Writes
uring_hook.md and uring_hook.json to docs/benchmarks/.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
from typing import Any, Dict, List, Optional

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

LOOPS = ("open-loop", "uring-open-loop")
ATTACH_MODES = ("ebpf-core", "ebpf-core/tp_btf")
URING_MARK = "uring"  # in the name of every io_uring program of ours (bpf/open.bpf.c)


def tracers() -> Tracers:
    """Each tracer, started as tools.bench does."""
    return core_beside_libbpf("opensnoop", [], LIBBPF_TOOLS["open"])


def loop_run(bins: workloads.Binaries, prefix: str, loop: str, rate: int,
             duration: float) -> int:
    """Opens the loop made (the open loop, or its paths through io_uring)."""
    argv = [bins.openloop, prefix, str(rate), str(duration)]
    if loop == "uring-open-loop":
        argv.append("io_uring")
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout.split()
    return int(out[out.index("produced") + 1])


def traced(bins: workloads.Binaries, work: str, argv: List[str], marker: Optional[bytes],
           rate: int, duration: float) -> Dict[str, Any]:
    """Both loops under one tracer, the kernel counting its programs' run time."""
    tracer = Running(argv, ready_on_stderr=marker, out_path=os.path.join(work, "out"))
    result: Dict[str, Any] = {}
    try:
        with bpf_stats.run_time_stats():
            for loop in LOOPS:
                progs0 = bpf_stats.programs_of(tracer.pid)
                cpu0 = procstat.cpu_seconds(tracer.pid)
                opens = loop_run(bins, os.path.join(work, "U-"), loop, rate, duration)
                cpu1 = procstat.cpu_seconds(tracer.pid)
                progs1 = bpf_stats.programs_of(tracer.pid)
                named = bpf_stats.names(iter(progs1))
                result[loop] = {"opens": opens,
                                "programs": bpf_stats.costs(progs0, progs1, named, opens),
                                "tracer_cpu_us": (cpu1 - cpu0) * 1e6 / max(opens, 1)}
    finally:
        err = tracer.stop()
    if tracer.returncode() not in (0, None) and marker is not None:
        raise NotStarted(f"{argv[0]} exited {tracer.returncode()}: {one_line(err)}")
    return result


def split(programs: Dict[str, Dict[str, float]]) -> Dict[str, float]:
    """ns per open in the io_uring programs and in the others."""
    uring = sum(p["ns_per_op"] for name, p in programs.items() if URING_MARK in name)
    other = sum(p["ns_per_op"] for name, p in programs.items() if URING_MARK not in name)
    return {"uring_ns": uring, "other_ns": other}


def measure(bins: workloads.Binaries, rate: int, duration: float,
            rounds: int) -> Dict[str, Any]:
    runs: Dict[str, List[Dict[str, Any]]] = {}
    errors: Dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="ht-uring-hook-") as work:
        for _ in range(rounds):
            for name, argv, marker in tracers():
                try:
                    runs.setdefault(name, []).append(
                        traced(bins, work, argv, marker, rate, duration))
                except (OSError, RuntimeError) as exc:
                    errors[name] = one_line(str(exc))
    out: Dict[str, Any] = {name: summary(r) for name, r in runs.items() if r}
    out.update({name: {"error": why} for name, why in errors.items() if name not in out})
    return out


def summary(rounds: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Medians over the rounds, per loop: the split, the tracer's CPU, every program."""
    row: Dict[str, Any] = {}
    for loop in LOOPS:
        per = [r[loop] for r in rounds]
        splits = [split(r["programs"]) for r in per]
        names = sorted({name for r in per for name in r["programs"]})
        row[loop] = {
            "opens": int(statistics.median(r["opens"] for r in per)),
            "uring_ns": round(statistics.median(s["uring_ns"] for s in splits), 1),
            "other_ns": round(statistics.median(s["other_ns"] for s in splits), 1),
            "tracer_cpu_us": round(statistics.median(r["tracer_cpu_us"] for r in per), 2),
            "programs": {name: {k: round(statistics.median(
                r["programs"].get(name, {}).get(k, 0.0) for r in per), 2)
                for k in ("runs_per_op", "ns_per_run", "ns_per_op")} for name in names},
        }
    row["rounds"] = len(rounds)
    return row


def render(result: Dict[str, Any]) -> str:
    lines = [
        "# What seeing io_uring opens costs in the kernel",
        "",
        generated_by("tools.bench.uring_hook", result) +
        f", load average at start {result['load_start']}, at end {result['load_end']}."
        f" Each tracer runs the open loop, then the same loop through io_uring"
        f" (IORING_OP_OPENAT, no open syscall), at {result['rate']:,} opens/s for"
        f" {result['duration']} s each, with the kernel's BPF run-time statistics on;"
        f" medians of {result['rounds']} rounds, per open the loop made. Our io_uring"
        " programs are those named with `uring`; they fire only on io_uring's tracepoints."
        " Every tracer traces every process, so other processes' opens and syscalls"
        " count too (runs per open above 1 on the open loop; the tp_btf programs fire on"
        " every syscall and choose in the program). The main benchmark's uring-open-loop"
        " rows show what each tracer captured (libbpf-tools: none of them).",
        "",
        "| tracer | loop | opens | io_uring programs ns/open | other programs ns/open |"
        " tracer CPU µs/open |",
        "|---|---|---:|---:|---:|---:|",
    ]
    progs: List[str] = []
    for name, row in result["tracers"].items():
        if "error" in row:
            lines.append(f"| {name} | did not run: {row['error']} | | | | |")
            continue
        for loop in LOOPS:
            r = row[loop]
            lines.append(f"| {name} | {loop} | {r['opens']:,} | {r['uring_ns']:,.0f} |"
                         f" {r['other_ns']:,.0f} | {r['tracer_cpu_us']:.2f} |")
            for prog, p in r["programs"].items():
                progs.append(f"| {name} | {loop} | {prog} | {p['runs_per_op']:.2f} |"
                             f" {p['ns_per_run']:,.0f} | {p['ns_per_op']:,.0f} |")
    lines += ["", "Per program (those that ran during the loop):", "",
              "| tracer | loop | program | runs per open | ns per run | ns per open |",
              "|---|---|---|---:|---:|---:|", *progs]
    return "\n".join(lines) + "\n"


def main(argv: Optional[List[str]] = None) -> int:
    parser = rounds_parser("tools.bench.uring_hook", __doc__, duration=4.0, rounds=3)
    parser.add_argument("--rate", type=int, default=10000, help="opens per second")
    args = parser.parse_args(argv)
    return side_run("uring_hook", args.out,
                    lambda bins: measure(bins, args.rate, args.duration, args.rounds),
                    {"rate": args.rate, "duration": args.duration, "rounds": args.rounds},
                    render)


if __name__ == "__main__":
    sys.exit(main())
