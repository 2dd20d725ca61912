"""Ground-truth differential run of every backend this machine has (root).

    sudo .venv/bin/python -m tools.groundtruth [--ops N] [--seed S] [--rate R]
                                               [--jobs J] [--backend LABEL ...] [--write-doc]
                                               [--json PATH] [--require LABEL,...]
                                           [--via-cli]

Prints each backend's per-field counts and every WRONG value; exits 1 when any
backend reported a WRONG value (or a stray event), or missed an event without
a loss to account for it, or a backend ``--require`` names could not run here.
``--write-doc`` writes docs/ground_truth.md; ``--json`` every result (the kernel
matrix reads it back from a VM: tools/vm/groundtruth.py). ``--via-cli`` judges
what `hybridtrace execsnoop|opensnoop --json` writes instead of the API's events
(via_cli.py; HYBRIDTRACE_PURE_PYTHON=1 picks the Python JSON writer).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
from typing import List, Optional, Tuple

from tools.groundtruth import check, via_cli
from tools.groundtruth.table import TITLE, render

DOC = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                   "docs", "ground_truth.md")
OVERLOAD_DOC = DOC.replace("ground_truth.md", "ground_truth_overload.md")


VM_NOTE = ("Backends a kernel lacks are skipped here and checked in the kernel matrix:"
           " ftrace/kprobe, ftrace/eprobe and ebpf-bcc with the kernel's exact headers in a"
           " Debian 6.1 VM, [ground_truth_vm.md](ground_truth_vm.md)"
           " (`python -m tools.vm.groundtruth`).")


OVERLOAD_TITLE = "Ground truth under overload: events lost and counted, never a wrong value"
OVERLOAD_NOTE = (f"Each tracer is starved on purpose: one page of buffer per CPU and a reader"
                 f" that sleeps {check.STALL_S} s after each read, under the workload flat out."
                 " Events are lost; the run passes only if the tracer reported losses, every"
                 " missing call is covered by them, and no event that did arrive has a WRONG"
                 " field. The unstarved run is [ground_truth.md](ground_truth.md).")


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.groundtruth", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ops", type=int, default=2000, help="operations per backend")
    parser.add_argument("--seed", type=int, default=None, help="default: random (printed)")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="operations per second (0: flat out)")
    parser.add_argument("--jobs", type=int, default=1, help="scenarios (processes) at once")
    parser.add_argument("--backend", action="append", default=[],
                        help="only these labels: " + ", ".join(t.label for t in check.TARGETS)
                        + " (+text: the ftrace trace_pipe reader)")
    parser.add_argument("--overload", action="store_true",
                        help="starve each tracer (1-page buffers, a reader that stalls"
                        f" {check.STALL_S} s between reads): events must be lost and counted,"
                        " and what arrives must still be right")
    parser.add_argument("--write-doc", action="store_true",
                        help=f"write {DOC} ({OVERLOAD_DOC} with --overload)")
    parser.add_argument("--json", metavar="PATH",
                        help="also write every result as JSON (rewritten after each backend)")
    parser.add_argument("--require", default="", metavar="LABEL,...",
                        help="these backends must run here: skipping one is a failure")
    parser.add_argument("--via-cli", action="store_true",
                        help="take the events from the CLI's --json output (a subprocess per"
                        " kind), every line parsed, validated and judged")
    args = parser.parse_args(argv)
    if args.via_cli and (args.overload or args.write_doc):
        print("tools.groundtruth: --via-cli cannot go with --overload (the CLI reads"
              " as fast as it can) or --write-doc (the pages are the API's)", file=sys.stderr)
        return 2
    unknown = sorted(set(args.backend) - {t.label for t in check.TARGETS})
    if unknown:
        print(f"tools.groundtruth: unknown --backend {', '.join(unknown)} (known: "
              f"{', '.join(t.label for t in check.TARGETS)})", file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("tools.groundtruth: needs root", file=sys.stderr)
        return 2
    seed = args.seed if args.seed is not None else random.randrange(1 << 31)
    print(f"seed {seed} ({args.ops} ops per backend; replay with --seed {seed})", flush=True)
    check.environment()
    results = []
    skipped = []
    for target in check.TARGETS:
        if args.backend and target.label not in args.backend:
            continue
        ok, why = check.available(target)
        if not ok:
            skipped.append((target.label, why))
            print(f"{target.label}: skipped: {why}", flush=True)
            continue
        if args.json:  # what runs now, in case a wall clock ends this run
            _write_json(args.json, seed, args, results, skipped, running=target.label)
        if args.via_cli:
            try:
                result = via_cli.run(target, seed, args.ops, args.rate, args.jobs)
            except via_cli.CliError as exc:
                print(f"{target.label}: {exc}", file=sys.stderr)
                return 1
        else:
            result = check.run(target, seed, args.ops, args.rate, args.jobs,
                               overload=args.overload)
        print(result.summary(), flush=True)
        results.append(result)
        if args.json:
            _write_json(args.json, seed, args, results, skipped)
    bad = [r.target for r in results if not r.passed]
    bad += [f"{label} (required, skipped)" for label, _ in skipped
            if label in args.require.split(",")]
    if args.write_doc:
        command = "sudo .venv/bin/python -m tools.groundtruth " + " ".join(
            [f"--ops {args.ops}", f"--seed {seed}"]
            + ([f"--rate {args.rate:g}"] if args.rate else [])
            + ([f"--jobs {args.jobs}"] if args.jobs != 1 else [])
            + (["--overload"] if args.overload else [])
            + [f"--backend {b}" for b in args.backend] + ["--write-doc"])
        doc = OVERLOAD_DOC if args.overload else DOC
        with open(doc, "w") as f:
            f.write(render(results, skipped, command, _machine(),
                           note=OVERLOAD_NOTE if args.overload else VM_NOTE,
                           title=OVERLOAD_TITLE if args.overload else TITLE))
        print(f"wrote {doc}")
    if bad:
        print(f"FAILED (seed {seed}): {', '.join(bad)}", file=sys.stderr)
        return 1
    return 0


def _write_json(path: str, seed: int, args: argparse.Namespace, results: List[check.Result],
                skipped: List[Tuple[str, str]], running: Optional[str] = None) -> None:
    data = {"seed": seed, "ops": args.ops, "rate": args.rate, "jobs": args.jobs,
            "kernel": platform.release(), "machine": _machine(), "running": running,
            "results": [r.to_dict() for r in results],
            "skipped": [{"label": label, "why": why} for label, why in skipped]}
    with open(path + ".tmp", "w") as f:
        json.dump(data, f, indent=1)
        f.write("\n")
    os.replace(path + ".tmp", path)


def _machine() -> str:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, cwd=os.path.dirname(DOC)).stdout.strip()
    except OSError:
        commit = "?"
    return f"Linux {platform.release()} ({platform.machine()}), {os.cpu_count()} CPUs, " \
           f"hybridtrace commit {commit or '?'}"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
