"""The ground-truth check (tools/groundtruth) inside a kernel-matrix VM.

    sudo .venv/bin/python -m tools.vm.groundtruth --ops 10000 --rate 40 --jobs 2
    sudo .venv/bin/python -m tools.vm.groundtruth --backend ftrace/kprobe --ops 500
    sudo .venv/bin/python -m tools.vm.groundtruth --arch arm64 --ops 3000   # arm64 6.1
    .venv/bin/python -m tools.vm.groundtruth --report-only   # re-render the page

The host has no kprobes, no eprobes and no headers of its own kernel, so those
backends are checked in a Debian kernel booted under qemu (default: 6.1 with its
exact linux-headers, the CI cell). Inside, `python -m tools.groundtruth` runs
the seeded workload under every backend the guest has (or those named), and
writes its results as JSON to the run directory; the host judges them (a WRONG
value, a stray or ambiguous event, an event missing with nothing lost, or a
required backend that could not run fails) and writes docs/ground_truth_vm.md
and .json (generated only; `--arch arm64`: Debian's arm64 kernel under
qemu-system-aarch64 with tools/vm/rootfs.py's root filesystem, where the workload
makes only the syscalls aarch64 has, into docs/ground_truth_vm_arm64.md).
Exit 0 when the check passed, 1 when not, 2 for a bad command line.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from typing import Any, Dict, List, Optional, Tuple

from tools.groundtruth import check
from tools.groundtruth.table import render
from tools.vm import kernels, runs
from tools.vm.matrix import PLANS, ensure_tools
from tools.vm.variants import BY_NAME

DOC = os.path.join(runs.REPO, "docs", "ground_truth_vm.md")
# Another architecture's page, by Debian architecture
ARCH_DOCS = {"arm64": os.path.join(runs.REPO, "docs", "ground_truth_vm_arm64.md")}
REQUIRED = ("ftrace/kprobe", "ftrace/eprobe", "ebpf-bcc")
PROG = "python -m tools.vm.groundtruth"


def arguments(argv: Optional[List[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    p.add_argument("--kernel", default="6.1", help="Debian kernel line (6.1)")
    p.add_argument("--arch", choices=sorted(PLANS), default="amd64",
                   help="whose Debian kernel (default amd64; arm64: the line's -arm64 kernel"
                   " under qemu-system-aarch64)")
    p.add_argument("--variant", default="headers", help="tools/vm variant (headers)")
    p.add_argument("--ops", type=int, default=10000, help="operations per backend (10000)")
    p.add_argument("--seed", type=int, help="default: random (printed)")
    p.add_argument("--rate", type=float, default=0.0, help="operations per second (0: flat out)")
    p.add_argument("--jobs", type=int, default=1, help="scenario processes at once (1)")
    p.add_argument("--backend", action="append", default=[],
                   help="only these labels (default: every backend tools.groundtruth knows)")
    p.add_argument("--require", default=",".join(REQUIRED),
                   help="labels that must run in the guest (default: %(default)s)")
    p.add_argument("--wall", type=int, default=3000, help="VM wall clock, seconds (3000)")
    p.add_argument("--cpus", type=int, default=2, help="vCPUs (2; one TCG thread either way)")
    p.add_argument("--memory", default="2G")
    p.add_argument("--runs", default=runs.RUNS, help="run directories (logs, raw output)")
    p.add_argument("--md", help="the page, its .json beside it (default"
                   " docs/ground_truth_vm.md; --arch arm64: docs/ground_truth_vm_arm64.md)")
    p.add_argument("--report-only", action="store_true",
                   help="re-render the page from its .json, run nothing")
    args = p.parse_args(argv)
    args.md = args.md or ARCH_DOCS.get(args.arch, DOC)
    return args


def kernel_name(args: argparse.Namespace) -> str:
    """The kernels.SPECS name of --kernel for --arch (6.1 and arm64: 6.1-arm64)."""
    suffix = f"-{args.arch}"
    if args.arch == "amd64" or str(args.kernel).endswith(suffix):
        return str(args.kernel)
    return f"{args.kernel}{suffix}"


def main(argv: Optional[List[str]] = None) -> int:
    args = arguments(argv)
    if args.report_only:
        return runs.render_again(args.md, page, "tools.vm.groundtruth")
    js = os.path.splitext(args.md)[0] + ".json"
    problem = _check_args(args)
    if problem:
        print(f"tools.vm.groundtruth: {problem}", file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("tools.vm.groundtruth: needs root (qemu, and tracing inside the VM)",
              file=sys.stderr)
        return 2
    spec = kernels.spec_named(kernel_name(args))
    problem = ensure_tools((spec.arch,))
    if problem:
        print(f"tools.vm.groundtruth: {problem}", file=sys.stderr)
        return 2
    seed = args.seed if args.seed is not None else random.randrange(1 << 31)
    print(f"tools.vm.groundtruth: seed {seed} ({args.ops} ops per backend; replay with"
          f" --seed {seed})", file=sys.stderr, flush=True)
    kernel = kernels.fetch(spec)
    name = runs.cell_name(spec.name, args.variant) + "-groundtruth"
    require = [r for r in args.require.split(",") if r]
    settings = {"ops": args.ops, "seed": seed, "rate": args.rate, "jobs": args.jobs,
                "backends": args.backend, "require": require, "wall": args.wall}
    result = runs.run_cell(kernel, BY_NAME[args.variant], name, args.runs, "none",
                           test_timeout=60, wall=args.wall, record=False, cpus=args.cpus,
                           memory=args.memory, force_open=False, groundtruth=settings)
    run_dir = os.path.join(args.runs, name)
    gt = runs.read_json(os.path.join(run_dir, "groundtruth.json"))
    data = {
        "command": command(args, seed), "cell": name, "kernel": spec.name,
        "arch": spec.arch,
        "variant": args.variant, "variant_description": BY_NAME[args.variant].description,
        "release": kernel.release, "packages": kernel.packages, "cpus": args.cpus,
        "memory": args.memory, "settings": settings, "facts": result.get("facts"),
        "step": result["steps"].get("groundtruth"), "vm_seconds": result["seconds"],
        "wall_clock_exceeded": result["wall_clock_exceeded"], "code": result["code"],
        "groundtruth": gt, "run_dir": run_dir,
    }
    ok, verdict = judge(data)
    data["passed"], data["verdict"] = ok, verdict
    data["md"] = os.path.basename(args.md)
    with open(js, "w") as f:
        json.dump(data, f, indent=1)
        f.write("\n")
    with open(args.md, "w") as f:
        f.write(page(data))
    print(f"tools.vm.groundtruth: {verdict} (wrote {args.md}; guest output in"
          f" {run_dir}/groundtruth.out)", file=sys.stderr)
    return 0 if ok else 1


def _check_args(args: argparse.Namespace) -> Optional[str]:
    name = kernel_name(args)
    spec = next((s for s in kernels.SPECS if s.name == name), None)
    if spec is None:
        return f"unknown kernel {name!r} (known: {', '.join(s.name for s in kernels.SPECS)})"
    if spec.arch != args.arch:
        return f"kernel {name!r} is {spec.arch}'s: give --arch {spec.arch}"
    if args.variant not in BY_NAME:
        return f"unknown variant {args.variant!r} (known: {', '.join(BY_NAME)})"
    labels = [t.label for t in check.TARGETS]
    for label in args.backend + [r for r in args.require.split(",") if r]:
        if label not in labels:
            return f"unknown backend {label!r} (known: {', '.join(labels)})"
    if args.ops < 1 or args.jobs < 1 or args.rate < 0 or args.wall < 300:
        return "--ops and --jobs must be >= 1, --rate >= 0, --wall >= 300"
    return None


def command(args: argparse.Namespace, seed: int) -> str:
    parts = [f"sudo .venv/bin/{PROG}", f"--ops {args.ops}", f"--seed {seed}"]
    if args.rate:
        parts.append(f"--rate {args.rate:g}")
    if args.jobs != 1:
        parts.append(f"--jobs {args.jobs}")
    if args.arch != "amd64":
        parts.append(f"--arch {args.arch}")
    if args.kernel != "6.1" or args.variant != "headers":
        parts.append(f"--kernel {args.kernel} --variant {args.variant}")
    parts += [f"--backend {b}" for b in args.backend]
    return " ".join(parts)


def judge(data: Dict[str, Any]) -> Tuple[bool, str]:
    """(passed, one sentence): every backend clean, every required one ran."""
    gt = data.get("groundtruth")
    step = data.get("step") or {}
    if not gt:
        why = "timed out" if step.get("timed_out") else f"rc {step.get('rc')}"
        return False, f"FAIL: the guest wrote no results (groundtruth step {why})"
    results = [check.Result.from_dict(r) for r in gt["results"]]
    problems = [f"{r.target}: {r.wrong_total} WRONG, {sum(r.ambiguous.values())} ambiguous,"
                f" {r.unexplained_missing} missing with {r.lost} lost"
                + "".join(f"; doctor overclaims {c}" for c in check.claims_broken(r))
                for r in results if not r.passed]
    ran = {r.target for r in results}
    skipped = {s["label"]: s["why"] for s in gt["skipped"]}
    for label in data["settings"]["require"]:
        if label in skipped:
            problems.append(f"{label}: required, could not run ({skipped[label]})")
        elif label not in ran and (not data["settings"]["backends"]
                                   or label in data["settings"]["backends"]):
            problems.append(f"{label}: required, not reached"
                            + (f" (cut short while running {gt['running']})"
                               if gt.get("running") else ""))
    if gt.get("running"):
        problems.append(f"cut short by the wall clock while {gt['running']} ran")
    if problems:
        return False, "FAIL: " + "; ".join(problems)
    return True, (f"PASS: {len(results)} backends, {sum(r.ops for r in results):,} operations,"
                  " no WRONG value, nothing missing without a loss to account for it")


def page(data: Dict[str, Any]) -> str:
    gt = data.get("groundtruth") or {"results": [], "skipped": [], "machine": "no results"}
    results = [check.Result.from_dict(r) for r in gt["results"]]
    skipped = [(s["label"], s["why"]) for s in gt["skipped"]]
    step = data.get("step") or {}
    timing = ", ".join(f"{r.target} {r.elapsed:.0f} s" for r in results) or "-"
    pkgs = ", ".join(f"{p} {v}" for p, v in sorted(data["packages"].items()))
    code = data.get("code") or {}
    raw = os.path.splitext(os.path.basename(str(data.get("md") or DOC)))[0] + ".json"
    foreign = data.get("arch", "amd64") != "amd64"
    note = "\n".join([
        f"**{data['verdict']}.**",
        "",
        f"In a VM: Debian {data['kernel']} ({data['release']}; {pkgs}) booted by virtme-ng"
        f" under {'qemu-system-aarch64' if foreign else 'qemu'} TCG ({data['cpus']} vCPUs on"
        f" one TCG thread, {data['memory']}), variant"
        f" `{data['variant']}`: {data['variant_description']}. The guest runs this checkout"
        f" (commit {str(code.get('commit'))[:12]}"
        + (f", {code['uncommitted']} files changed" if code.get("uncommitted") else "")
        + (") from the host's filesystem, with a root filesystem of Debian's"
           f" {data['arch']} packages (tools/vm/rootfs.py)." if foreign else
           ") from the host's filesystem.")
        + " The host has no kprobes, no eprobes and no headers"
        " of its own kernel; this page checks those backends (see"
        " [ground_truth.md](ground_truth.md) for the host's own kernel"
        + (", [ground_truth_vm.md](ground_truth_vm.md) for Debian's amd64 kernel)." if foreign
           else ").")
        + (" The workload makes only the syscalls this architecture has: aarch64 has no"
           " `open` or `creat`, so no raw call of them is drawn, and the C library's"
           " `open()` and `creat()` are the `openat` calls they make there."
           if foreign else ""),
        "",
        f"Wall time per backend in the guest: {timing}; the whole step"
        f" {step.get('seconds', '-')} s (rc {step.get('rc')}"
        + (", **timed out**" if step.get("timed_out") else "") + f"), the VM"
        f" {data['vm_seconds']:.0f} s. Required to run: {', '.join(data['settings']['require'])}."
        f" Raw results: [{raw}]({raw}).",
    ])
    title = (f"Ground truth in the kernel matrix: Debian {data['kernel']} ({data['release']}),"
             " every field against what the process really did")
    return render(results, skipped, data["command"], gt["machine"], title=title, note=note)


if __name__ == "__main__":
    sys.exit(main())
