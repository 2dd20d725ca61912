"""The kernel matrix tooling (tools/vm): test-id mapping, the bpf() denial
filter, doctor-vs-reality verdicts and the generated report."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from typing import Any, Dict, List

import pytest

from tools.vm import guest_run, junit, matrix, report, runs, verdict
from tools.vm.nobpf import program
from tools.vm.variants import BY_NAME, CI, FULL, SUITES

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def collected_integration_ids() -> List[str]:
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q",
                          "-p", "no:cacheprovider", "tests/integration"],
                         cwd=REPO, capture_output=True, text=True)
    return [line for line in out.stdout.splitlines() if "::" in line]


def test_every_integration_test_maps_to_its_backend() -> None:
    ids = collected_integration_ids()
    assert ids, "no integration tests collected"
    for test_id in ids:
        path, _, name = test_id.partition("::")
        module = path.replace("/", ".")[: -len(".py")]
        label = junit.label_of(module, name)
        assert label in [*junit.LABELS, junit.EBPF_CORE, "ftrace", junit.GENERAL,
                         junit.BCC_TOOLS], test_id
        if "test_ebpf_bcc" in path:
            assert label == "ebpf-bcc"
        elif "test_ebpf_core" in path:
            assert label in ("ebpf-core/tracepoint", "ebpf-core/tp_btf"), test_id
        elif "test_least_privilege" in path:
            assert label == "ebpf-core/tp_btf"
        for candidate in junit.LABELS:
            if name.endswith(f"[{candidate}]"):
                assert label == candidate, test_id


@pytest.mark.parametrize("module,name,want", [
    ("tests.integration.test_ftrace", "test_x[kprobe]", "ftrace/kprobe"),
    ("tests.integration.test_ftrace", "test_x[tracepoint-exec]", "ftrace/tracepoint"),
    ("tests.integration.test_contract", "test_x[ftrace/eprobe]", "ftrace/eprobe"),
    ("tests.integration.test_contract", "test_x[ebpf-bcc]", "ebpf-bcc"),
    ("tests.integration.test_contract", "test_x[ebpf-core/tracepoint]", "ebpf-core/tracepoint"),
    ("tests.integration.test_contract", "test_x[ebpf-core/tp_btf]", "ebpf-core/tp_btf"),
    ("tests.integration.test_cli_flags", "test_x[ebpf-core]", "ebpf-core"),
    ("tests.integration.test_ebpf_core", "test_x[tracepoint]", "ebpf-core/tracepoint"),
    ("tests.integration.test_ebpf_core", "test_x[tp_btf-ring]", "ebpf-core/tp_btf"),
    ("tests.integration.test_ftrace", "test_x[tracepoint-raw]", "ftrace/tracepoint"),
    ("tests.integration.test_readme", "test_readme_example_runs", junit.GENERAL),
    ("tests.integration.test_cli_vs_bcc", "test_x", junit.BCC_TOOLS),
])
def test_label_of_parameters(module: str, name: str, want: str) -> None:
    assert junit.label_of(module, name) == want


def test_junit_parse_counts_outcomes(tmp_path: Any) -> None:
    xml = tmp_path / "j.xml"
    xml.write_text(
        '<testsuites><testsuite>'
        '<testcase classname="tests.integration.test_contract" name="t[ebpf-core]"/>'
        '<testcase classname="tests.integration.test_contract" name="u[ebpf-core]">'
        '<failure message="boom">trace</failure></testcase>'
        '<testcase classname="tests.integration.test_ftrace" name="t[kprobe]">'
        '<skipped message="backend ftrace/kprobe cannot run here: no kprobes"/></testcase>'
        '</testsuite></testsuites>')
    groups = junit.summarise(junit.parse(str(xml)))
    assert groups["ebpf-core"]["pass"] == 1 and groups["ebpf-core"]["fail"] == 1
    assert groups["ebpf-core"]["failed"] == ["tests.integration.test_contract::u[ebpf-core]"]
    assert groups["ftrace/kprobe"]["skip"] == 1
    assert "no kprobes" in str(groups["ftrace/kprobe"]["skip_reason"])


def test_seccomp_program_is_six_instructions_ending_in_allow() -> None:
    code = program("x86_64")
    assert len(code) == 6 * 8
    assert int.from_bytes(code[-4:], sys.byteorder) == 0x7FFF0000


BPF_CHECK = (
    "import ctypes, sys\n"
    "libc = ctypes.CDLL(None, use_errno=True)\n"
    "libc.syscall.restype = ctypes.c_long\n"
    "r = libc.syscall(321, 9999, None, 0)\n"  # an unknown bpf() command
    "sys.stdout.write(str(ctypes.get_errno() if r < 0 else 0))\n"
)


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="syscall number is x86_64's")
def test_nobpf_makes_bpf_fail_with_eperm_and_nothing_else() -> None:
    denied = subprocess.run([sys.executable, "-m", "tools.vm.nobpf", sys.executable, "-c",
                             BPF_CHECK], cwd=REPO, capture_output=True, text=True)
    assert denied.returncode == 0, denied.stderr
    assert int(denied.stdout) == errno.EPERM
    plain = subprocess.run([sys.executable, "-c", BPF_CHECK], capture_output=True, text=True)
    if os.geteuid() == 0:  # root reaches the kernel's own check: an unknown command
        assert int(plain.stdout) == errno.EINVAL
    other = subprocess.run([sys.executable, "-m", "tools.vm.nobpf", "/bin/sh", "-c",
                            "exit 7"], cwd=REPO)
    assert other.returncode == 7


def _result(usable: bool, outcome: str, passed: int, failed: int) -> Dict[str, Any]:
    cand = {"label": "ftrace/kprobe", "usable": usable,
            "reasons": [] if usable else [{"code": "no-kprobe-events", "blocking": True}],
            "fields": {"argv": "complete"}}
    decision = {"chosen": "ftrace/kprobe" if usable else None, "candidates": [cand]}
    return {
        "name": "debian-6.1-default", "kernel": "6.1", "release": "6.1.0-56-amd64",
        "vm": True, "variant": "default", "seconds": 1.0, "packages": {},
        "doctor": {"decisions": {"exec": decision, "open": decision}},
        "force_open": {"results": {"ftrace/kprobe": {"exec": {"outcome": outcome},
                                                     "open": {"outcome": outcome}}}},
        "groups": {"ftrace/kprobe": {"pass": passed, "fail": failed, "skip": 0,
                                     "failed": ["t::x"] * failed, "skip_reason": None}},
    }


@pytest.mark.parametrize("usable,outcome,passed,failed,agree", [
    (True, "traced", 3, 0, True),
    (True, "traced", 2, 1, False),          # usable but a test failed
    (True, "open failed", 3, 0, False),     # usable but it does not open
    (False, "open failed", 0, 0, True),     # not usable and really fails
    (False, "traced", 0, 0, False),         # not usable but it works
    (False, "open failed", 3, 0, True),     # tests brought their own setup: noted
])
def test_verdict(usable: bool, outcome: str, passed: int, failed: int, agree: bool) -> None:
    v = verdict.judge(_result(usable, outcome, passed, failed), "ftrace/kprobe")
    assert v["agree"] is agree
    assert bool(v["problems"]) is not agree
    assert bool(v["notes"]) is (not usable and passed > 0)


def test_report_is_marked_generated_and_round_trips(tmp_path: Any) -> None:
    md, js = str(tmp_path / "c.md"), str(tmp_path / "c.json")
    report.write([_result(True, "traced", 2, 1)], "python -m tools.vm", md, js)
    with open(md) as f:
        text = f.read()
    assert text.startswith("<!-- GENERATED by `python -m tools.vm`")
    assert "FAIL 1/3; usable; **MISMATCH**" in text
    with open(js) as f:
        assert report.render(json.load(f)) == text


def test_plans_name_known_variants() -> None:
    for _, variant, suite in FULL + CI:
        assert variant in BY_NAME and suite in SUITES


def test_verbose_lines_stand_in_for_junit() -> None:
    text = ("tests/integration/test_ftrace.py::test_open_paths_fd_and_errno[eprobe] PASSED [ 3%]\n"
            "tests/integration/test_ebpf_bcc.py::test_perf_buffer_fallback FAILED       [ 6%]\n"
            "collected 3 items\n")
    cases = junit.parse_verbose(text)
    assert [(c["label"], c["outcome"]) for c in cases] == [("ftrace/eprobe", "pass"),
                                                          ("ebpf-bcc", "fail")]


def test_a_guest_that_stopped_early_says_so_in_one_safe_line() -> None:
    stopped = dict(_result(True, "traced", 2, 0), completed=False, wall_clock_exceeded=False,
                   console_tail=["[ 9.1] Out of memory: Killed process 7 `x` | y", "\x1b[31mred"])
    text = report.render({"results": [stopped], "generated_by": "python -m tools.vm",
                          "generated_at": "now"})
    lines = [ln for ln in text.splitlines() if "guest stopped before" in ln]
    assert len(lines) == 1
    assert "Out of memory: Killed process 7 ?x? | y / ?[31mred" in lines[0]
    assert "\x1b" not in text
    assert "default (**run cut short**: see details) |" in text
    finished = dict(stopped, completed=True)
    assert "guest stopped before" not in report.render(
        {"results": [finished], "generated_by": "python -m tools.vm", "generated_at": "now"})


def test_a_step_that_times_out_leaves_where_its_processes_waited(tmp_path: Any) -> None:
    step = guest_run.run_step(str(tmp_path), "nap", ["sh", "-c", "sleep 60 & sleep 61"], 1.0,
                              str(tmp_path), dict(os.environ))
    assert step["timed_out"] and step["rc"] is None and not step["unkillable"]
    hang = (tmp_path / "nap.hang").read_text()
    naps = [ln for ln in hang.splitlines() if ln.startswith("pid ") and " sleep " in ln]
    assert len(naps) == 2 and all("State:" in ln and "wchan" in ln for ln in naps)


def test_eprobe_self_test_results_become_one_finding() -> None:
    rows = []
    for kernel, reads in (("6.1", True), ("6.12", False), ("5.10", None)):
        row = dict(_result(True, "traced", 2, 0), kernel=kernel, release=f"{kernel}-r",
                   completed=True)
        row["doctor"] = dict(row["doctor"], checks=[
            {"id": "eprobe_strings", "data": {"reads_strings": reads}}])
        rows.append(row)
    text = report.render({"results": rows, "generated_by": "python -m tools.vm",
                          "generated_at": "now"})
    found = [ln for ln in text.splitlines() if "eprobes and syscall paths" in ln]
    assert len(found) == 1
    assert "6.1 (6.1-r): reads the path; 6.12 (6.12-r): reads a fault." in found[0]
    assert "5.10" not in found[0]


def test_rows_name_the_commit_they_ran() -> None:
    code = runs.code_version()
    assert code["commit"] is not None and len(code["commit"]) == 40
    assert isinstance(code["uncommitted"], int)
    row = dict(_result(True, "traced", 2, 0), completed=True,
               code={"commit": code["commit"], "uncommitted": 2})
    text = report.render({"results": [row], "generated_by": "x", "generated_at": "now"})
    assert f"- code: commit {code['commit'][:12]} with 2 uncommitted file(s)" in text


def _core_row(legacy: bool) -> Dict[str, Any]:
    """ebpf-core where tracefs is denied: only tp_btf usable (or, legacy, one ebpf-core)."""
    def cand(label: str, usable: bool) -> Dict[str, Any]:
        return {"label": label, "usable": usable, "fields": {},
                "reasons": [] if usable else [{"code": "lockdown-confidentiality",
                                               "blocking": True}]}
    labels = [("ebpf-core", True)] if legacy else [("ebpf-core/tracepoint", False),
                                                    ("ebpf-core/tp_btf", True)]
    decision = {"chosen": labels[-1][0], "candidates": [cand(n, u) for n, u in labels]}
    forced = {n: {k: {"outcome": "traced" if u else "open failed"} for k in ("exec", "open")}
              for n, u in labels}
    tests = [{"id": f"t::x[{p}]", "label": p, "outcome": "pass", "message": None}
             for p in (["ebpf-core"] if legacy else ["ebpf-core/tp_btf", "ebpf-core"])]
    return {**_result(True, "traced", 0, 0), "doctor": {"decisions": {
        "exec": decision, "open": decision}}, "force_open": {"results": forced},
        "tests": tests, "groups": junit.summarise(tests)}


def test_ebpf_core_attach_modes_are_two_columns() -> None:
    row = _core_row(legacy=False)
    tp_btf = verdict.judge(row, "ebpf-core/tp_btf")
    assert tp_btf["agree"] is True and tp_btf["tests"]["pass"] == 2  # mode-less test counted
    classic = verdict.judge(row, "ebpf-core/tracepoint")
    assert classic["agree"] is True and classic["tests"]["pass"] == 0
    assert classic["blocking"] == ["lockdown-confidentiality"]
    text = report.render({"results": [row], "generated_by": "x", "generated_at": "now"})
    assert "| ebpf-core/tracepoint | ebpf-core/tp_btf | ebpf-core/raw_tp | ebpf-bcc |" in text
    assert "| no tests; not usable; agrees | pass 2; usable; agrees |" in text


def test_rows_from_before_the_attach_modes_show_as_classic_tracepoints() -> None:
    row = _core_row(legacy=True)
    classic = verdict.judge(row, "ebpf-core/tracepoint")
    assert classic["agree"] is True and classic["tests"]["pass"] == 1
    assert verdict.judge(row, "ebpf-core/tp_btf").get("absent")
    text = report.render({"results": [row], "generated_by": "x", "generated_at": "now"})
    assert "| pass 1; usable; agrees | - |" in text


def test_ci_cell_fails_unless_every_required_label_passed() -> None:
    """The CI entry passes only when the kprobe tier, BCC and the comparison with BCC's
    own tools really ran there: a skip of any of them fails it."""
    assert junit.BCC_TOOLS in matrix.CI_REQUIRED
    passed = {"pass": 1, "fail": 0, "skip": 0}
    groups = {label: dict(passed) for label in matrix.CI_REQUIRED}
    assert matrix._ok({"groups": groups, "completed": True}, ci=True)
    for label in matrix.CI_REQUIRED:
        skipped = {**groups, label: {"pass": 0, "fail": 0, "skip": 1}}
        assert not matrix._ok({"groups": skipped, "completed": True}, ci=True), label
        assert matrix._ok({"groups": skipped, "completed": True}, ci=False), label


def test_ci_suite_selects_the_comparison_with_bccs_tools() -> None:
    paths, select = SUITES["ci"]
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q",
                          "-p", "no:cacheprovider", *paths, "-k", select or ""],
                         cwd=REPO, capture_output=True, text=True)
    ids = [line for line in out.stdout.splitlines() if "::" in line]
    assert [i for i in ids if "test_cli_vs_bcc" in i], out.stdout[-500:]
    assert [i for i in ids if "test_ebpf_bcc" in i] and len(ids) < 100
