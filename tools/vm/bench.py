"""The benchmark (tools.bench) inside a kernel-matrix VM, for the tiers the host lacks.

    sudo .venv/bin/python -m tools.vm.bench           # 6.1 default VM -> docs/benchmarks/vm.md
    sudo .venv/bin/python -m tools.vm.bench --rates 'open-loop=200,1000,0' --duration 4
    .venv/bin/python -m tools.vm.bench --report-only  # re-render the page from vm.json

The host has no kprobes and no eprobes, so the ftrace/kprobe and ftrace/eprobe
tiers are measured in a Debian kernel booted under qemu TCG (one TCG thread for
all vCPUs). TCG is many times slower than the host and shares it with other
work, so the page gives each tracer's numbers as ratios to ebpf-core's in the same
run (tools/bench/relative.py); the absolute tables follow for reference. Exit 0
when the guest wrote results, 1 when not, 2 for a bad command line.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from typing import Any, Dict, List, Optional

from tools.bench.plan import parse_rates
from tools.bench.relative import REFERENCE, render_relative
from tools.bench.summary import render_summary
from tools.bench.table import workload_tables
from tools.vm import kernels, runs
from tools.vm.matrix import ensure_tools
from tools.vm.variants import BY_NAME

PROG = "python -m tools.vm.bench"
DOC = os.path.join(runs.REPO, "docs", "benchmarks", "vm.md")
TRACERS = (REFERENCE, "hybridtrace ftrace/kprobe", "hybridtrace ftrace/eprobe",
           "hybridtrace ftrace/tracepoint", "libbpf-tools")
# Chosen from a short run in the 6.1 VM (see the page): ebpf-core kept up flat out at
# about 20k opens/s there, the ftrace tiers lost from a few thousand a second.
# Flat out first: a run cut short by the wall clock keeps the ratios that matter most.
RATES = "open-loop=0,500,2000,5000;exec-loop=0"
# Of the VM's wall clock, what boot, doctor and shutting down take (under TCG, busy host)
BOOT_MARGIN = 360


def arguments(argv: Optional[List[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    p.add_argument("--kernel", default="6.1", help="Debian kernel line (6.1: kprobes, eprobes)")
    p.add_argument("--variant", default="default", help="tools/vm variant (default)")
    p.add_argument("--tracers", default=",".join(TRACERS),
                   help="tools.bench --tracers (default: %(default)s)")
    p.add_argument("--rates", default=RATES, help="tools.bench --rates (default: %(default)s)")
    p.add_argument("--duration", type=float, default=4.0, help="seconds per run (4)")
    p.add_argument("--wall", type=int, default=1500, help="VM wall clock, seconds (1500)")
    p.add_argument("--cpus", type=int, default=2, help="vCPUs (2; one TCG thread either way)")
    p.add_argument("--memory", default="2G")
    p.add_argument("--runs", default=runs.RUNS, help="run directories (logs, raw output)")
    p.add_argument("--md", default=DOC, help="the page, its .json beside it (%(default)s)")
    p.add_argument("--report-only", action="store_true",
                   help="re-render the page from its .json, run nothing")
    return p.parse_args(argv)


def bench_args(args: argparse.Namespace) -> List[str]:
    """tools.bench's command line in the guest (its --out is the run directory's)."""
    workloads = ",".join(parse_rates(args.rates))
    return ["--tracers", args.tracers, "--workloads", workloads, "--rates", args.rates,
            "--duration", f"{args.duration:g}", "--sustain", f"{args.duration:g}",
            "--no-profile", "--ready-timeout", "180"]


def command(args: argparse.Namespace) -> str:
    parts = [f"sudo .venv/bin/{PROG}", "--rates", shlex.quote(args.rates),
             "--duration", f"{args.duration:g}"]
    if args.tracers != ",".join(TRACERS):
        parts += ["--tracers", shlex.quote(args.tracers)]
    if args.kernel != "6.1" or args.variant != "default":
        parts += ["--kernel", args.kernel, "--variant", args.variant]
    return " ".join(parts)


def main(argv: Optional[List[str]] = None) -> int:
    args = arguments(argv)
    if args.report_only:
        return runs.render_again(args.md, page, "tools.vm.bench")
    problem = _check_args(args) or (None if os.geteuid() == 0 else
                                    "needs root (qemu, and tracing inside the VM)")
    spec = kernels.spec_named(args.kernel) if problem is None else None
    problem = problem or ensure_tools((spec.arch,) if spec else ())
    if problem or spec is None:
        print(f"tools.vm.bench: {problem}", file=sys.stderr)
        return 2
    kernel = kernels.fetch(spec)
    name = runs.cell_name(spec.name, args.variant) + "-bench"
    load_before = os.getloadavg()
    result = runs.run_cell(kernel, BY_NAME[args.variant], name, args.runs, "none",
                           test_timeout=60, wall=args.wall, record=False, cpus=args.cpus,
                           memory=args.memory, force_open=False,
                           bench={"args": bench_args(args), "wall": args.wall,
                                  "stop_after": args.wall - BOOT_MARGIN})
    run_dir = os.path.join(args.runs, name)
    data = {
        "command": command(args), "cell": name, "kernel": spec.name,
        "variant": args.variant, "variant_description": BY_NAME[args.variant].description,
        "release": kernel.release, "packages": kernel.packages, "cpus": args.cpus,
        "memory": args.memory, "facts": result.get("facts"),
        "step": result["steps"].get("bench"), "vm_seconds": result["seconds"],
        "wall_clock_exceeded": result["wall_clock_exceeded"], "code": result["code"],
        "host_loadavg": [[round(x, 2) for x in load_before],
                         [round(x, 2) for x in os.getloadavg()]],
        "bench": runs.read_json(os.path.join(run_dir, "bench", "results.json")),
        "run_dir": run_dir,
    }
    with open(os.path.splitext(args.md)[0] + ".json", "w") as f:
        json.dump(data, f, indent=1)
        f.write("\n")
    with open(args.md, "w") as f:
        f.write(page(data))
    done = data["bench"] is not None
    print(f"tools.vm.bench: {'wrote' if done else 'no results; wrote'} {args.md} (guest output"
          f" in {run_dir}/bench.err)", file=sys.stderr)
    return 0 if done else 1


def _check_args(args: argparse.Namespace) -> Optional[str]:
    if not any(s.name == args.kernel and s.arch == "amd64" for s in kernels.SPECS):
        return f"unknown kernel {args.kernel!r}"
    if args.variant not in BY_NAME:
        return f"unknown variant {args.variant!r} (known: {', '.join(BY_NAME)})"
    try:
        parse_rates(args.rates)
    except ValueError as exc:
        return f"--rates: {exc}"
    if args.duration <= 0 or args.wall < 2 * BOOT_MARGIN or args.cpus < 1:
        return f"--duration must be > 0, --wall >= {2 * BOOT_MARGIN}, --cpus >= 1"
    return None


def _facts(data: Dict[str, Any]) -> List[str]:
    step = data.get("step") or {}
    code = data.get("code") or {}
    guest = (data.get("bench") or {}).get("machine", {})
    pkgs = ", ".join(f"{p} {v}" for p, v in sorted(data["packages"].items()))
    before, after = data["host_loadavg"]
    return [
        f"- Debian {data['kernel']} ({data['release']}; {pkgs}), variant `{data['variant']}`:"
        f" {data['variant_description']}",
        f"- booted by virtme-ng under qemu TCG: {data['cpus']} vCPUs on one TCG thread"
        f" (`-accel tcg,thread=single`), {data['memory']}, on this checkout (commit"
        f" {str(code.get('commit'))[:12]}"
        + (f", {code['uncommitted']} files changed" if code.get("uncommitted") else "")
        + ") from the host's filesystem",
        f"- host load average (1, 5, 15 min) before the VM {before}, after it {after};"
        f" in the guest at the benchmark's start {guest.get('loadavg_start', '-')}, at its"
        f" end {guest.get('loadavg_end', '-')}",
        f"- the benchmark step took {step.get('seconds', '-')} s (rc {step.get('rc')}"
        + (", **timed out**" if step.get("timed_out") else "")
        + f"), the whole VM {data['vm_seconds']:.0f} s",
    ]


def page(data: Dict[str, Any]) -> str:
    """docs/benchmarks/vm.md from the .json tools.vm.bench wrote."""
    doc = data.get("bench")
    raw = os.path.splitext(os.path.basename(DOC))[0] + ".json"
    parts = [
        f"# Benchmarks in a VM: every ftrace tier against ebpf-core on Debian {data['kernel']}\n",
        f"Generated by `{PROG}` (tools/vm/README.md); do not edit by hand."
        f" Command: `{data['command']}`. Raw results: [{raw}]({raw}).\n",
        "This machine's kernel has no kprobes and no eprobes, so those two ftrace tiers"
        " are measured here, in a Debian kernel emulated by qemu's TCG. Emulation is many"
        " times slower than the host and shares its CPUs with other work, so **absolute"
        " rates say little about real hardware**: read each tier as a ratio to ebpf-core"
        " measured in the same VM, on the same kernel, in the same run"
        " ([README.md](README.md) has the host's own absolute numbers).\n",
        "## Machine\n", "\n".join(_facts(data)) + "\n",
    ]
    if doc is None:
        step = data.get("step") or {}
        why = "timed out" if step.get("timed_out") else f"rc {step.get('rc')}"
        return "\n".join([*parts, "**No results**: the guest wrote no results.json"
                          f" (bench step {why}; see {data['run_dir']}).\n"])
    guest_runs = doc["runs"]
    rates = sorted({r["rate_offered"] for r in guest_runs if r["workload"] == "open-loop"})
    parts += [
        f"## Relative to {REFERENCE}\n",
        "Each cell is **tracer / ebpf-core** (the two values in brackets). Lossless open"
        " rate: the highest open-loop rate the loop reached with nothing missed or lost"
        " (rates offered: "
        + ", ".join("flat out" if r == 0 else f"{r:,}/s" for r in rates)
        + "); a run the tracer held below its offered rate counts at the rate it reached,"
        " and a tracer lossless flat out is credited the rate the loop reached under it,"
        " which is then a floor of what it could take. CPU-s per 100k opens: the tracer's"
        " CPU time per 100,000 opens the loop made, at the highest paced rate both ran at."
        " Captured flat out: share of the loop's opens printed, flat out. Slowdown:"
        " untraced flat-out rate / traced flat-out rate (1.00x: no slowdown); a ratio"
        " above 1 means the tracer slows the workload more than ebpf-core does.\n",
        render_relative(guest_runs),
        "## Summary per tracer (absolute, in the VM)\n",
        "The benchmark's own summary (see [README.md](README.md) for the columns); the"
        " 50k/s columns are empty here, as no run was paced at 50k/s.\n",
        render_summary(guest_runs),
    ]
    parts += workload_tables(guest_runs, " (absolute, in the VM)")
    failed = [f"- {r['tracer']} {r['workload']}@{r['rate_offered'] or 'max'}: {r['status']}:"
              f" {r.get('reason', '')}" for r in guest_runs if r["status"] != "ok"]
    if failed:
        parts += ["## Cannot run here, or failed\n", "\n".join(failed) + "\n"]
    return "\n".join(parts)


if __name__ == "__main__":
    sys.exit(main())
