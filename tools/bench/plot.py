"""captured_vs_offered.png: captured and missed rate against offered rate, per tracer.

matplotlib is an optional bench dependency (the ``bench`` extra); without it
the bench still writes the JSON and the table.
"""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

Point = Tuple[float, float, float]  # offered/s, captured/s, missed/s


def series(runs: List[Dict[str, Any]], workload: str) -> Dict[str, List[Point]]:
    found: Dict[str, List[Point]] = {}
    for r in runs:
        if r["status"] != "ok" or r["tracer"] == "untraced" or r["workload"] != workload:
            continue
        span = r["elapsed_s"] or 1.0
        offered = r["rate_offered"] or r["achieved_rate"]
        point = (float(offered), r["captured"] / span, r["missed"] / span)
        found.setdefault(r["tracer"], []).append(point)
    for points in found.values():
        points.sort()
    return found


def plot(runs: List[Dict[str, Any]], path: str, title: str) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    workloads = [w for w in ("open-loop", "exec-loop") if series(runs, w)]
    if not workloads:
        return False
    names = sorted({t for w in workloads for t in series(runs, w)})
    palette = plt.get_cmap("tab10")
    color = {name: palette(i % 10) for i, name in enumerate(names)}  # same tracer, same colour
    fig, axes = plt.subplots(2, len(workloads), figsize=(6.5 * len(workloads), 8), squeeze=False)
    for col, workload in enumerate(workloads):
        data = series(runs, workload)
        top, bottom = axes[0][col], axes[1][col]
        span = [min(p[0] for ps in data.values() for p in ps),
                max(p[0] for ps in data.values() for p in ps)]
        top.plot(span, span, linestyle=":", color="grey", label="captured = offered")
        for tracer, points in sorted(data.items()):
            xs = [p[0] for p in points]
            top.plot(xs, [p[1] for p in points], marker="o", label=tracer, color=color[tracer])
            bottom.plot(xs, [p[2] for p in points], marker="o", label=tracer,
                        color=color[tracer])
        top.set_title(f"{workload}: captured")
        bottom.set_title(f"{workload}: missed = produced - captured")
        for ax in (top, bottom):
            ax.set_xscale("log")
            ax.set_xlabel("offered events/s (flat out: achieved)")
            ax.grid(True, which="both", alpha=0.3)
        top.set_yscale("log")
        top.set_ylabel("captured events/s")
        bottom.set_yscale("symlog", linthresh=1.0)
        bottom.set_ylim(bottom=0)
        bottom.set_ylabel("missed events/s")
        top.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True
