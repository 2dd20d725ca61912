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

import argparse
import datetime
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional, Tuple

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from hybridtrace import tracefs
from hybridtrace.cli.common import positive_float
from tools.bench import machine
from tools.bench.tracers import LIBBPF_TOOLS, hybridtrace_cli
from tools.bench.workloads import SOURCES, WorkloadError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
READY_TIMEOUT = 60.0


def tracers() -> List[Tuple[str, List[str]]]:
    """(name, argv) of every tracer measured; text output, as a user runs them."""
    cli = hybridtrace_cli(REPO)
    out: List[Tuple[str, List[str]]] = []
    for kind, snoop in (("exec", "execsnoop"), ("open", "opensnoop")):
        for attach in ("tracepoint", "tp_btf"):
            out.append((f"hybridtrace ebpf-core/{attach} {snoop}",
                        [cli, snoop, "-Q", "--backend", "ebpf-core", "--ebpf-attach", attach]))
        out.append((f"libbpf-tools {snoop}", [LIBBPF_TOOLS[kind]]))
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


class Running:
    """A tracer started and attached: its header line (text output) is on stdout."""

    def __init__(self, argv: List[str], workdir: str) -> None:
        self.out_path = os.path.join(workdir, "tracer.out")
        with open(self.out_path, "wb") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.PIPE)
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline and self.proc.poll() is None:
            if os.path.getsize(self.out_path) > 0:  # both print their header once attached
                time.sleep(0.5)
                return
            time.sleep(0.05)
        err = self.stop()
        raise RuntimeError(f"{argv[0]} did not start: {err.strip()[:200]}")

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            _, err = self.proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return (err or b"").decode(errors="replace")


def measure(exe: str, duration: float, rounds: int, workdir: str) -> Dict[str, Any]:
    rows: Dict[str, Dict[str, List[float]]] = {}
    for _ in range(rounds):
        for name, argv in tracers():
            row = rows.setdefault(name, {"traced": [], "untraced": [], "slowdown": []})
            before = loop_rate(exe, duration)
            try:
                tracer = Running(argv, workdir)
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
    m = result["machine"]
    lines = [
        "# Syscalls we do not trace: what each tracer costs them",
        "",
        f"Generated by `python -m tools.bench.syscall_cost` on {result['date']}: kernel"
        f" {m['kernel']}, {m['cpus']} CPUs ({m['cpu']}), commit {m['hybridtrace_commit']}."
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
    p = argparse.ArgumentParser(prog="python -m tools.bench.syscall_cost",
                                description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=positive_float, default=3.0, help="seconds per loop run")
    p.add_argument("--rounds", type=int, default=5, help="rounds over every tracer")
    p.add_argument("--out", default=os.path.join(REPO, "docs", "benchmarks"))
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        print("syscall_cost: run as root (the tracers need it)", file=sys.stderr)
        return 2
    path, mounted = tracefs.ensure_mounted()  # classic tracepoints and libbpf-tools need it
    if mounted:
        print(f"syscall_cost: mounted tracefs at {path} for the classic tracepoints",
              file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="ht-syscall-cost-") as work:
        exe = build(work)
        rows = measure(exe, args.duration, args.rounds, work)
    result = {"date": datetime.date.today().isoformat(), "machine": machine.describe(REPO),
              "duration": args.duration, "rounds": args.rounds, "tracers": rows}
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "syscall_cost.json"), "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    text = render(result)
    with open(os.path.join(args.out, "syscall_cost.md"), "w") as f:
        f.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
