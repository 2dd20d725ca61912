"""Which workloads run at which rates for how long (full run <= 15 min here)."""

from __future__ import annotations

from typing import Dict, List, Optional

from tools.bench.workloads import Workload

# Offered rates per workload; 0 = flat out. Exec tops out near 4k/s on 2 cores,
# so higher exec rates would only repeat the flat-out run.
# uring-open-loop: the open loop's paths opened through io_uring (no open syscall).
FULL_RATES = {"open-loop": [1000, 10000, 50000, 100000, 0], "uring-open-loop": [10000, 0],
              "exec-loop": [1000, 0], "shell-loop": [0]}
QUICK_RATES = {"open-loop": [10000, 0], "uring-open-loop": [0], "exec-loop": [0],
               "shell-loop": [0]}
KINDS = {"open-loop": "open", "uring-open-loop": "open", "exec-loop": "exec",
         "shell-loop": "exec"}
SUSTAINED_RATE = 50000  # the target: no loss at 50k/s for 30 s
SUSTAINED_RATES = (SUSTAINED_RATE, 100000)  # ftrace's target: 100k/s for 30 s too


def build_plan(quick: bool, duration: Optional[float], sustain: Optional[float],
               workloads: Optional[List[str]] = None,
               rates_given: Optional[Dict[str, List[int]]] = None) -> List[Workload]:
    """``rates_given`` replaces the table's rates of the workloads it names (--rates)."""
    rates = {**(QUICK_RATES if quick else FULL_RATES), **(rates_given or {})}
    base = duration if duration is not None else (2.0 if quick else 8.0)
    long = sustain if sustain is not None else (base if quick else 30.0)
    plan = []
    for name, wanted in rates.items():
        if workloads and name not in workloads:
            continue
        for rate in wanted:
            span = long if name == "open-loop" and rate in SUSTAINED_RATES else base
            plan.append(Workload(name=name, kind=KINDS[name], rate=rate, duration=span))
    return plan


def parse_rates(text: str) -> Dict[str, List[int]]:
    """--rates WORKLOAD=R,R,...[;WORKLOAD=...] (0 = flat out): ValueError with the reason."""
    found: Dict[str, List[int]] = {}
    for item in filter(None, (part.strip() for part in text.split(";"))):
        name, sep, values = item.partition("=")
        if name not in KINDS or not sep:
            raise ValueError(f"{item!r} is not WORKLOAD=R,R,... with a workload of"
                             f" {', '.join(KINDS)}")
        try:
            found[name] = [int(v) for v in values.split(",")]
        except ValueError:
            raise ValueError(f"{item!r}: rates are whole numbers per second") from None
        if not found[name] or min(found[name]) < 0:
            raise ValueError(f"{item!r}: rates are >= 0 (0: flat out)")
    if not found:
        raise ValueError("no WORKLOAD=R,R,... given")
    return found
