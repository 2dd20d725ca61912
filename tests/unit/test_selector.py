"""The selector's decision over recorded and derived kernel trees."""

from __future__ import annotations

import re
from typing import Dict, Optional, Tuple

import attrs
import pytest

from hybridtrace.errors import RequestError
from hybridtrace.selector import KINDS, SelectionError, decide, require
from tests.unit.kernel_trees import hermetic_env, probe_tree, tree_names

__all__ = ["hermetic_env"]

# Situation -> what auto must choose (same for exec and open), and why.
EXPECTED_AUTO: Dict[str, Optional[str]] = {
    "host-6.18-root": "ebpf-core/tracepoint",  # BTF + bpf() permitted, tracefs readable
    "host-6.18-securityfs": "ebpf-core/tracepoint",  # lockdown=integrity does not stop us
    "host-6.18-tracefs-unmounted": "ebpf-core/tp_btf",  # we never mount tracefs for eBPF
    "host-6.18-nobody": None,  # no privilege at all
    "derived-no-btf-headers": "ebpf-bcc",  # headers, no BTF
    "derived-no-btf": "ebpf-core/raw_tp",  # neither BTF nor headers: raw tracepoints
    "derived-debugfs-only-no-btf": "ebpf-core/raw_tp",  # no tracefs needed either
    "derived-no-btf-no-uprobes": "ebpf-core/raw_tp",
    "derived-kernel-4.19": "ebpf-core/raw_tp",  # 4.17+: raw tracepoints, perf buffers
    # denies tracefs and kernel reads from BPF; BTF raw tracepoints still attach
    "derived-lockdown-confidentiality": "ebpf-core/tp_btf",
    # a measured refusal costs fields, not the backend
    "derived-kernel-reads-refused-no-securityfs": "ebpf-core/tp_btf",
    "derived-container-no-caps": None,  # bpf() EPERM, no tracefs, cannot mount it
    "derived-user-cap-bpf-perfmon": "ebpf-core/tp_btf",  # CAP_BPF+CAP_PERFMON, no tracefs
    # recorded in VMs (tools/vm): tracefs denied, no bpf_probe_read_kernel; BTF walks instead
    "vm-debian-6.1-lockdown-confidentiality": "ebpf-core/tp_btf",
    "vm-debian-6.12-lockdown-confidentiality": "ebpf-core/tp_btf",
    # uid 65534 with CAP_BPF+CAP_PERFMON, tracefs and debugfs under empty tmpfs
    "vm-debian-6.1-least-privilege": "ebpf-core/tp_btf",
    "vm-debian-6.12-least-privilege": "ebpf-core/tp_btf",
    "vm-debian-5.10-no-btf": "ebpf-core/raw_tp",  # raw tracepoints need no BTF
}

# Reason codes are part of doctor --json: changing one breaks fleets comparing reports.
STABLE_CODES = {
    "bpf-unchecked", "bpf-denied", "bpf-missing", "bpf-failed", "lockdown-confidentiality",
    "tracefs-will-mount", "tracefs-missing", "tracefs-readonly", "tracepoints-missing",
    "no-btf", "no-libbpf", "no-ringbuf", "no-bcc", "no-headers", "lockdown-kprobes",
    "no-kprobe-events", "no-eprobes", "no-uprobe-events", "no-libc", "tier-not-implemented",
    "perf-buffer", "borrowed-headers", "bpf-kernel-read-denied", "eprobe-string-fault",
    "tp-btf", "no-tp-btf", "tracefs-not-mounted", "tracefs-unreadable", "no-raw-tp",
    "raw-tp-arch", "raw-tp",
}


def test_at_least_six_distinct_situations() -> None:
    assert set(EXPECTED_AUTO) <= set(tree_names())
    assert len(set(EXPECTED_AUTO.values())) >= 5
    assert len(EXPECTED_AUTO) >= 6


@pytest.mark.parametrize(("name", "kind"), [(n, k) for n in EXPECTED_AUTO for k in KINDS])
def test_auto_choice(name: str, kind: str) -> None:
    decision = decide(probe_tree(name), kind)
    chosen = decision.chosen.label if decision.chosen else None
    assert chosen == EXPECTED_AUTO[name], decision.why


@pytest.mark.parametrize("name", sorted(EXPECTED_AUTO))
def test_every_candidate_explains_itself(name: str) -> None:
    caps = probe_tree(name)
    for kind in KINDS:
        decision = decide(caps, kind)
        labels = [c.label for c in decision.candidates]
        assert labels[:4] == ["ebpf-core/tracepoint", "ebpf-core/tp_btf", "ebpf-bcc",
                              "ebpf-core/raw_tp"]
        assert labels[4:] == ["ftrace/kprobe", "ftrace/eprobe", "ftrace/uprobe",
                              "ftrace/tracepoint"]
        for cand in decision.candidates:
            for reason in cand.reasons:
                assert reason.code in STABLE_CODES, reason.code
                assert reason.message and "\n" not in reason.message
            if not cand.usable:
                assert any(r.blocking for r in cand.reasons)
            assert cand.fields, cand.label
        if decision.chosen is not None:
            assert decision.chosen.usable
            # auto takes the first usable candidate
            assert decision.chosen is next(c for c in decision.candidates if c.usable)


def test_measured_kernel_reads_beat_the_lockdown_guess() -> None:
    """A measured refusal is said even when lockdown is unknown: it blocks BCC, whose
    programs read task_struct, and costs ebpf-core fields, not the backend."""
    refused = decide(probe_tree("derived-kernel-reads-refused-no-securityfs"), "exec")
    classic, core, bcc = refused.candidates[:3]
    note = next(r for r in core.reasons if r.code == "bpf-kernel-read-denied")
    assert not note.blocking and "lockdown=confidentiality is the usual cause" in note.message
    assert core.usable and core.fields["filename"].startswith("partial: from the new image")
    assert refused.chosen is core  # classic programs' user reads would be rewritten
    assert "bpf-kernel-read-denied" in [r.code for r in classic.reasons if r.blocking]
    assert "bpf-kernel-read-denied" in [r.code for r in bcc.reasons if r.blocking]
    caps = probe_tree("derived-lockdown-confidentiality")
    measured_ok = attrs.evolve(caps, bpf=attrs.evolve(caps.bpf, kernel_read_errno=0))
    tp_btf = decide(measured_ok, "exec").chosen
    assert tp_btf is not None and tp_btf.label == "ebpf-core/tp_btf"
    assert tp_btf.fields["filename"].startswith(
        "partial: None only for a failed exec whose path is 512")
    unmeasured = attrs.evolve(caps, bpf=attrs.evolve(caps.bpf, kernel_read_errno=None))
    codes = [r.code for r in decide(unmeasured, "exec").candidates[1].reasons]
    assert codes == ["lockdown-confidentiality", "tp-btf"]


def test_tracefs_free_mode_under_confidentiality() -> None:
    """Kernel reads refused: BTF walks still give ppid and argv, and the new image's stack
    the filename the kernel wrote there (measured in the Debian 6.1 and 6.12 VMs)."""
    decision = decide(probe_tree("derived-lockdown-confidentiality"), "exec")
    chosen = decision.chosen
    assert chosen is not None and chosen.label == "ebpf-core/tp_btf"
    assert chosen.fields["ppid"] == "complete" and chosen.fields["argv"].startswith("complete")
    assert chosen.fields["filename"].startswith("partial: from the new image's stack")
    assert "not ebpf-core/tracepoint: kernel lockdown=confidentiality denies tracefs" in (
        decision.why)


def test_forced_attach_mode() -> None:
    caps = probe_tree("host-6.18-root")
    assert decide(caps, "open", attach="tp_btf").chosen.label == (  # type: ignore[union-attr]
        "ebpf-core/tp_btf")
    assert decide(caps, "open", "ebpf", attach="tracepoint").chosen.label == (  # type: ignore[union-attr]
        "ebpf-core/tracepoint")
    unmounted = probe_tree("host-6.18-tracefs-unmounted")
    with pytest.raises(SelectionError, match=r"tracefs is not mounted.*mount -t tracefs"):
        require(unmounted, "exec", attach="tracepoint")
    with pytest.raises(RequestError, match="unknown eBPF attach mode 'kprobe'"):
        decide(caps, "exec", attach="kprobe")
    with pytest.raises(RequestError, match="applies to the ebpf-core backend only"):
        decide(caps, "exec", "ftrace", attach="tp_btf")


def test_privileged_bpf_refusal_is_not_blamed_on_capabilities() -> None:
    caps = probe_tree("host-6.18-root")
    refused = attrs.evolve(caps, bpf=attrs.evolve(caps.bpf, prog_load_errno=1,
                                                  ringbuf_errno=None, kernel_read_errno=None))
    reason = decide(refused, "open").candidates[0].reasons[0]
    assert reason.code == "bpf-denied"
    assert "although we hold the capabilities" in reason.message
    assert reason.remedy is not None and "seccomp" in reason.remedy


def test_why_names_the_better_candidates_that_were_skipped() -> None:
    decision = decide(probe_tree("derived-no-btf"), "exec")
    assert decision.why.startswith("ebpf-core/raw_tp chosen for exec")
    assert "ebpf-core/tracepoint: no kernel BTF" in decision.why
    assert "ebpf-core/tp_btf: no kernel BTF" in decision.why
    assert "ebpf-bcc: no kernel headers" in decision.why


@pytest.mark.parametrize(("name", "choice", "missing", "remedy"), [
    ("host-6.18-root", "ebpf-bcc", "no kernel headers", "Debian/Ubuntu: linux-headers-"),
    ("host-6.18-nobody", "ebpf", "bpf() denied (EPERM)", "CAP_BPF and CAP_PERFMON"),
    ("derived-container-no-caps", "ftrace", "tracefs is not mounted", "mount -t tracefs"),
    ("derived-lockdown-confidentiality", "ebpf-bcc", "lockdown=confidentiality",
     "boot with lockdown=integrity"),
])
def test_impossible_explicit_choice_is_one_line(name: str, choice: str, missing: str,
                                                remedy: str) -> None:
    caps = probe_tree(name)
    for kind in KINDS:
        with pytest.raises(SelectionError) as info:
            require(caps, kind, choice)
        text = str(info.value)
        assert "\n" not in text
        assert text.startswith(f"no usable backend for {kind} tracing with --backend {choice}")
        assert missing in text and remedy in text, text


def test_without_btf_only_raw_tp_is_left_to_ebpf_core() -> None:
    caps = probe_tree("derived-no-btf")
    for attach in ("tracepoint", "tp_btf"):
        with pytest.raises(SelectionError, match=r"no kernel BTF.*CONFIG_DEBUG_INFO_BTF"):
            require(caps, "exec", "ebpf-core", attach=attach)
    chosen = require(caps, "exec", "ebpf-core").chosen
    assert chosen is not None and chosen.label == "ebpf-core/raw_tp"
    assert chosen.fields["ppid"].startswith("none") and chosen.fields["argv"].startswith(
        "partial")


def test_explicit_choice_that_works() -> None:
    caps = probe_tree("host-6.18-root")
    assert require(caps, "open", "ebpf").chosen is not None
    decision = require(caps, "exec", "ftrace", "tracepoint")
    assert decision.chosen is not None and decision.chosen.label == "ftrace/tracepoint"
    assert [c.label for c in decision.candidates if c.backend == "ftrace"] == [
        "ftrace/tracepoint"]
    assert decide(caps, "exec", "ftrace").chosen.label == "ftrace/uprobe"  # type: ignore[union-attr]


@pytest.mark.parametrize(("args", "message"), [
    (("exec", "dtrace", None), "unknown backend 'dtrace'"),
    (("mmap", "auto", None), "unknown kind 'mmap'"),
    (("exec", "ftrace", "magic"), "unknown ftrace tier 'magic'"),
    (("exec", "ebpf-core", "uprobe"), "--tier applies to the ftrace backend only"),
])
def test_bad_requests(args: Tuple[str, str, Optional[str]], message: str) -> None:
    with pytest.raises(RequestError, match=re.escape(message)):
        decide(probe_tree("host-6.18-root"), *args)


def test_unknown_bpf_does_not_block_but_is_said() -> None:
    caps = probe_tree("host-6.18-root")
    unknown = attrs.evolve(caps, bpf=attrs.evolve(caps.bpf, prog_load_errno=None))
    decision = decide(unknown, "exec")
    assert decision.chosen is not None and decision.chosen.label == "ebpf-core/tracepoint"
    assert any(r.code == "bpf-unchecked" and not r.blocking for r in decision.chosen.reasons)


def test_missing_tracepoints_block_ftrace() -> None:
    caps = probe_tree("host-6.18-root")
    tps = dict(caps.tracefs.tracepoints, **{"syscalls/sys_enter_openat": False})
    broken = attrs.evolve(caps, tracefs=attrs.evolve(caps.tracefs, tracepoints=tps))
    decision = decide(broken, "open", "ftrace")
    assert decision.chosen is None
    assert "syscalls/sys_enter_openat" in decision.failure()
    assert decide(broken, "exec", "ftrace").chosen is not None
