"""Save a sample of a real run's raw output as a unit-test fixture.

Kept: the first lines (headers, start-up messages), the lines carrying the
run's markers (up to a cap) and stderr, plus a JSON file saying what the
workload did, so tests can parse real tool output and check the accounting
against facts recorded at the time rather than invented ones.
"""

from __future__ import annotations

import json
import os
import re

from tools.bench.tracers import Tracer
from tools.bench.workloads import Outcome, Workload

HEAD_LINES = 5
MARKED_LINES = 60


def slug(tracer: Tracer, w: Workload) -> str:
    name = re.sub(r"[^a-z0-9]+", "-", tracer.name.lower()).strip("-")
    return f"{name}.{w.name}"


def record(directory: str, tracer: Tracer, w: Workload, outcome: Outcome, token: str,
           out_path: str, err_path: str) -> None:
    os.makedirs(directory, exist_ok=True)
    base = os.path.join(directory, slug(tracer, w))
    marks = (token.encode(), f"hx{token}".encode(), b'"pid":%d,' % outcome.pid)
    with open(out_path, "rb") as f:
        lines = f.read().splitlines(keepends=True)
    kept = lines[:HEAD_LINES]
    kept += [ln for ln in lines[HEAD_LINES:]
             if any(m in ln for m in marks) or ln.startswith(b"%d " % outcome.pid)][:MARKED_LINES]
    with open(base + ".stdout", "wb") as f:
        f.writelines(kept)
    with open(err_path, "rb") as f:
        err = f.read().splitlines(keepends=True)[:50]
    with open(base + ".stderr", "wb") as f:
        f.writelines(err)
    want = outcome.expectation
    meta = {
        "tracer": tracer.name, "family": tracer.family, "command": list(tracer.argv),
        "kind": tracer.kind, "workload": w.name, "rate_offered": w.rate, "token": token,
        "pid": outcome.pid, "produced": outcome.produced,
        "expect": {k: v.decode() if isinstance(v, bytes) else v
                   for k, v in {"prefix": getattr(want, "prefix", None),
                                "child": getattr(want, "child", None),
                                "pad": getattr(want, "pad", None)}.items() if v is not None},
        "stdout_lines_total": len(lines), "stdout_lines_kept": len(kept),
    }
    with open(base + ".json", "w") as f:
        json.dump(meta, f, indent=1, sort_keys=True)
        f.write("\n")


def record_failure(directory: str, tracer: Tracer, w: Workload, out_path: str,
                   err_path: str, reason: str) -> None:
    """What a tracer that could not start printed, and the reason the bench took from it."""
    os.makedirs(directory, exist_ok=True)
    base = os.path.join(directory, f"cannot.{slug(tracer, w)}")
    for src, ext in ((out_path, "stdout"), (err_path, "stderr")):
        with open(src, "rb") as f:
            head = f.read().splitlines(keepends=True)[:100]
        with open(f"{base}.{ext}", "wb") as f:
            f.writelines(head)
    with open(base + ".json", "w") as f:
        json.dump({"tracer": tracer.name, "command": list(tracer.argv), "env": tracer.env,
                   "kind": tracer.kind, "reason": reason}, f, indent=1, sort_keys=True)
        f.write("\n")
