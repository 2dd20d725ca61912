"""What probe and doctor say about io_uring opens, over recorded kernel trees."""

from __future__ import annotations

import struct

import attrs
import pytest

from hybridtrace.backends.ebpf.requirements import assess_bcc, assess_core
from hybridtrace.backends.ftrace.requirements import assess_tier
from hybridtrace.capabilities.btf_names import btf_strings, has_tracepoints
from hybridtrace.capabilities.model import Capabilities, IoUring
from hybridtrace.doctor import build_report
from hybridtrace.doctor.render_json import report_to_dict
from hybridtrace.doctor.render_text import render_text
from hybridtrace.vocabulary import IO_URING_EVENTS, URING_HOW_NONE
from tests.unit.kernel_trees import probe_tree

PRESENT = {e: e != "io_uring_submit_sqe" for e in IO_URING_EVENTS}  # a 6.4+ kernel
OLD = {e: e != "io_uring_submit_req" for e in IO_URING_EVENTS}  # before 6.4


def _btf(strings: bytes) -> bytes:
    """A BTF blob with no types and these strings (include/uapi/linux/btf.h header)."""
    return struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, 0, 0, len(strings)) + strings


def test_btf_names_find_tracepoint_typedefs_whole_names_only() -> None:
    blob = _btf(b"\0int\0btf_trace_io_uring_complete\0btf_trace_io_uring_submit_req_x\0")
    found = has_tracepoints(blob, ["io_uring_complete", "io_uring_submit_req"])
    assert found == {"io_uring_complete": True, "io_uring_submit_req": False}
    with pytest.raises(ValueError):
        btf_strings(b"\xeb\x9f" + bytes(30))  # big-endian magic: not this host's BTF
    with pytest.raises(ValueError):
        btf_strings(b"short")


def _caps(name: str = "host-6.18-root", **io_uring: object) -> Capabilities:
    caps = probe_tree(name)
    return attrs.evolve(caps, io_uring=IoUring(**{"disabled": 0, "tracepoints": PRESENT,
                                                  **io_uring}))  # type: ignore[arg-type]


def test_each_open_candidate_says_whether_it_sees_io_uring_opens() -> None:
    caps = _caps()
    with_paths = assess_core(caps, "open", "tp_btf").fields["io_uring"]
    assert with_paths.startswith("partial: seen with paths")
    assert assess_core(caps, "open", "tracepoint").fields["io_uring"] == with_paths
    assert assess_core(caps, "open", "raw_tp").fields["io_uring"].startswith("none:")
    bcc = assess_bcc(caps, "open").fields["io_uring"]
    assert bcc.startswith("partial: seen with paths") and URING_HOW_NONE in bcc
    assert URING_HOW_NONE not in with_paths
    for tier in ("kprobe", "eprobe", "uprobe", "tracepoint"):  # no request layout known
        assert assess_tier(caps, "open", tier).fields["io_uring"].startswith(
            "partial: seen without paths")
    assert "io_uring" not in assess_core(caps, "exec", "tp_btf").fields


def test_kernel_reads_refused_means_no_paths() -> None:
    caps = _caps("derived-lockdown-confidentiality")
    assert assess_core(caps, "open", "tp_btf").fields["io_uring"].startswith(
        "partial: seen without paths")


def test_nothing_to_see_where_io_uring_is_off_and_none_without_its_tracepoints() -> None:
    off = _caps(disabled=2)
    assert assess_core(off, "open", "tp_btf").fields["io_uring"].startswith("none needed:")
    old = _caps(tracepoints={**PRESENT, "io_uring_complete": False})
    assert assess_core(old, "open", "tp_btf").fields["io_uring"].startswith("none:")
    assert assess_tier(old, "open", "uprobe").fields["io_uring"].startswith("none:")
    unknown = _caps(tracepoints=None)
    assert "not checked here" in assess_core(unknown, "open", "tp_btf").fields["io_uring"]


def test_before_6_0_the_submit_tracepoint_has_no_typed_request() -> None:
    caps = _caps("vm-debian-5.10-default", tracepoints=OLD)
    assert assess_core(caps, "open", "tp_btf").fields["io_uring"].startswith("none:")
    bcc = assess_bcc(caps, "open").fields["io_uring"]
    # 5.10's BTF has io_kiocb.open (struct io_open), not io_kiocb.cmd; its
    # io_uring_complete is (ctx, user_data, res, cflags): io_uring_shapes.json
    assert bcc.startswith("none: before 6.0 io_uring_complete names no request")
    assert "io_kiocb.open" in bcc and "no io_open" not in bcc
    assert bcc.endswith(f"(this kernel: {caps.kernel.release})")


def test_6_1s_io_uring_submit_sqe_is_given_the_request() -> None:
    caps = _caps("vm-debian-6.1-default", tracepoints=OLD)
    assert assess_core(caps, "open", "tp_btf").fields["io_uring"].startswith(
        "partial: seen with paths")
    assert assess_bcc(caps, "open").fields["io_uring"].startswith("partial: seen with paths")
    gone = _caps("vm-debian-6.1-default", tracepoints={**OLD, "io_uring_submit_sqe": False})
    assert assess_core(gone, "open", "tp_btf").fields["io_uring"].startswith("none:")


def test_bcc_needs_btf_to_find_the_path() -> None:
    caps = _caps("derived-no-btf-headers")
    assert assess_bcc(caps, "open").fields["io_uring"].startswith("none: no kernel BTF")


def test_doctor_reports_io_uring_in_text_and_json() -> None:
    report = build_report(_caps(disabled=1))
    check = report_to_dict(report)["checks"]
    (uring,) = [c for c in check if c["id"] == "io_uring"]
    assert uring["data"]["disabled"] == 1 and uring["data"]["tracepoints"] == PRESENT
    assert "root and io_uring_group only" in uring["value"]
    text = render_text(report)
    assert "io_uring opens" in text
    section = text.split("io_uring opens", 1)[1]
    assert any(ln.split()[:2] == ["ebpf-core/raw_tp", "none:"] for ln in section.splitlines())


def test_recorded_trees_without_the_fact_say_unknown_not_absent() -> None:
    caps = probe_tree("vm-debian-6.12-default")
    assert caps.io_uring.tracepoints is None
    assert any(u.startswith("io_uring tracepoints:") for u in caps.unchecked)


def test_kprobe_and_eprobe_tiers_claim_paths_where_btf_locates_them() -> None:
    layout = {"filename": 16, "dfd": 8, "name": 0, "handler": 1}
    caps = _caps(layout=layout)
    for tier in ("kprobe", "eprobe"):
        claim = assess_tier(caps, "open", tier).fields["io_uring"]
        assert claim.startswith("partial: seen with paths") and URING_HOW_NONE in claim
    assert "kprobe on io_openat2" in assess_tier(caps, "open", "kprobe").fields["io_uring"]
    for tier in ("uprobe", "tracepoint"):
        assert assess_tier(caps, "open", tier).fields["io_uring"].startswith(
            "partial: seen without paths:")
    inlined = _caps(layout=dict(layout, handler=0))
    assert assess_tier(inlined, "open", "kprobe").fields["io_uring"].startswith(
        "partial: seen without paths (io_openat2 is not a function here")
    eprobe = assess_tier(inlined, "open", "eprobe").fields["io_uring"]
    assert "with paths" in eprobe and "CQE_SKIP" not in eprobe  # read at submission itself
    # the text reader decodes no io_uring records at all
    assert assess_tier(caps, "open", "kprobe").fields["io_uring_text_reader"].startswith("none")


REFUSED_NONE = "path and dfd None for a request whose preparation failed"


def test_refused_requests_have_the_callers_path_where_a_probe_reads_it() -> None:
    """O_CLOEXEC into a fixed slot is refused while the request is prepared: no
    submission, no handler. The kprobe tier reads the caller's path where both
    preparation functions are functions (BTF), the eprobe tier where the failure
    tracepoint exists; elsewhere doctor says those paths are None."""
    layout = {"filename": 16, "dfd": 8, "name": 0, "handler": 1, "prep": 1}
    caps = _caps(layout=layout)
    kprobe = assess_tier(caps, "open", "kprobe").fields["io_uring"]
    eprobe = assess_tier(caps, "open", "eprobe").fields["io_uring"]
    assert ("path the caller's (read by kprobes on io_openat_prep and io_openat2_prep as its"
            " preparation began; None when refused before that, or not in memory)") in kprobe
    assert "path the caller's (read by an eprobe on io_uring_req_failed" in eprobe
    assert REFUSED_NONE not in kprobe and REFUSED_NONE not in eprobe
    assert "and no paths but those of requests whose preparation failed" in kprobe
    for claim in (kprobe, eprobe):
        assert claim.startswith("partial: seen with paths") and "dfd None" in claim
    no_prep = assess_tier(_caps(layout=dict(layout, prep=0)), "open", "kprobe")
    assert REFUSED_NONE in no_prep.fields["io_uring"]
    assert no_prep.fields["io_uring"].endswith("and no paths")
    # a layout recorded before preparation functions were looked for: not claimed
    assert REFUSED_NONE in assess_tier(_caps(layout={k: v for k, v in layout.items()
                                                     if k != "prep"}), "open",
                                       "kprobe").fields["io_uring"]
    no_failed = _caps(layout=layout, tracepoints={**PRESENT, "io_uring_req_failed": False})
    assert REFUSED_NONE in assess_tier(no_failed, "open", "eprobe").fields["io_uring"]
