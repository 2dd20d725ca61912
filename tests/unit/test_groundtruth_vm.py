"""The ground-truth check as the kernel matrix runs it (tools/vm/groundtruth.py):
results read back from a guest's JSON, judged, and the generated page."""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional

from tools.groundtruth.check import CORRECT, NONE, WRONG, Mismatch, Result
from tools.groundtruth.check import claims_broken as check_broken
from tools.vm import groundtruth


def _result(label: str, wrong: bool = False, missing: int = 0, lost: int = 0) -> Result:
    r = Result(label, 7, 100, 40.0, 2)
    r.matched.update(exec=10, open=90)
    r.missing["open"] = missing
    r.lost = lost
    for field in ("pid", "path"):
        r.count("open", field, CORRECT)
    if wrong:
        r.count("open", "path", WRONG)
        r.wrong.append(Mismatch(42, "open", "path", b"/tmp/o\xff-42", b"/tmp/x", "libc_open"))
    r.elapsed = 12.34
    return r


def _data(results: List[Result], skipped: List[Dict[str, str]], running: Any = None,
          backends: Optional[List[str]] = None) -> Dict[str, Any]:
    gt = json.loads(json.dumps({"results": [r.to_dict() for r in results], "skipped": skipped,
                                "running": running, "machine": "Linux 6.1.0-x (x86_64)"}))
    return {"command": "sudo .venv/bin/python -m tools.vm.groundtruth --ops 100 --seed 7",
            "kernel": "6.1", "release": "6.1.0-x-amd64", "variant": "headers",
            "variant_description": "exact headers", "packages": {"linux-image-x": "1"},
            "cpus": 2, "memory": "2G", "vm_seconds": 99.0, "code": {"commit": "abc"},
            "settings": {"require": ["ftrace/kprobe", "ebpf-bcc"], "backends": backends or []},
            "step": {"seconds": 80.0, "rc": 0, "timed_out": False}, "groundtruth": gt}


def test_a_result_survives_json_with_its_wrong_values_shown_as_before() -> None:
    r = _result("ftrace/kprobe", wrong=True)
    back = Result.from_dict(json.loads(json.dumps(r.to_dict())))
    assert back.summary() == r.summary()
    assert not back.passed and back.wrong_total == 1
    assert str(back.wrong[0]) == str(r.wrong[0])


def test_clean_required_backends_pass() -> None:
    ok, verdict = groundtruth.judge(_data([_result("ftrace/kprobe"), _result("ebpf-bcc")], []))
    assert ok and verdict.startswith("PASS: 2 backends, 200 operations")


def test_a_wrong_value_fails_and_is_on_the_page() -> None:
    data = _data([_result("ftrace/kprobe", wrong=True), _result("ebpf-bcc")], [])
    ok, verdict = groundtruth.judge(data)
    assert not ok and "ftrace/kprobe: 1 WRONG" in verdict
    data["verdict"] = verdict
    page = groundtruth.page(data)
    assert "seq 42 open path: expected b'/tmp/o\\xff-42', got b'/tmp/x'" in page
    assert "**1 WRONG**" in page and "[ground_truth.md](ground_truth.md)" in page


def test_doctor_claims_are_held_to_the_counts() -> None:
    """"complete" with a None, or "none" with a value, fails the run; "partial" is read."""
    r = _result("ftrace/kprobe")
    r.count("open", "flags", NONE, "sys_openat2")
    r.count("open", "flags", CORRECT, "libc_open")
    r.claims = {"open.path": "complete", "open.pid": "none: never", "open.flags": "complete"}
    back = Result.from_dict(json.loads(json.dumps(r.to_dict())))
    assert check_broken(back) == [
        "open.pid: doctor says 'none: never', but 1 correct",
        "open.flags: doctor says 'complete', but 1 None (1 x sys_openat2)"]
    ok, verdict = groundtruth.judge(_data([back], []))
    assert not ok and "doctor overclaims open.flags" in verdict
    page = groundtruth.page({**_data([back], []), "verdict": verdict})
    assert "- ftrace/kprobe open.flags: 1 sys_openat2. Doctor: complete" in page
    back.claims.update({"open.pid": "complete", "open.flags": "partial: None for openat2"})
    assert back.passed and check_broken(back) == []
    # Records lost leave values unproven: "complete" is not held against a None then,
    # but "none" still is against a value given.
    back.claims.update({"open.pid": "none: never", "open.flags": "complete"})
    back.lost = 3
    assert check_broken(back) == ["open.pid: doctor says 'none: never', but 1 correct"]


def test_io_uring_opens_answer_to_doctors_io_uring_statement() -> None:
    r = _result("ebpf-core/tp_btf")
    r.count("open", "tid", NONE, "uring_openat_sqpoll")  # an SQPOLL submission: no thread
    r.count("open", "path", NONE, "uring_openat")
    r.matched["io_uring"] = 2
    r.claims = {"open.tid": "complete", "open.path": "complete",
                "open.io_uring": "partial: seen with paths: ..."}
    back = Result.from_dict(json.loads(json.dumps(r.to_dict())))
    assert check_broken(back) == [
        "open.io_uring: doctor says 'partial: seen with paths: ...', but 1 without a path"]
    back.claims["open.io_uring"] = "none: not here"
    assert check_broken(back) == ["open.io_uring: doctor says 'none: not here', but 2 seen"]
    back.claims["open.io_uring"] = "partial: seen without paths: ..."
    assert check_broken(back) == [] and back.passed
    back.count("open", "tid", NONE, "libc_open")  # a syscall's None still breaks "complete"
    assert check_broken(back) == ["open.tid: doctor says 'complete', but 1 None (1 x libc_open)"]


def test_an_overload_run_must_lose_and_report_but_never_be_wrong() -> None:
    r = _result("ftrace/uprobe", missing=40)
    r.overload = True
    r.claims = {"open.path": "complete"}
    r.count("open", "path", NONE, "libc_open")  # starved: doctor's claims do not apply
    assert not r.passed  # nothing reported lost: the overload did not happen, or was hidden
    r.lost_unknown = True
    assert not r.passed
    r.lost = 1000
    back = Result.from_dict(json.loads(json.dumps(r.to_dict())))
    assert back.passed and back.overload and "OVERLOAD" in back.summary()
    back.count("open", "pid", WRONG)
    assert not back.passed


def test_missing_events_fail_unless_something_was_lost() -> None:
    assert not groundtruth.judge(_data([_result("ftrace/kprobe", missing=3),
                                        _result("ebpf-bcc")], []))[0]
    assert groundtruth.judge(_data([_result("ftrace/kprobe", missing=3, lost=5),
                                    _result("ebpf-bcc")], []))[0]


def test_io_uring_opens_doctor_owns_up_to_are_missing_but_do_not_fail() -> None:
    unseen = _result("ebpf-bcc", missing=4)
    unseen.sees_io_uring, unseen.unseen_io_uring = False, 4
    back = Result.from_dict(json.loads(json.dumps(unseen.to_dict())))
    assert back.passed and back.missing["open"] == 4 and back.unexplained_missing == 0
    assert "io_uring opens doctor says this backend cannot see: 4" in back.summary()
    assert groundtruth.judge(_data([_result("ftrace/kprobe"), back], []))[0]
    back.missing["open"] += 1  # one more, not owned up to: a failure, as any miss
    data = _data([_result("ftrace/kprobe"), back], [])
    ok, data["verdict"] = groundtruth.judge(data)
    assert not ok and "ebpf-bcc: 0 WRONG, 0 ambiguous, 1 missing with 0 lost" in data["verdict"]
    assert "| ebpf-bcc | 0 | 0 / 5 (4 io_uring) |" in groundtruth.page(data)


def test_a_required_backend_skipped_or_not_reached_fails() -> None:
    ok, verdict = groundtruth.judge(_data(
        [_result("ebpf-bcc")], [{"label": "ftrace/kprobe", "why": "no kprobe_events"}]))
    assert not ok and "ftrace/kprobe: required, could not run (no kprobe_events)" in verdict
    ok, verdict = groundtruth.judge(_data([_result("ebpf-bcc")], [], running="ftrace/kprobe"))
    assert not ok and "cut short while running ftrace/kprobe" in verdict
    # Not asked for (--backend names others): not required of this run.
    assert groundtruth.judge(_data([_result("ebpf-bcc")], [], backends=["ebpf-bcc"]))[0]


def test_no_results_from_the_guest_is_a_failure() -> None:
    data = _data([], [])
    data["groundtruth"] = None
    data["step"] = {"timed_out": True}
    assert groundtruth.judge(data) == (
        False, "FAIL: the guest wrote no results (groundtruth step timed out)")


def test_bad_names_are_one_line() -> None:
    args = groundtruth.arguments(["--backend", "ftrace/nope"])
    assert groundtruth._check_args(args) is not None
    assert "unknown backend 'ftrace/nope'" in str(groundtruth._check_args(args))
    assert groundtruth._check_args(groundtruth.arguments([])) is None
