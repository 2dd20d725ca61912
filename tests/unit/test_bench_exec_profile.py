"""The exec profile's pieces: a tracer whose output goes to a file, and the page
built from several rounds (medians, per-program rows, a tracer that did not run)."""

from __future__ import annotations

from typing import Any, Dict

from tools.bench.exec_profile import _summary, render
from tools.bench.running import Running


def test_output_to_a_file_is_ready_on_its_first_byte_and_kept_whole(tmp_path: Any) -> None:
    out = str(tmp_path / "out")
    script = "sleep 0.3; printf 'header\\nline\\n'; exec sleep 30"
    tracer = Running(["sh", "-c", script], settle=0.0, ready_timeout=10, out_path=out)
    assert tracer.ready_s >= 0.25
    tracer.stop()
    with open(out, "rb") as f:
        assert f.read() == b"header\nline\n"
    assert tracer.lines_out == 0  # nothing was read while it ran


def _run(slowdown: float, enter_ns: float) -> Dict[str, Any]:
    return {"slowdown": slowdown, "rate": 3000 / slowdown, "untraced_rate": 3000.0,
            "cpu_us": 600.0, "untraced_cpu_us": 580.0, "bpf_ns": enter_ns + 100,
            "tracer_cpu_us": 20.0, "tracer_switches": 0.5, "idle": 0.1, "untraced_idle": 0.12,
            "programs": {"ht_exec_enter (tracepoint)": {
                "runs_per_exec": 1.0, "ns_per_run": enter_ns, "ns_per_exec": enter_ns}}}


def test_rounds_give_medians_and_the_spread_of_the_slowdown() -> None:
    row = _summary([_run(1.10, 9000), _run(1.02, 5000), _run(1.04, 7000)])
    assert row["slowdown"] == 1.04 and row["slowdown_min"] == 1.02
    assert row["slowdown_max"] == 1.10 and row["rounds"] == 3
    assert row["programs"]["ht_exec_enter (tracepoint)"]["ns_per_exec"] == 7000
    assert row["bpf_ns"] == 7100


def test_the_page_has_a_row_per_tracer_and_per_program() -> None:
    result = {"date": "2026-12-07", "duration": 4.0, "rounds": 3, "load_start": [0.1, 0, 0],
              "load_end": [0.2, 0, 0],
              "machine": {"kernel": "6.18", "cpus": 2, "cpu": "x", "hybridtrace_commit": "abc"},
              "tracers": {"ours": _summary([_run(1.04, 7000)]),
                          "theirs": {"error": "exited 1: no BTF"}}}
    page = render(result)
    assert "| ours | 1.040x (1.040-1.040) | 2,885 (3,000) | 600.0 (580.0) | 7.10 | 20.0 | 27.1 |" \
        in page
    assert "| theirs | did not run: exited 1: no BTF |" in page
    assert "| ours | ht_exec_enter (tracepoint) | 1.00 | 7,000 | 7,000 |" in page
