"""The benchmark's targets, judged from one run's results (never asserted in tests)."""

from __future__ import annotations

from typing import Any, Dict, List, NamedTuple, Optional

Run = Dict[str, Any]


class Verdict(NamedTuple):
    """One target: a key stable across runs (to pair two runs), met or not, the text."""

    key: str
    met: Optional[bool]  # None: not measured
    text: str
OURS_FIRST_EVENT = ("hybridtrace ebpf-core", "hybridtrace ftrace/uprobe",
                    "hybridtrace ftrace/tracepoint")


def _ok(runs: List[Run], tracer: Optional[str] = None, workload: Optional[str] = None,
        rate: Optional[int] = None) -> List[Run]:
    return [r for r in runs if r["status"] == "ok" and r["tracer"] != "untraced"
            and (tracer is None or r["tracer"] == tracer)
            and (workload is None or r["workload"] == workload)
            and (rate is None or r["rate_offered"] == rate)]


def mark(met: Optional[bool]) -> str:
    return "not measured" if met is None else ("met" if met else "**missed**")


def lossless_rate(runs: List[Run], tracer: str) -> Optional[float]:
    """Highest open-loop rate with nothing missed or lost (flat out counts as achieved).

    0.0 when the tracer ran but lost at every rate; None when it did not run.
    """
    best: Optional[float] = None
    for r in _ok(runs, tracer, "open-loop"):
        best = 0.0 if best is None else best
        if r["missed"] == 0 and r["lost_reported"] == 0:
            offered = r["rate_offered"] or r["achieved_rate"]
            best = offered if best is None else max(best, offered)
    return best


def slowdown(runs: List[Run], tracer: str, workload: str) -> Optional[float]:
    found = _ok(runs, tracer, workload, 0)
    rel = found[0]["throughput_relative"] if found else None
    return None if not rel else 1.0 / rel


def verdicts(runs: List[Run]) -> List[Verdict]:
    found: List[Verdict] = []
    ours = [r for r in _ok(runs) if r["family"] == "hybridtrace"]
    bad = [f"{r['tracer']} {r['workload']}@{r['rate_offered'] or 'max'}: {r['unaccounted']}"
           for r in ours if r["unaccounted"] != 0]
    found.append(Verdict("accounted", None if not ours else not bad,
                         "every event of ours accounted for (captured + reported lost ="
                         " produced) at every rate" + (f"; unaccounted: {', '.join(bad)}"
                                                       if bad else f" ({len(ours)} runs)")))
    core = "hybridtrace ebpf-core"
    execs = _ok(runs, core, "exec-loop")
    shares = [r["correct"] / r["produced"] for r in execs if r["produced"]]
    found.append(Verdict("argv ebpf-core", None if not shares else min(shares) >= 0.99,
                         "argv complete and correct for >= 99% of fork()+execv() execs with"
                         f" ebpf-core (lowest: {min(shares):.2%})" if shares else
                         "argv >= 99% with ebpf-core"))
    for tracer in (core, "hybridtrace ftrace/uprobe"):
        sus = _ok(runs, tracer, "open-loop", 50000)
        met = None if not sus else all(r["missed"] == 0 and r["lost_reported"] == 0
                                       for r in sus)
        span = f"{sus[0]['duration_s']:.0f} s" if sus else "30 s"
        found.append(Verdict(f"sustained 50k {tracer}", met,
                             f"no loss at 50k opens/s for {span} with {tracer}"))
    ref = lossless_rate(runs, "libbpf-tools")
    mine = lossless_rate(runs, core)
    tiers = [lossless_rate(runs, f"hybridtrace ftrace/{t}") for t in ("uprobe", "tracepoint")]
    known = [t for t in tiers if t is not None]
    ftrace = max(known) if known else None
    found.append(Verdict("lossless rate vs libbpf-tools",
                         None if ref is None or mine is None else mine >= ref,
                         f"highest lossless open rate: ebpf-core {_r(mine)} vs libbpf-tools"
                         f" opensnoop {_r(ref)}"))
    found.append(Verdict("ftrace half of ebpf-core",
                         None if mine is None or ftrace is None else ftrace >= mine / 2,
                         f"ftrace at least half of ebpf-core's: {_r(ftrace)}"))
    for workload in ("open-loop", "exec-loop"):
        a, b = slowdown(runs, core, workload), slowdown(runs, "libbpf-tools", workload)
        found.append(Verdict(f"{workload} slowdown",
                             None if a is None or b is None else a <= 1.2 * b,
                             f"{workload} flat-out slowdown: ebpf-core {_x(a)} vs"
                             f" libbpf-tools {_x(b)} (target <= 1.2 times)"))
    found += _fallback_targets(runs)
    for tracer in OURS_FIRST_EVENT:
        firsts = [r["first_event_s"] for r in _ok(runs, tracer)]
        found.append(Verdict(f"first event {tracer}",
                             None if not firsts else max(firsts) <= 0.5,
                             f"first event within 0.5 s with {tracer}"
                             + (f" (worst {max(firsts):.2f} s)" if firsts else "")))
    return found


FTRACE_TIERS = ("hybridtrace ftrace/uprobe", "hybridtrace ftrace/tracepoint")


def _fallback_targets(runs: List[Run]) -> List[Verdict]:
    """The fallback at full speed (ftrace lossless at 100k opens/s, at most 1.0 CPU-s per
    100k opens at 50k/s, 90% captured flat out with every loss reported), ebpf-core's
    exec loop within 5% of untraced, and ebpf-core's CPU per open below libbpf-tools'."""
    found: List[Verdict] = []
    for tracer in FTRACE_TIERS:
        fast = _ok(runs, tracer, "open-loop", 100000)
        found.append(Verdict(f"sustained 100k {tracer}", None if not fast else all(
            r["missed"] == 0 and r["lost_reported"] == 0 for r in fast),
            f"no loss at 100k opens/s with {tracer}"))
        cpu = [r["cpu_s_per_100k"] for r in _ok(runs, tracer, "open-loop", 50000)
               if r["cpu_s_per_100k"] is not None]
        found.append(Verdict(f"cpu 50k {tracer}", None if not cpu else max(cpu) <= 1.0,
                             f"at most 1.0 CPU-s per 100k opens at 50k/s with {tracer}"
                             + (f" ({max(cpu):.2f})" if cpu else "")))
        flat = [r for r in _ok(runs, tracer, "open-loop", 0) if r["produced"]]
        share = min((r["captured"] / r["produced"] for r in flat), default=None)
        found.append(Verdict(f"flat out {tracer}", None if share is None else (
            share >= 0.9 and all(r["unaccounted"] == 0 for r in flat)),
            f"flat out, >= 90% captured and every loss reported with {tracer}"
            + ("" if share is None else f" ({share:.0%})")))
    core = slowdown(runs, "hybridtrace ebpf-core", "exec-loop")
    found.append(Verdict("exec slowdown 1.05", None if core is None else core <= 1.05,
                         f"exec-loop flat-out slowdown with ebpf-core at most 1.05x ({_x(core)})"))
    cpu_core, cpu_ref = (
        [r["cpu_s_per_100k"] for r in _ok(runs, t, "open-loop", 50000)
         if r["cpu_s_per_100k"] is not None]
        for t in ("hybridtrace ebpf-core", "libbpf-tools"))
    found.append(Verdict("cpu vs libbpf-tools", None if not (cpu_core and cpu_ref) else
                         max(cpu_core) < min(cpu_ref),
                         "less CPU per open than libbpf-tools at 50k/s: ebpf-core"
                         f" {_n(cpu_core)} vs {_n(cpu_ref)} CPU-s per 100k"))
    return found


def _n(values: List[float]) -> str:
    return "-" if not values else f"{max(values):.2f}"


def judge(runs: List[Run]) -> List[str]:
    return [f"- {mark(v.met)}: {v.text}" for v in verdicts(runs)]


def _r(value: Optional[float]) -> str:
    if value is None:
        return "not run"
    return "none (lost at every rate)" if value == 0 else f"{value:,.0f}/s"


def _x(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.2f}x"
