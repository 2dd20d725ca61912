"""Where our CLI spends its time at flat out: cProfile of one run per backend.

The issue asks for misses to come with the profile that explains them; a
Python tracer's limit is usually its per-event work in user space, which
cProfile shows directly (at some extra cost, so these runs are not in the
table).
"""

from __future__ import annotations

import os
import pstats
import sys
from typing import Any, Dict, List

from tools.bench.session import Context, run_traced
from tools.bench.tracers import Tracer
from tools.bench.workloads import Workload

TOP = 12


def profiled(tracer: Tracer, path: str) -> Tracer:
    """The same CLI run under cProfile, writing its profile to path on exit."""
    python = os.path.join(os.path.dirname(tracer.argv[0]), "python")
    if not os.path.exists(python):
        python = sys.executable
    argv = (python, "-m", "cProfile", "-o", path, "-m", "hybridtrace", *tracer.argv[1:])
    return Tracer(name=f"{tracer.name} (cProfile)", family=tracer.family, kind=tracer.kind,
                  argv=argv, output=tracer.output, env=tracer.env)


def top_functions(path: str, limit: int = TOP) -> List[Dict[str, Any]]:
    stats = pstats.Stats(path)
    raw: Dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in raw.values()) or 1.0
    rows = sorted(raw.items(), key=lambda kv: kv[1][2], reverse=True)[:limit]
    found = []
    for (filename, line, func), (_, ncalls, tottime, cumtime, _) in rows:
        short = filename.split("/hybridtrace/", 1)[-1] if "/hybridtrace/" in filename \
            else os.path.basename(filename)
        found.append({"function": f"{short}:{line}({func})", "calls": ncalls,
                      "self_s": round(tottime, 3), "self_share": round(tottime / total, 4),
                      "cumulative_s": round(cumtime, 3)})
    return found


def profile(tracer: Tracer, w: Workload, ctx: Context) -> Dict[str, Any]:
    path = os.path.join(ctx.workdir, f"profile-{os.getpid()}-{len(os.listdir(ctx.workdir))}")
    result = run_traced(profiled(tracer, path), w, Context(ctx.bins, ctx.workdir,
                                                           ctx.ready_timeout))
    result["profile"] = top_functions(path) if os.path.exists(path) else []
    return result
