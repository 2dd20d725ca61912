"""The kernel matrix's experiments (tools/vm): the hand-assembled raw
tracepoint programs, their evidence lines and conclusion, the findings the
report draws from them, and the unprivileged variant's plumbing."""

from __future__ import annotations

import struct
from typing import Any, Dict, List, Optional, Tuple

import pytest

from tools.vm import raw_tp_probe, report, runs
from tools.vm.variants import BY_NAME, FULL, SUITES


def decode(code: bytes) -> List[Tuple[int, int, int, int, int]]:
    out = []
    for i in range(0, len(code), 8):
        op, regs, off, imm = struct.unpack_from("<BBhi", code, i)
        out.append((op, regs & 0xF, regs >> 4, off, imm))
    return out


@pytest.mark.parametrize("tgid,helper,source", [
    (1234, 112, 0x7FFF_DEAD_BEEF), (1234, 113, None), (None, None, None)])
def test_every_jump_lands_on_the_final_return(tgid: Optional[int], helper: Optional[int],
                                               source: Optional[int]) -> None:
    insns = decode(raw_tp_probe.program(5, tgid, helper, source))
    assert insns[-2][:1] == (0xB7,) and insns[-2][4] == 0 and insns[-1][0] == 0x95
    jumps = [(i, ins) for i, ins in enumerate(insns) if ins[0] in (0x15, 0x55)]
    assert jumps
    for i, ins in jumps:
        assert i + 1 + ins[3] == len(insns) - 2
    if tgid is not None:
        assert any(ins[0] == 0x55 and ins[4] == tgid for _, ins in jumps)
    calls = [ins[4] for ins in insns if ins[0] == 0x85]
    assert (helper in calls) is (helper is not None)


def test_map_fd_and_user_address_are_64_bit_immediates() -> None:
    insns = decode(raw_tp_probe.program(9, 1, 112, 0x7FFF_DEAD_BEEF))
    loads = [i for i, ins in enumerate(insns) if ins[0] == 0x18]
    map_load, addr_load = loads
    assert insns[map_load][2] == raw_tp_probe.PSEUDO_MAP_FD and insns[map_load][4] == 9
    lo = insns[addr_load][4] & 0xFFFFFFFF
    hi = insns[addr_load + 1][4] & 0xFFFFFFFF
    assert (hi << 32) | lo == 0x7FFF_DEAD_BEEF and insns[addr_load][1] == 3


def test_kernel_source_reads_ctx_args0() -> None:
    insns = decode(raw_tp_probe.program(9, 1, 113, None))
    assert (0x79, 3, 6, 0) in [ins[:4] for ins in insns]  # r3 = *(u64 *)(r6 + 0)


def _trials(kernel_stage: str) -> Dict[str, Any]:
    ran = {"stage": "ran", "hits": 2, "ctx_arg1": 39, "helper_ret": 0}
    kernel: Dict[str, Any] = (
        {**ran, "data_matches": None} if kernel_stage == "ran" else
        {"stage": "load", "error": "EINVAL (Invalid argument)",
         "verifier": "unknown func bpf_probe_read_kernel#113"})
    return {"facts": {"lockdown": "none integrity [confidentiality]", "tracefs_events": False},
            "trials": [
                {"tracepoint": "sys_enter", "helper": "probe_read_user", **ran,
                 "data_matches": True},
                {"tracepoint": "sys_enter", "helper": "probe_read_kernel", **kernel},
                {"tracepoint": "sys_enter", "helper": "probe_read", **kernel},
                {"tracepoint": "sched_process_exec", "helper": None, "stage": "ran",
                 "hits": 1, "ctx_arg1": 7}]}


def test_locked_down_kernel_reads_are_reported_as_refused() -> None:
    data = _trials("load")
    lines = raw_tp_probe.summarise(data)
    assert lines[0].endswith("read the marker")
    assert "load failed" in lines[1] and "unknown func bpf_probe_read_kernel#113" in lines[1]
    text = raw_tp_probe.conclusion(data)
    assert "reads user memory" in text and "refused by the verifier" in text


def test_unlocked_kernel_reads_work() -> None:
    text = raw_tp_probe.conclusion(_trials("ran"))
    assert "work too" in text and "refused" not in text


def test_no_attach_no_claim() -> None:
    data = _trials("ran")
    data["trials"][3] = {"tracepoint": "sched_process_exec", "helper": None,
                         "stage": "attach", "error": "EPERM"}
    assert "could not be loaded and attached" in raw_tp_probe.conclusion(data)


def _row(variant: str, **extra: Any) -> Dict[str, Any]:
    cand = {"label": "ftrace/tracepoint", "usable": True, "reasons": [], "fields": {}}
    decision = {"chosen": "ftrace/tracepoint", "candidates": [cand]}
    return {"name": f"debian-6.1-{variant}", "kernel": "6.1", "release": "6.1.0-56-amd64",
            "vm": True, "variant": variant, "seconds": 1.0, "packages": {},
            "doctor": {"decisions": {"exec": decision, "open": decision}},
            "force_open": {"results": {"ftrace/tracepoint": {
                "exec": {"outcome": "traced"}, "open": {"outcome": "traced"}}}},
            "groups": {}, **extra}


def test_report_findings_come_from_the_rows_evidence() -> None:
    data = {"generated_by": "x", "generated_at": "now", "results": [
        _row("lockdown-confidentiality", raw_tp_probe=_trials("load")),
        _row("unprivileged", setup={"unprivileged": {"ok": True, "detail": "bpf() EPERM"}})]}
    text = report.render(data)
    findings = text.split("## Findings", 1)[1].split("## Kernels", 1)[0]
    assert "refused by the verifier" in findings
    assert "unknown func bpf_probe_read_kernel#113" in findings
    assert "Unprivileged user" in findings and "bpf() EPERM" in findings
    assert "forced open traced both kinds with: ftrace/tracepoint" in findings
    plain = report.render({**data, "results": [_row("default")]})
    assert "## Findings" not in plain


def test_unprivileged_variant_runs_no_tests_and_wraps_the_tracer() -> None:
    variant = BY_NAME["unprivileged"]
    assert variant.unprivileged and "unprivileged" in variant.setup
    assert ("6.1", "unprivileged", "none") in FULL and SUITES["none"] == ((), None)
    config = runs.guest_config("/tmp/r", None, variant, "n", "none", 60, 60, False)
    assert config["unprivileged"] and config["pytest"]["paths"] == []
    assert runs.guest_config("/tmp/r", None, BY_NAME["lockdown-confidentiality"], "n",
                             "contract", 60, 60, False)["raw_tp_probe"]


def _btf(types: List[bytes], names: List[bytes]) -> bytes:
    strings = b"\0" + b"".join(n + b"\0" for n in names)
    body = b"".join(types)
    return struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(body), len(body),
                       len(strings)) + body + strings


def test_btf_lookup_finds_the_typedef_id_and_member_offset() -> None:
    names = [b"int", b"pt_regs", b"si", b"di", b"btf_trace_sys_enter"]
    off = {n: 1 + sum(len(m) + 1 for m in names[:i]) for i, n in enumerate(names)}
    types = [
        struct.pack("<III", off[b"int"], 1 << 24, 8) + struct.pack("<I", 64),  # id 1, INT
        struct.pack("<III", 0, 13 << 24 | 1, 0) + struct.pack("<II", 0, 1),  # id 2, FUNC_PROTO
        struct.pack("<III", off[b"pt_regs"], 4 << 24 | 2, 16)  # id 3, STRUCT, 2 members
        + struct.pack("<III", off[b"si"], 1, 0) + struct.pack("<III", off[b"di"], 1, 64),
        struct.pack("<III", off[b"btf_trace_sys_enter"], 8 << 24, 2),  # id 4, TYPEDEF
    ]
    blob = _btf(types, names)
    assert raw_tp_probe.btf_lookup(blob, "btf_trace_sys_enter", "pt_regs", "di") == (4, 8)
    assert raw_tp_probe.btf_lookup(blob, "btf_trace_nothing", "pt_regs", "ax") == (None, None)
    with pytest.raises(ValueError):
        raw_tp_probe.btf_lookup(b"\0" * 24, "x", "y", "z")


def test_btf_program_filters_on_pid_and_syscall_then_loads_regs_di() -> None:
    insns = decode(raw_tp_probe.btf_program(3, 77, 39, 112))
    jumps = [(i, ins) for i, ins in enumerate(insns) if ins[0] in (0x15, 0x55)]
    assert all(i + 1 + ins[3] == len(insns) - 2 for i, ins in jumps)
    assert {ins[4] for _, ins in jumps} >= {77, 39}
    assert (0x79, 3, 1, 112) in [ins[:4] for ins in insns]  # r3 = regs->di, a plain load
    assert [ins[4] for ins in insns if ins[0] == 0x85][-1] == 112  # then probe_read_user


def test_btf_trial_result_shapes_the_conclusion() -> None:
    data = _trials("load")
    data["trials"].append({"tracepoint": "sys_enter", "helper": "probe_read_user", "btf": True,
                           "stage": "ran", "hits": 1, "helper_ret": 0,
                           "regs_di_matches": True, "data_matches": True})
    assert "reads the syscall's arguments from pt_regs" in raw_tp_probe.conclusion(data)
    assert "attached by its BTF id" in raw_tp_probe.summarise(data)[-1]
    data["trials"][-1] = {"tracepoint": "sys_enter", "helper": "probe_read_user", "btf": True,
                          "stage": "load", "error": "EACCES"}
    assert "did not work: load EACCES" in raw_tp_probe.conclusion(data)
