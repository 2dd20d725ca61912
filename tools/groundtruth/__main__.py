"""Ground-truth differential run of every backend this machine has (root).

    sudo .venv/bin/python -m tools.groundtruth [--ops N] [--seed S] [--rate R]
                                               [--jobs J] [--backend LABEL ...] [--write-doc]

Prints each backend's per-field counts and every WRONG value; exits 1 when any
backend reported a WRONG value (or a stray event), or missed an event without
a loss to account for it. ``--write-doc`` writes docs/ground_truth.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import subprocess
import sys
from typing import List

from tools.groundtruth import check
from tools.groundtruth.table import render

DOC = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                   "docs", "ground_truth.md")


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.groundtruth", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ops", type=int, default=2000, help="operations per backend")
    parser.add_argument("--seed", type=int, default=None, help="default: random (printed)")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="operations per second (0: flat out)")
    parser.add_argument("--jobs", type=int, default=1, help="scenarios (processes) at once")
    parser.add_argument("--backend", action="append", default=[],
                        help="only these labels, e.g. ebpf-core/tp_btf, ftrace/uprobe")
    parser.add_argument("--write-doc", action="store_true", help=f"write {DOC}")
    args = parser.parse_args(argv)
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
        result = check.run(target, seed, args.ops, args.rate, args.jobs)
        print(result.summary(), flush=True)
        results.append(result)
    bad = [r.target for r in results if not r.passed]
    if args.write_doc:
        command = "sudo .venv/bin/python -m tools.groundtruth " + " ".join(
            [f"--ops {args.ops}", f"--seed {seed}"]
            + ([f"--rate {args.rate:g}"] if args.rate else [])
            + ([f"--jobs {args.jobs}"] if args.jobs != 1 else [])
            + [f"--backend {b}" for b in args.backend] + ["--write-doc"])
        with open(DOC, "w") as f:
            f.write(render(results, skipped, command, _machine()))
        print(f"wrote {DOC}")
    if bad:
        print(f"FAILED (seed {seed}): {', '.join(bad)}", file=sys.stderr)
        return 1
    return 0


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
