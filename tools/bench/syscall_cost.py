"""The price of tracing where nothing traced happens: a getppid() loop under each tracer.

    sudo .venv/bin/python -m tools.bench.syscall_cost [--duration 3] [--rounds 5]

Classic syscall tracepoints run a program only for the syscalls they name; the raw
sys_enter/sys_exit tracepoints that ebpf-core attaches to where there is no tracefs
(its tp_btf mode) run one on every syscall, traced or not. This measures that price:
the loop's rate untraced and under each tracer (ours in both attach modes, for exec
and for open, and Debian's libbpf-tools beside them), each traced run between two
untraced ones, rounds interleaved. Writes syscall_cost.md and syscall_cost.json to
docs/benchmarks/. The main benchmark (python -m tools.bench) is unaffected.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
from typing import Any, Dict, List, Optional, Tuple

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from tools.bench.running import REPO, Running, generated_by, publish, ready_to_trace, rounds_parser
from tools.bench.tracers import LIBBPF_TOOLS, hybridtrace_cli
from tools.bench.workloads import SOURCES, WorkloadError


def tracers() -> List[Tuple[str, List[str]]]:
    """(name, argv) of every tracer measured; text output, as a user runs them."""
    cli = hybridtrace_cli(REPO)
    out: List[Tuple[str, List[str]]] = []
    for kind, snoop in (("exec", "execsnoop"), ("open", "opensnoop")):
        for attach in ("tracepoint", "tp_btf"):
            out.append((f"hybridtrace ebpf-core/{attach} {snoop}",
                        [cli, snoop, "-Q", "--backend", "ebpf-core", "--ebpf-attach", attach]))
        # Its stdio buffers a pipe: line buffering shows its header (readiness) at once.
        out.append((f"libbpf-tools {snoop}", ["stdbuf", "-oL", LIBBPF_TOOLS[kind]]))
    return out


def build(outdir: str) -> str:
    exe = os.path.join(outdir, "syscallloop")
    done = subprocess.run(["gcc", "-O2", "-o", exe, os.path.join(SOURCES, "syscallloop.c")],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise WorkloadError(f"gcc failed for syscallloop.c: {done.stderr.strip()[:300]}")
    return exe


def loop_rate(exe: str, duration: float) -> float:
    out = subprocess.run([exe, str(duration)], capture_output=True, text=True, check=True).stdout
    fields = out.split()
    return int(fields[fields.index("produced") + 1]) / (
        int(fields[fields.index("elapsed_ns") + 1]) / 1e9)


def measure(exe: str, duration: float, rounds: int) -> Dict[str, Any]:
    rows: Dict[str, Dict[str, List[float]]] = {}
    for _ in range(rounds):
        for name, argv in tracers():
            row = rows.setdefault(name, {"traced": [], "untraced": [], "slowdown": []})
            before = loop_rate(exe, duration)
            try:
                tracer = Running(argv)
            except (OSError, RuntimeError) as exc:
                row.setdefault("error", [str(exc)])  # type: ignore[arg-type]
                continue
            try:
                traced = loop_rate(exe, duration)
            finally:
                tracer.stop()
            after = loop_rate(exe, duration)
            base = (before + after) / 2
            row["traced"].append(traced)
            row["untraced"].append(base)
            row["slowdown"].append(base / traced)
    return {name: _summary(row) for name, row in rows.items()}


def _summary(row: Dict[str, List[Any]]) -> Dict[str, Any]:
    if not row["traced"]:
        return {"error": row.get("error", ["did not run"])[0]}
    return {"rounds": len(row["traced"]),
            "traced_rate": round(statistics.median(row["traced"])),
            "untraced_rate": round(statistics.median(row["untraced"])),
            "slowdown": round(statistics.median(row["slowdown"]), 3),
            "slowdown_min": round(min(row["slowdown"]), 3),
            "slowdown_max": round(max(row["slowdown"]), 3)}


def render(result: Dict[str, Any]) -> str:
    lines = [
        "# Syscalls we do not trace: what each tracer costs them",
        "",
        generated_by("tools.bench.syscall_cost", result) + "."
        " A C loop calls getppid() through syscall(2) flat out"
        f" for {result['duration']} s, untraced and under each tracer; each traced run sits"
        " between two untraced ones (its baseline), and the rounds interleave the tracers."
        f" Medians of {result['rounds']} rounds; slowdown = baseline rate / traced rate.",
        "",
        "Classic syscall tracepoints (`ebpf-core/tracepoint`, libbpf-tools) run a program"
        " only for execve/openat and their kin; the raw tracepoints that `ebpf-core/tp_btf`"
        " attaches to by BTF name, needing no tracefs, run one on every syscall, where it"
        " compares the syscall number and returns.",
        "",
        "| tracer | traced calls/s | untraced calls/s | slowdown (min-max) |",
        "|---|---:|---:|---:|",
    ]
    for name, row in result["tracers"].items():
        if "error" in row:
            lines.append(f"| {name} | did not run: {row['error']} | | |")
            continue
        lines.append(f"| {name} | {row['traced_rate']:,} | {row['untraced_rate']:,} |"
                     f" {row['slowdown']:.3f}x ({row['slowdown_min']:.3f}-"
                     f"{row['slowdown_max']:.3f}) |")
    return "\n".join(lines) + "\n"


def main(argv: Optional[List[str]] = None) -> int:
    args = rounds_parser("tools.bench.syscall_cost", __doc__, duration=3.0,
                         rounds=5).parse_args(argv)
    if not ready_to_trace("syscall_cost"):
        return 2
    with tempfile.TemporaryDirectory(prefix="ht-syscall-cost-") as work:
        exe = build(work)
        rows = measure(exe, args.duration, args.rounds)
    print(publish(args.out, "syscall_cost", {"duration": args.duration, "rounds": args.rounds},
                  rows, render))
    return 0


if __name__ == "__main__":
    sys.exit(main())
