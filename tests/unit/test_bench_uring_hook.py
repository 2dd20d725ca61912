"""The io_uring hook's cost page: per-program costs between two readings, the split
into io_uring programs and the others, medians over rounds, and the page."""

from __future__ import annotations

from typing import Any, Dict

from tools.bench.bpf_stats import ProgStats, costs
from tools.bench.uring_hook import render, split, summary


def test_costs_count_only_programs_that_ran_between_the_readings() -> None:
    before = {1: ProgStats(1, 1000, 10), 2: ProgStats(2, 500, 5), 3: ProgStats(3, 0, 0)}
    after = {1: ProgStats(1, 5000, 30), 2: ProgStats(2, 500, 5), 3: ProgStats(3, 900, 3),
             4: ProgStats(4, 100, 1)}  # 4 appeared meanwhile: no reading to start from
    got = costs(before, after, {1: "a", 3: "c"}, per=10)
    assert got == {"a": {"runs_per_op": 2.0, "ns_per_run": 200.0, "ns_per_op": 400.0},
                   "c": {"runs_per_op": 0.3, "ns_per_run": 300.0, "ns_per_op": 90.0}}


def _round(uring_ns: float) -> Dict[str, Any]:
    progs = {"ht_openat_exit (tracepoint)": {"runs_per_op": 1.0, "ns_per_run": 2000.0,
                                             "ns_per_op": 2000.0}}
    uring = {"ht_uring_submit_req (tracing)": {"runs_per_op": 1.0, "ns_per_run": uring_ns,
                                               "ns_per_op": uring_ns}}
    return {"open-loop": {"opens": 40000, "programs": progs, "tracer_cpu_us": 5.0},
            "uring-open-loop": {"opens": 39999, "programs": {**progs, **uring},
                                "tracer_cpu_us": 6.0}}


def test_split_and_medians() -> None:
    assert split(_round(1500)["uring-open-loop"]["programs"]) == {"uring_ns": 1500,
                                                                  "other_ns": 2000}
    row = summary([_round(1500), _round(900), _round(3000)])
    assert row["rounds"] == 3
    assert row["open-loop"]["uring_ns"] == 0 and row["open-loop"]["other_ns"] == 2000
    assert row["uring-open-loop"]["uring_ns"] == 1500
    assert row["open-loop"]["programs"] == {"ht_openat_exit (tracepoint)": {
        "runs_per_op": 1.0, "ns_per_run": 2000.0, "ns_per_op": 2000.0}}
    # a program that ran in only some rounds counts 0 in the others
    without = _round(0)
    del without["uring-open-loop"]["programs"]["ht_uring_submit_req (tracing)"]
    row = summary([_round(1500), without, without])
    assert row["uring-open-loop"]["programs"]["ht_uring_submit_req (tracing)"]["ns_per_op"] == 0


def test_page_rows() -> None:
    result = {"date": "2026-12-07", "rate": 10000, "duration": 4.0, "rounds": 3,
              "load_start": [0.1, 0, 0], "load_end": [0.2, 0, 0],
              "machine": {"kernel": "6.18", "cpus": 2, "cpu": "x", "hybridtrace_commit": "abc"},
              "tracers": {"ours": summary([_round(1500)]),
                          "theirs": {"error": "exited 1: no BTF"}}}
    page = render(result)
    assert "| ours | open-loop | 40,000 | 0 | 2,000 | 5.00 |" in page
    assert "| ours | uring-open-loop | 39,999 | 1,500 | 2,000 | 6.00 |" in page
    assert "| theirs | did not run: exited 1: no BTF |" in page
    assert "| ours | uring-open-loop | ht_uring_submit_req (tracing) | 1.00 | 1,500 | 1,500 |" \
        in page
