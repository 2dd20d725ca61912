"""The benchmark in a VM (tools/vm/bench.py): its command line for tools.bench in the
guest, --rates, whole-name --tracers, and each tier's ratios to ebpf-core
(tools/bench/relative.py) on the generated page. No VM is booted."""

from __future__ import annotations

import copy
import json
import os
import re
from typing import Any, Dict, List, Optional

import pytest

from tools.bench import run as bench_run
from tools.bench.plan import build_plan, parse_rates
from tools.bench.relative import (
    captured_flat_out,
    common_cpu,
    lossless_reached,
    ratio,
    render_relative,
    row,
)
from tools.bench.tracers import tracers
from tools.vm import bench

CORE, KPROBE = "hybridtrace ebpf-core", "hybridtrace ftrace/kprobe"


def _run(tracer: str, workload: str, rate: int, produced: int = 1000, captured: int = 1000,
         lost: int = 0, cpu: Optional[float] = 1.0, achieved: Optional[float] = None,
         relative: Optional[float] = None, status: str = "ok") -> Dict[str, Any]:
    return {"tracer": tracer, "workload": workload, "rate_offered": rate, "status": status,
            "produced": produced, "captured": captured, "lost_reported": lost,
            "missed": produced - captured, "cpu_s_per_100k": cpu,
            "achieved_rate": achieved if achieved is not None else float(rate or 1000),
            "throughput_relative": relative, "family": "hybridtrace", "kind": "open",
            "unaccounted": produced - captured - lost, "correct": captured,
            "captured_share": captured / produced, "correct_share": 1.0, "peak_rss_kb": 2048,
            "first_event_s": 1.0, "duration_s": 4.0}


def _runs() -> List[Dict[str, Any]]:
    """ebpf-core lossless everywhere (flat out at 8,000/s); kprobe lossless up to 2,000/s,
    half captured flat out; kprobe never ran at 5,000/s, so CPU compares at 2,000/s."""
    return [
        _run("untraced", "open-loop", 0, achieved=10000.0),
        _run(CORE, "open-loop", 0, achieved=8000.0, relative=0.8, cpu=2.0),
        _run(KPROBE, "open-loop", 0, captured=500, lost=500, achieved=5000.0, relative=0.5,
             cpu=9.0),
        _run(CORE, "open-loop", 500, cpu=4.0), _run(KPROBE, "open-loop", 500, cpu=20.0),
        _run(CORE, "open-loop", 2000, cpu=3.0), _run(KPROBE, "open-loop", 2000, cpu=12.0),
        _run(CORE, "open-loop", 5000, cpu=2.5),
        _run(KPROBE, "open-loop", 5000, status="cannot run"),
        _run(CORE, "exec-loop", 0, relative=0.9), _run(KPROBE, "exec-loop", 0, relative=0.6),
    ]


def test_rates_replace_only_the_workloads_named() -> None:
    rates = parse_rates("open-loop=0,500;exec-loop=0")
    assert rates == {"open-loop": [0, 500], "exec-loop": [0]}
    plan = build_plan(False, 4.0, 4.0, None, rates)
    assert [(w.name, w.rate, w.duration) for w in plan if w.name != "uring-open-loop"
            and w.name != "shell-loop"] == [("open-loop", 0, 4.0), ("open-loop", 500, 4.0),
                                            ("exec-loop", 0, 4.0)]
    # A workload not named keeps the plan's rates.
    assert [w.rate for w in plan if w.name == "uring-open-loop"] == [10000, 0]


@pytest.mark.parametrize("text", ["", "open-loop", "nope=1", "open-loop=x", "open-loop=-5",
                                  "open-loop="])
def test_bad_rates_say_why(text: str) -> None:
    with pytest.raises(ValueError):
        parse_rates(text)


def test_bad_rates_on_the_command_line_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        bench_run.parse_args(["--rates", "open-loop=fast"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("bench: argument --rates:") and err.count("\n") == 1


def test_a_whole_name_picks_that_tracer_alone() -> None:
    found = tracers("open", "/nonexistent")
    by_sub = [t.name for t in bench_run._selected(found, "ebpf-core")]
    assert by_sub == [CORE, "hybridtrace ebpf-core/tp_btf"]
    whole = [t.name for t in bench_run._selected(found, f"{CORE},ftrace/kprobe")]
    assert whole == [CORE, KPROBE]


def test_the_guest_command_is_tools_bench_s_own() -> None:
    args = bench.arguments([])
    parsed = bench_run.parse_args([*bench.bench_args(args), "--out", "/tmp/x"])
    plan = build_plan(parsed.quick, parsed.duration, parsed.sustain,
                      parsed.workloads.split(","), parsed.rates)
    assert {w.name for w in plan} == {"open-loop", "exec-loop"}
    assert plan[0].rate == 0  # flat out first: a run cut short keeps it
    assert parsed.profile is False
    names = [t.name for t in bench_run._selected(tracers("open", "/x"), parsed.tracers)]
    assert names == list(bench.TRACERS)


@pytest.mark.parametrize("argv", [["--rates", "open-loop=-1"], ["--kernel", "9.9"],
                                  ["--variant", "nope"], ["--wall", "100"]])
def test_bad_options_are_refused_before_any_vm(argv: List[str]) -> None:
    assert bench._check_args(bench.arguments(argv))


def test_ratios_divide_the_tier_by_ebpf_core() -> None:
    runs = _runs()
    assert ratio(2.0, 4.0) == 0.5 and ratio(None, 1.0) is None and ratio(1.0, 0.0) is None
    assert common_cpu(runs, KPROBE) == (2000, 12.0, 3.0)
    assert captured_flat_out(runs, KPROBE) == 0.5 and captured_flat_out(runs, CORE) == 1.0
    cells = row(runs, KPROBE)
    assert cells[0] == KPROBE
    assert cells[1] == "**0.25** (2000 vs 8000)"  # lossless: 2,000/s vs flat out's 8,000/s
    assert cells[2] == "**4.00** (12.00 vs 3.00) at 2,000/s"
    assert cells[3] == "**0.50** (50% vs 100%)"
    assert cells[4] == "**1.60** (2.00x vs 1.25x)"  # open slowdown 1/0.5 vs 1/0.8
    assert cells[5] == "**1.50** (1.67x vs 1.11x)"


def test_a_paced_rate_the_tracer_held_the_loop_below_counts_at_the_rate_reached() -> None:
    runs = _runs()
    slowed = next(r for r in runs if r["tracer"] == KPROBE and r["rate_offered"] == 2000)
    slowed["achieved_rate"] = 1500.0
    assert lossless_reached(runs, KPROBE) == 1500.0
    assert lossless_reached(runs, CORE) == 8000.0
    assert lossless_reached(runs, "libbpf-tools") is None


def test_a_tier_that_lost_everywhere_has_a_zero_ratio_and_no_reference_no_ratio() -> None:
    runs = [r for r in _runs() if r["workload"] == "open-loop"]
    for r in runs:
        if r["tracer"] == KPROBE and r["status"] == "ok":
            r["captured"], r["missed"] = r["produced"] - 1, 1
    assert row(runs, KPROBE)[1] == "**0.00** (0 vs 8000)"
    alone = [r for r in runs if r["tracer"] != CORE]
    assert row(alone, KPROBE)[1:4] == ["-", "-", "-"]


def test_the_table_has_every_tracer_but_the_reference() -> None:
    text = render_relative(_runs())
    lines = text.splitlines()
    assert len(lines) == 3 and lines[2].startswith(f"| {KPROBE} |")
    assert "untraced" not in text and f"| {CORE} |" not in text


def _data(doc: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    return {"command": "sudo .venv/bin/python -m tools.vm.bench --rates 'open-loop=0'",
            "kernel": "6.1", "release": "6.1.0-x-amd64", "variant": "default",
            "variant_description": "Debian kernel", "packages": {"linux-image-x": "1"},
            "cpus": 2, "memory": "2G", "vm_seconds": 900.0, "code": {"commit": "abcdef1234567"},
            "host_loadavg": [[2.5, 2.0, 1.5], [3.5, 3.0, 2.5]], "run_dir": "/r/x",
            "step": {"seconds": 700.0, "rc": 0, "timed_out": False}, "bench": doc}


def test_the_page_shows_ratios_and_the_machine() -> None:
    doc = {"runs": _runs(), "machine": {"loadavg_start": [1.0, 1.0, 1.0],
                                        "loadavg_end": [2.0, 2.0, 2.0]}}
    text = bench.page(_data(copy.deepcopy(doc)))
    assert "`sudo .venv/bin/python -m tools.vm.bench --rates 'open-loop=0'`" in text
    assert "before the VM [2.5, 2.0, 1.5], after it [3.5, 3.0, 2.5]" in text
    assert "at the benchmark's start [1.0, 1.0, 1.0]" in text
    assert "one TCG thread" in text and "commit abcdef123456" in text
    assert "(rates offered: flat out, 500/s, 2,000/s, 5,000/s)" in text
    assert render_relative(doc["runs"]) in text
    assert "## exec-loop (absolute, in the VM)" in text
    assert f"- {KPROBE} open-loop@5000: cannot run" in text


def test_a_page_without_results_says_so() -> None:
    data = _data(None)
    data["step"] = {"seconds": 1300.0, "rc": None, "timed_out": True}
    text = bench.page(data)
    assert "**No results**" in text and "timed out" in text


def test_report_only_renders_the_page_from_its_json(tmp_path: Any,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    md = tmp_path / "vm.md"
    assert bench.main(["--report-only", "--md", str(md)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"tools.vm.bench: cannot read {tmp_path / 'vm.json'}")
    assert err.count("\n") == 1 and not md.exists()
    data = _data({"runs": _runs(), "machine": {}})
    (tmp_path / "vm.json").write_text(json.dumps(data))
    assert bench.main(["--report-only", "--md", str(md)]) == 0
    assert md.read_text() == bench.page(data)


def test_a_recorded_vm_run_gives_every_tier_its_ratios() -> None:
    """The 6.1 VM run (tests/fixtures/bench/vm.debian-6.1.json): one row per tracer
    but ebpf-core, each ratio the quotient of the two values shown beside it."""
    path = os.path.join(os.path.dirname(__file__), os.pardir, "fixtures", "bench",
                        "vm.debian-6.1.json")
    with open(path) as f:
        data = json.load(f)
    runs = data["bench"]["runs"]
    lines = render_relative(runs).splitlines()[2:]
    assert [ln.split(" | ")[0][2:] for ln in lines] == list(bench.TRACERS[1:])
    for line in lines:
        for text in line.split(" | ")[1:]:
            found = re.match(r"\*\*([\d.]+)\*\* \(([\d.]+)(x|%)? vs ([\d.]+)", text)
            assert found, text
            quotient = float(found.group(2)) / float(found.group(4))
            assert float(found.group(1)) == pytest.approx(quotient, abs=0.006)
    assert lossless_reached(runs, KPROBE) == max(
        min(r["rate_offered"] or r["achieved_rate"], r["achieved_rate"]) for r in runs
        if r["tracer"] == KPROBE and r["workload"] == "open-loop" and r["status"] == "ok")
    assert bench.page(data).count("| hybridtrace ftrace/") >= 3 * 3
