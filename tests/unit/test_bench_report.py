"""Table, targets and plot data of the bench, from a recorded quick run's results.json."""

from __future__ import annotations

import json
import os
import re
from typing import Any, Dict

from tools.bench.plot import series
from tools.bench.summary import HEADER as SUMMARY_HEADER
from tools.bench.summary import render_summary
from tools.bench.table import HEADER, pct, render_table
from tools.bench.targets import judge, lossless_rate

FIXTURE = os.path.join(os.path.dirname(__file__), os.pardir, "fixtures", "bench",
                       "results.quick.json")


def load() -> Dict[str, Any]:
    with open(FIXTURE) as f:
        return json.load(f)  # type: ignore[no-any-return]


def cells(line: str) -> int:
    return len(re.split(r"(?<!\\)\|", line.strip())[1:-1])


def test_table_has_one_well_formed_row_per_run() -> None:
    runs = load()["runs"]
    text = render_table(runs)
    rows = text.splitlines()
    assert len(rows) == 2 + len(runs)
    assert all(cells(r) == len(HEADER) for r in rows)
    for run, line in zip(runs, rows[2:]):
        assert line.startswith(f"| {run['tracer']} | {run['workload']} |")
        if run["status"] == "ok" and run["tracer"] != "untraced":
            assert f"| {run['produced']:,} |" in line
            assert f"{run['captured']:,} ({pct(run['captured_share'])})" in line
        if run["status"] != "ok":
            assert f"**{run['status']}**" in line


def test_pct() -> None:
    assert (pct(1.0), pct(0.5), pct(0.99991), pct(None)) == ("100%", "50%", "99.99%", "-")


def test_targets_cover_every_goal() -> None:
    runs = load()["runs"]
    lines = judge(runs)
    assert len(lines) == 19
    assert all(re.match(r"- (met|\*\*missed\*\*|not measured): ", ln) for ln in lines)
    # The fallback's targets (ftrace at 100k/s, CPU per open, flat out; exec within 5%).
    for goal in ("no loss at 100k opens/s with hybridtrace ftrace/uprobe",
                 "at most 1.0 CPU-s per 100k opens at 50k/s with hybridtrace ftrace/tracepoint",
                 ">= 90% captured and every loss reported", "ebpf-core at most 1.05x",
                 "less CPU per open than libbpf-tools"):
        assert any(goal in line for line in lines), goal
    rate = lossless_rate(runs, "libbpf-tools")
    clean = [r for r in runs if r["tracer"] == "libbpf-tools" and r["status"] == "ok"
             and r["workload"] == "open-loop" and r["missed"] == 0 and r["lost_reported"] == 0]
    assert rate == max((r["rate_offered"] or r["achieved_rate"]) for r in clean)


def test_plot_series_per_tracer() -> None:
    runs = load()["runs"]
    data = series(runs, "open-loop")
    assert "untraced" not in data
    for tracer, points in data.items():
        done = [r for r in runs if r["tracer"] == tracer and r["workload"] == "open-loop"
                and r["status"] == "ok"]
        assert len(points) == len(done)
        assert [p[0] for p in points] == sorted(p[0] for p in points)
        assert all(c >= 0 and m >= 0 for _, c, m in points)


def test_summary_one_row_per_tracer_that_ran() -> None:
    runs = load()["runs"]
    text = render_summary(runs)
    rows = text.splitlines()[2:]
    ran = {r["tracer"] for r in runs if r["status"] == "ok" and r["tracer"] != "untraced"}
    assert {r.split(" | ")[0].lstrip("| ") for r in rows} == ran
    assert all(cells(r) == len(SUMMARY_HEADER) for r in rows)
    core = next(r for r in rows if r.startswith("| hybridtrace ebpf-core |"))
    shell = next(r for r in runs if r["tracer"] == "hybridtrace ebpf-core"
                 and r["workload"] == "shell-loop" and r["status"] == "ok")
    assert f"| {pct(shell['correct'] / shell['produced'])} |" in core


def test_lossless_rate_tells_never_lossless_from_not_run() -> None:
    def run(rate: int, missed: int, lost: int) -> Dict[str, Any]:
        return {"tracer": "t", "family": "x", "status": "ok", "workload": "open-loop",
                "rate_offered": rate, "missed": missed, "lost_reported": lost,
                "achieved_rate": 1234.0}

    assert lossless_rate([run(1000, 1, 0), run(0, 0, 5)], "t") == 0.0
    assert lossless_rate([run(1000, 0, 0), run(10000, 3, 3)], "t") == 1000
    assert lossless_rate([run(1000, 0, 0), run(0, 0, 0)], "t") == 1234.0  # flat out: achieved
    assert lossless_rate([run(1000, 0, 0)], "other") is None
