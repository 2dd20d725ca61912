"""captured_vs_offered.png: captured and missed rate against offered rate, per tracer.

Paced runs sit at their offered rate; flat-out runs at one "flat out" place
to the right (their achieved rate differs per tracer, since a tracer slows
the workload). matplotlib is an optional bench dependency (the ``bench``
extra); without it the bench still writes the JSON and the table.
"""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

Point = Tuple[float, float, float]  # x position, captured/s, missed/s


def flat_out_x(runs: List[Dict[str, Any]], workload: str) -> float:
    paced = [r["rate_offered"] for r in runs if r["workload"] == workload and r["rate_offered"]]
    return 2.0 * max(paced) if paced else 1000.0


def series(runs: List[Dict[str, Any]], workload: str) -> Dict[str, List[Point]]:
    found: Dict[str, List[Point]] = {}
    flat = flat_out_x(runs, workload)
    for r in runs:
        if r["status"] != "ok" or r["tracer"] == "untraced" or r["workload"] != workload:
            continue
        span = r["elapsed_s"] or 1.0
        x = float(r["rate_offered"]) if r["rate_offered"] else flat
        found.setdefault(r["tracer"], []).append((x, r["captured"] / span, r["missed"] / span))
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
        flat = flat_out_x(runs, workload)
        ticks = sorted({p[0] for ps in data.values() for p in ps})
        top, bottom = axes[0][col], axes[1][col]
        paced = [x for x in ticks if x != flat]
        if paced:
            top.plot(paced, paced, linestyle=":", color="grey", label="captured = offered")
        for tracer, points in sorted(data.items()):
            xs = [p[0] for p in points]
            top.plot(xs, [p[1] for p in points], marker="o", label=tracer, color=color[tracer])
            bottom.plot(xs, [p[2] for p in points], marker="o", label=tracer,
                        color=color[tracer])
        top.set_title(f"{workload}: captured")
        bottom.set_title(f"{workload}: missed = produced - captured")
        worst = max([p[2] for ps in data.values() for p in ps] + [1.0])
        for ax in (top, bottom):
            ax.set_xscale("log")
            ax.set_xticks(ticks)
            ax.set_xticklabels(["flat out" if x == flat else f"{x:,.0f}" for x in ticks])
            ax.minorticks_off()
            ax.set_xlabel("offered events/s")
            ax.grid(True, alpha=0.3)
        top.set_yscale("log")
        top.set_ylabel("captured events/s")
        bottom.set_yscale("symlog", linthresh=1.0)
        bottom.set_ylim(0, worst * 3)
        bottom.set_ylabel("missed events/s")
        top.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True
