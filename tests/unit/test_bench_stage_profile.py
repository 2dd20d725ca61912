"""Filing py-spy's samples of the ftrace stream under its stages, and the page made of them."""

from __future__ import annotations

import pytest

from tools.bench.stage_profile import OTHER, per_open, render, split_samples, stage_of

ROOT = "/x/hybridtrace/"
# py-spy's raw output: one line a distinct stack, outermost frame first, then its count.
RAW = "\n".join([
    f"<module> (hybridtrace/__main__.py:1);poll ({ROOT}api.py:99);"
    f"read ({ROOT}backends/ftrace/raw_reader.py:131);"
    f"decode_page ({ROOT}backends/ftrace/raw_records.py:112) 30",
    f"poll ({ROOT}api.py:99);_read ({ROOT}backends/ftrace/stream.py:369);"
    f"feed ({ROOT}backends/ftrace/correlate.py:282) 50",
    f"poll ({ROOT}api.py:99);read ({ROOT}backends/ftrace/raw_reader.py:131) 5",
    f"_read_page ({ROOT}backends/ftrace/raw_reader.py:160) 5",
    f"fill ({ROOT}backends/ftrace/origin_proof.py:210) 5",
    f"write_batch ({ROOT}cli/common.py:263);_open_json ({ROOT}output/jsonl.py:195) 4",
    "collect (<frozen gc>) 1",
    "garbage line without a count",
])


def test_the_innermost_frame_decides_the_stage() -> None:
    counts = split_samples(RAW)
    assert counts == {"record decode": 30, "correlate": 50,
                      "merge, hold-back, hand-over": 5, "page read": 5,
                      "origin proofs": 5, "output (JSON, write)": 4, OTHER: 1}
    assert stage_of("something (/usr/lib/python3.11/json/encoder.py:1)") == OTHER


def test_cpu_split_by_sample_share_per_open() -> None:
    result = {"tier": "uprobe", "rate": 50000, "duration_s": 10.0, "produced": 500000,
              "seen": 500000, "lost_reported": 0, "cpu_s": 5.0,
              "loadavg_at_start": [0.1, 0.1, 0.1], "samples": split_samples(RAW)}
    us = per_open(result)
    assert sum(us.values()) == pytest.approx(10.0)  # 5 CPU-s over 500k opens
    assert us["correlate"] == pytest.approx(10.0 * 50 / 100)
    before = {"commit": "abc1234", "results": [dict(result, cpu_s=10.0)]}
    page = render([result], "now", "def5678", before)
    assert "**1.00 CPU-s per 100k opens**" in page
    assert "| correlate | 10.00 | 5.00 |" in page  # before, after
    assert "| **total** | **20.00** | **10.00** |" in page
