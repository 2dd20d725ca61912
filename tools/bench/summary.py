"""One row per tracer: the numbers a reader compares first."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from tools.bench.table import num, pct
from tools.bench.targets import lossless_rate, slowdown

Run = Dict[str, Any]
HEADER = ("tracer", "lossless open rate/s", "captured at 50k opens/s", "exec-loop argv ok",
          "shell-loop argv ok", "open slowdown", "exec slowdown", "CPU s/100k (50k opens/s)",
          "peak RSS MB", "first event s (worst)", "session open s (worst)")


def _one(runs: List[Run], tracer: str, workload: str, rate: int) -> Optional[Run]:
    found = [r for r in runs if r["tracer"] == tracer and r["workload"] == workload
             and r["rate_offered"] == rate and r["status"] == "ok"]
    return found[0] if found else None


def _argv_ok(run: Optional[Run]) -> str:
    """Correct argv as a share of everything the workload produced."""
    return "-" if run is None or not run["produced"] else pct(run["correct"] / run["produced"])


def _times(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.2f}x"


def row(runs: List[Run], tracer: str) -> List[str]:
    mine = [r for r in runs if r["tracer"] == tracer and r["status"] == "ok"]
    rate = lossless_rate(runs, tracer)
    at50 = _one(runs, tracer, "open-loop", 50000)
    return [
        tracer,
        "-" if rate is None else ("none" if rate == 0 else f"{rate:,.0f}"),
        "-" if at50 is None else pct(at50["captured_share"]),
        _argv_ok(_one(runs, tracer, "exec-loop", 0)),
        _argv_ok(_one(runs, tracer, "shell-loop", 0)),
        _times(slowdown(runs, tracer, "open-loop")),
        _times(slowdown(runs, tracer, "exec-loop")),
        "-" if at50 is None else num(at50["cpu_s_per_100k"]),
        num(max(r["peak_rss_kb"] for r in mine) / 1024, 1),
        num(max(r["first_event_s"] for r in mine)),
        num(max((r.get("session_open_s") or 0.0 for r in mine), default=None)
            if any(r.get("session_open_s") is not None for r in mine) else None),
    ]


def render_summary(runs: List[Run]) -> str:
    names: List[str] = []
    for r in runs:
        if r["status"] == "ok" and r["tracer"] != "untraced" and r["tracer"] not in names:
            names.append(r["tracer"])
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row(runs, name)) + " |" for name in names]
    return "\n".join(lines) + "\n"
