"""The ground-truth check on another architecture: plans make only the syscalls it has,
the checker owes no event to a call of one it lacks, and the VM command's arm64 path
(no VM is booted here)."""

from __future__ import annotations

import errno
from typing import Any, Dict, List, Set

from hybridtrace.events import OpenEvent, Source
from tools.groundtruth import check, workload
from tools.vm import groundtruth


def _methods(plan: workload.Plan) -> Set[str]:
    """The open methods a plan's lines use (ops O:/P: t:seq:METHOD:...)."""
    out: Set[str] = set()
    for line in plan.lines:
        for op in line.split(" "):
            if op[:2] in ("O:", "P:"):
                out.add(op.split(":")[3])
    return out


def test_an_aarch64_plan_draws_no_raw_open_or_creat_and_keeps_libcs() -> None:
    plan = workload.make_plan(7, 3000, b"/w", nonce="n", arch="aarch64")
    used = _methods(plan)
    assert plan.arch == "aarch64"
    assert not used & {"sys_open", "sys_creat"}
    assert {"libc_open", "libc_creat", "sys_openat", "sys_openat2"} <= used
    assert workload.open_methods("aarch64") == tuple(
        m for m in workload.OPEN_METHODS if m not in ("sys_open", "sys_creat"))


def test_an_x86_64_plan_still_makes_open_and_creat_itself() -> None:
    plan = workload.make_plan(7, 3000, b"/w", nonce="n", arch="x86_64")
    assert {"sys_open", "sys_creat"} <= _methods(plan)
    assert workload.open_methods("x86_64") == workload.OPEN_METHODS


def _open_op(seq: int, syscall: str, method: str, err: int) -> workload.OpenOp:
    return workload.OpenOp(seq, 10, 11, 1, 0, b"gt", syscall, method, -100,
                           b"/w/on-%d" % seq, 0, 0, None, err, None, 1000, 2000)


def _event(op: workload.OpenOp) -> OpenEvent:
    return OpenEvent(1500, op.pid, op.tid, op.uid, op.comm, op.path, op.flags, op.mode,
                     None, op.errno, Source.SYSCALL_ENTRY, op.syscall, op.dfd)


def _compare(ops: List[workload.OpenOp], events: List[OpenEvent], arch: str) -> check.Result:
    result = check.Result("ftrace/kprobe", 7, len(ops), 0.0)
    check.compare(result, ops, events, "n", arch=arch)
    return result


def test_a_syscall_the_architecture_lacks_is_owed_no_event() -> None:
    raw_open = _open_op(1, "open", "sys_open", errno.ENOSYS)
    result = _compare([raw_open], [], "aarch64")
    assert result.not_on_arch == 1 and not result.missing["open"] and result.passed
    # The same call on x86_64 made the syscall: no event is a miss.
    result = _compare([raw_open], [], "x86_64")
    assert result.not_on_arch == 0 and result.missing["open"] == 1 and not result.passed


def test_an_event_for_a_syscall_the_architecture_lacks_is_a_stray() -> None:
    raw_creat = _open_op(2, "creat", "sys_creat", errno.ENOSYS)
    result = _compare([raw_creat], [_event(raw_creat)], "aarch64")
    assert result.strays == 1 and result.wrong_total == 1 and not result.passed
    # and where creat exists, that event is the call's, judged field by field
    result = _compare([raw_creat], [_event(raw_creat)], "x86_64")
    assert result.matched["open"] == 1 and result.wrong_total == 0 and result.passed


def test_libc_creat_on_aarch64_is_judged_as_the_openat_it_makes() -> None:
    op = _open_op(3, "openat", "libc_creat", errno.ENOENT)
    result = _compare([op], [_event(op)], "aarch64")
    assert result.matched["open"] == 1 and result.fields[("open", "syscall")][check.CORRECT]
    wrong = _compare([op], [_event(_open_op(3, "creat", "libc_creat", errno.ENOENT))],
                     "aarch64")
    assert wrong.fields[("open", "syscall")][check.WRONG] == 1


def test_the_vm_command_picks_the_arm64_kernel_and_page() -> None:
    args = groundtruth.arguments(["--arch", "arm64", "--ops", "3000", "--jobs", "2"])
    assert groundtruth.kernel_name(args) == "6.1-arm64"
    assert args.md.endswith("docs/ground_truth_vm_arm64.md")
    assert groundtruth._check_args(args) is None
    assert "--arch arm64" in groundtruth.command(args, 5)
    amd = groundtruth.arguments([])
    assert groundtruth.kernel_name(amd) == "6.1" and amd.md == groundtruth.DOC
    wrong = groundtruth.arguments(["--kernel", "6.1-arm64"])
    assert "--arch arm64" in str(groundtruth._check_args(wrong))


def _data(arch: str, md: str) -> Dict[str, Any]:
    r = check.Result("ebpf-bcc", 5, 100, 0.0)
    r.matched.update(exec=10, open=90)
    gt = {"results": [r.to_dict()], "skipped": [], "running": None, "machine": "m"}
    return {"command": "c", "kernel": "6.1-arm64", "release": "6.1.0-x-arm64", "arch": arch,
            "variant": "headers", "variant_description": "d", "packages": {"p": "1"},
            "cpus": 2, "memory": "2G", "vm_seconds": 9.0, "code": {"commit": "abc"},
            "settings": {"require": ["ebpf-bcc"], "backends": []}, "md": md,
            "step": {"seconds": 8.0, "rc": 0, "timed_out": False}, "groundtruth": gt,
            "verdict": "PASS"}


def test_the_arm64_page_says_how_it_ran_and_links_its_own_json() -> None:
    text = groundtruth.page(_data("arm64", "ground_truth_vm_arm64.md"))
    assert "qemu-system-aarch64" in text and "aarch64 has no `open` or `creat`" in text
    assert "[ground_truth_vm_arm64.json](ground_truth_vm_arm64.json)" in text
    plain = groundtruth.page(_data("amd64", "ground_truth_vm.md"))
    assert "qemu-system-aarch64" not in plain and "aarch64" not in plain
    assert "[ground_truth_vm.json](ground_truth_vm.json)" in plain
