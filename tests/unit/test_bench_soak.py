"""The soak's pieces: telling when a tracer is ready or why it did not start,
judging growth from samples, and the page it writes."""

from __future__ import annotations

import time
from typing import Any, Dict, List

import pytest

from tools.bench.running import NotStarted, Running
from tools.bench.soak import lost_reported, render, summarize


def test_a_tracer_that_exits_says_all_it_printed() -> None:
    with pytest.raises(NotStarted) as caught:
        Running(["sh", "-c", "echo first line >&2; echo second line >&2; exit 3"])
    text = str(caught.value)
    assert "exited 3" in text and "first line / second line" in text


def test_a_tracer_that_never_shows_its_start_line_is_stopped_and_named() -> None:
    started = time.monotonic()
    with pytest.raises(NotStarted) as caught:
        Running(["sh", "-c", "echo compiling >&2; exec sleep 30"], ready_timeout=0.5,
                ready_on_stderr=b"hybridtrace: tracing ")
    assert time.monotonic() - started < 10
    assert "no start line on stderr within 0.5 s" in str(caught.value)
    assert "compiling" in str(caught.value)


def test_ready_on_the_start_line_then_counts_output_and_keeps_the_summary() -> None:
    script = ("echo 'hybridtrace: tracing open with x' >&2; trap 'echo summary 0 lost >&2;"
              " exit 0' INT; printf 'a\\nb\\n'; while :; do sleep 0.05; done")
    tracer = Running(["sh", "-c", script], settle=0.3, ready_timeout=10,
                     ready_on_stderr=b"hybridtrace: tracing ")
    err = tracer.stop()
    assert tracer.lines_out == 2 and tracer.bytes_out == 4
    assert err.splitlines()[-1] == "summary 0 lost"


def _samples(rss: List[int], fds: List[int]) -> List[Dict[str, float]]:
    return [{"t": 5.0 * i, "rss_kb": r, "fds": f, "cpu_s": float(i), "load1": 1.0}
            for i, (r, f) in enumerate(zip(rss, fds))]


def test_growth_is_judged_in_the_last_third_only() -> None:
    flat_end = summarize(_samples([1000, 2000, 3000, 3000, 3000, 3000], [9] * 6), 0, "")
    assert not flat_end["rss_growing_at_end"] and not flat_end["fds_growing_at_end"]
    growing = summarize(_samples([1000] * 4 + [1100, 1200], [9] * 5 + [10]), 0, "")
    assert growing["rss_growing_at_end"] and growing["fds_growing_at_end"]
    assert growing["cpu_s"] == 5.0 and growing["cpu_s_per_min"] == 12.0


def test_the_page_names_what_was_left_out_and_why_a_row_did_not_run() -> None:
    row: Dict[str, Any] = summarize(_samples([2048] * 4, [16] * 4), 10**6,
                                    "hybridtrace: tracing\nhybridtrace: 9 events shown, 0 lost")
    row.update(ready_s=0.2, events_out=9, cpu_s_per_100k_events=1.0, load_rates={
        "open": 10000.0, "exec": 100.0}, load1_at_start=1.0, others_cpu_pct=12.5,
        others_top=[("python -m pytest", 3.2)], lost_reported="0 lost")
    page = render({"machine": {"kernel": "k", "cpus": 2, "cpu": "c", "hybridtrace_commit": "x"},
                   "date": "d", "minutes": 2.0,
                   "left_out": [["hybridtrace ftrace/kprobe", "no kprobe_events"]],
                   "tracers": {"hybridtrace ebpf-core/tp_btf": row,
                               "hybridtrace ebpf-bcc": {"error": "python showed no start"}}})
    assert "- hybridtrace ftrace/kprobe: no kprobe_events" in page
    assert "| hybridtrace ebpf-bcc | **did not run**: python showed no start |" in page
    assert "| 0 lost |" in page and "python -m pytest 3.2" in page and "12.5%" in page



def test_losses_as_each_tracer_reports_them() -> None:
    ours = "hybridtrace: tracing open with x\nhybridtrace: 5 events shown, up to 7 lost" \
           " (counted in ring-buffer records), 2.0 s (ftrace/uprobe)\n"
    assert lost_reported(ours, ours=True) == "up to 7 lost (counted in ring-buffer records)"
    theirs = "Lost 99 events on CPU #1!\nLost 3 events on CPU #0!\n"
    assert lost_reported(theirs, ours=False) == "102 lost (2 reports)"
    assert lost_reported("", ours=False) == "none reported"
    assert lost_reported("", ours=True) is None
