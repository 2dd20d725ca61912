"""Each tracer's numbers as ratios to a reference tracer's from the same run.

Where absolute rates mean little (a VM under TCG runs 10-50x slower than the
machine it emulates, and shares that machine), what survives is how a tracer
compares with another measured in the same run, on the same kernel, at the
same time: this is that comparison, from one run's results document.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from tools.bench.table import cell, num, pct
from tools.bench.targets import slowdown

Run = Dict[str, Any]
REFERENCE = "hybridtrace ebpf-core"
HEADER = ("tracer", "lossless open rate", "CPU-s per 100k opens", "captured flat out",
          "open-loop slowdown", "exec-loop slowdown")


def ratio(value: Optional[float], reference: Optional[float]) -> Optional[float]:
    """value / reference, or None when either is unknown or the reference is 0."""
    if value is None or not reference:
        return None
    return value / reference


def _ok(runs: List[Run], tracer: str, workload: str, rate: Optional[int] = None) -> List[Run]:
    return [r for r in runs if r["tracer"] == tracer and r["workload"] == workload
            and r["status"] == "ok" and (rate is None or r["rate_offered"] == rate)]


def lossless_reached(runs: List[Run], tracer: str) -> Optional[float]:
    """The highest open-loop rate *reached* with nothing missed or lost: a paced run
    whose workload the tracer slowed below the offered rate counts at the rate it
    reached (under emulation a tracer slows the loop more often than it loses).
    0.0 when it lost at every rate; None when it did not run."""
    best: Optional[float] = None
    for r in _ok(runs, tracer, "open-loop"):
        reached = min(r["rate_offered"] or r["achieved_rate"], r["achieved_rate"])
        clean = r["missed"] == 0 and r["lost_reported"] == 0
        best = max(best or 0.0, reached if clean else 0.0)
    return best


def common_cpu(runs: List[Run], tracer: str, reference: str = REFERENCE
               ) -> Optional[Tuple[int, float, float]]:
    """(rate, tracer's, reference's CPU-s per 100k opens) at the highest paced open-loop
    rate both ran at; None when they share none."""
    def cpu(name: str, rate: int) -> Optional[float]:
        found = [r["cpu_s_per_100k"] for r in _ok(runs, name, "open-loop", rate)
                 if r["cpu_s_per_100k"] is not None]
        return found[0] if found else None
    rates = sorted({r["rate_offered"] for r in _ok(runs, tracer, "open-loop")
                    if r["rate_offered"]}, reverse=True)
    for rate in rates:
        mine, ref = cpu(tracer, rate), cpu(reference, rate)
        if mine is not None and ref is not None:
            return rate, mine, ref
    return None


def captured_flat_out(runs: List[Run], tracer: str) -> Optional[float]:
    """The share of the open loop's opens captured flat out (the lowest, if run twice)."""
    shares = [r["captured"] / r["produced"] for r in _ok(runs, tracer, "open-loop", 0)
              if r["produced"]]
    return min(shares) if shares else None


def _times(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _pair(mine: str, ref: str, rel: Optional[float]) -> str:
    return "-" if rel is None else f"**{rel:.2f}** ({mine} vs {ref})"


def row(runs: List[Run], tracer: str, reference: str = REFERENCE) -> List[str]:
    """One tracer's ratios to the reference, each with the two values it divides."""
    rate, ref_rate = lossless_reached(runs, tracer), lossless_reached(runs, reference)
    cpu = common_cpu(runs, tracer, reference)
    flat, ref_flat = captured_flat_out(runs, tracer), captured_flat_out(runs, reference)
    cells = [
        cell(tracer),
        _pair(num(rate, 0), num(ref_rate, 0), ratio(rate, ref_rate)),
        "-" if cpu is None else _pair(f"{cpu[1]:.2f}", f"{cpu[2]:.2f}",
                                      ratio(cpu[1], cpu[2])) + f" at {cpu[0]:,}/s",
        _pair(pct(flat), pct(ref_flat), ratio(flat, ref_flat)),
    ]
    for workload in ("open-loop", "exec-loop"):
        mine, ref = slowdown(runs, tracer, workload), slowdown(runs, reference, workload)
        cells.append(_pair(_times(mine), _times(ref), ratio(mine, ref)))
    return cells


def render_relative(runs: List[Run], reference: str = REFERENCE) -> str:
    """The table: every tracer that ran, other than the reference, against it."""
    names: List[str] = []
    for r in runs:
        if r["status"] == "ok" and r["tracer"] not in ("untraced", reference, *names):
            names.append(r["tracer"])
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row(runs, name, reference)) + " |" for name in names]
    return "\n".join(lines) + "\n"
