"""Can the eBPF engines run on a kernel? Pure judgement of a Capabilities value."""

from __future__ import annotations

from typing import Dict, List, Optional

from hybridtrace.backends.base import Assessment, Reason
from hybridtrace.backends.ebpf.bcc import headers as bcc_headers
from hybridtrace.backends.requirements_common import (
    bpf_reasons,
    headers_path,
    io_uring_moot,
    kernel_read_reasons,
    pid_namespace_reasons,
    tracefs_reasons,
)
from hybridtrace.capabilities.model import Capabilities
from hybridtrace.request import PATH_SIZE
from hybridtrace.vocabulary import (
    CORE_ARCHES,
    FIELD_IO_URING,
    IO_URING_COMPLETE,
    IO_URING_SUBMIT,
    IO_URING_SUBMIT_OLD,
    URING_HOW_NONE,
)

# How ebpf-core attaches (vocabulary.CORE_ATTACH_MODES): classic syscall
# tracepoints (their ids are read from tracefs; only the traced syscalls run a
# program), raw tracepoints by BTF name (tp_btf: no tracefs at all, but
# sys_enter/sys_exit run on every syscall), or the same raw tracepoints on
# kernels without BTF (raw_tp: no task_struct reads).
TP_BTF_SINCE = (5, 5, 0)
RAW_TP_SINCE = (4, 17, 0)
TASK_BTF_SINCE = (5, 11, 0)  # bpf_get_current_task_btf: the caller's task by plain loads
# io_uring_submit_sqe (io_uring_submit_req from 6.4) is given the request from 6.0 on;
# before, the ring, the request as an untyped pointer (tp_btf programs cannot read
# through it) and copies of a few of its fields.
# (io_uring_complete's two shapes, before and from 6.13, each have their program, which
# the stream picks by the kernel's BTF: uring_programs.py.)
IO_URING_REQ_SINCE = (6, 0, 0)
UNCHECKED_TRACEPOINTS = "; where the kernel has io_uring's tracepoints (not checked here)"
RAW_TP_ARCHES = ("x86_64", "aarch64")  # bpf/common.h knows their syscall numbers and regs
_NO_LAYOUT = "no BTF, so task_struct's layout is unknown"
# A failed exec has no bprm->filename, only the caller's argument, which the
# program keeps PATH_SIZE bytes of; an ExecEvent has no flag for a cut filename.
_FAILED_LONG = (f"None only for a failed exec whose path is {PATH_SIZE} bytes or more"
                " (events have no flag for a cut filename)")


def _fields(kind: str) -> Dict[str, str]:
    if kind == "exec":
        return {
            "filename": f"partial: {_FAILED_LONG}",
            "argv": "complete (re-read from the new image when the caller's pages were out)",
            "ppid": "complete",
            "uid": "complete",
            "retval": "complete",
        }
    return {"path": "complete", "flags": "complete", "mode": "complete", "fd": "complete",
            "uid": "complete"}


def _uring_tracepoint_lacking(tps: Optional[Dict[str, bool]]) -> Optional[str]:
    """Why the io_uring tracepoints both eBPF engines need are not all there, or None
    (also when not known: the claim then says so)."""
    if tps is not None and not (tps.get(IO_URING_SUBMIT) or tps.get(IO_URING_SUBMIT_OLD)):
        return f"none: the kernel has no {IO_URING_SUBMIT} (or {IO_URING_SUBMIT_OLD}) tracepoint"
    if tps is not None and not tps.get(IO_URING_COMPLETE):
        return f"none: the kernel has no {IO_URING_COMPLETE} tracepoint"
    return None


def core_io_uring(caps: Capabilities, tier: str) -> str:
    """Whether ebpf-core sees opens made through io_uring, and with which fields
    (bpf/open.bpf.c: io_uring's tracepoints by BTF name in both attach modes)."""
    moot = io_uring_moot(caps)
    if moot:
        return f"none needed: {moot}"
    if tier == "raw_tp":
        return ("none: io_uring's requests can only be read through the kernel's BTF,"
                " which raw_tp lacks")
    if caps.kernel.version < IO_URING_REQ_SINCE:
        return (f"none: before 6.0 io_uring's {IO_URING_SUBMIT_OLD} tracepoint is given the"
                " request only as an untyped pointer, which tp_btf programs cannot read"
                f" through (this kernel: {caps.kernel.release})")
    tps = caps.io_uring.tracepoints
    lacking = _uring_tracepoint_lacking(tps)
    if lacking:
        return lacking
    who = ("the submitting task's pid, tid, comm and uid (tid, comm and uid None for SQPOLL"
           " submissions: no thread of the process made them)")
    if caps.bpf.kernel_read is False:
        fields = (f"partial: seen without paths: dfd, fd/errno and {who}; path, flags and mode"
                  " None (the request is kernel memory and bpf_probe_read_kernel is refused)")
    else:
        fields = (f"partial: seen with paths: path (the kernel's copy), flags, mode, dfd,"
                  f" fd/errno and {who}")
    if tps is None:
        fields += UNCHECKED_TRACEPOINTS
    return fields


def _core_fields(caps: Capabilities, kind: str, tier: str) -> Dict[str, str]:
    """Without kernel reads, what the syscall's user memory and BTF walks still give."""
    fields = _fields(kind)
    if kind == "open":
        fields[FIELD_IO_URING] = core_io_uring(caps, tier)
    if kind == "exec" and tier == "raw_tp":
        fields["filename"] = ("partial: from the caller's memory; None where it was not paged"
                              f" in (the kernel's copy needs struct layouts: {_NO_LAYOUT})")
        fields["argv"] = ("partial: from the caller's memory only; None for fork()+execv()"
                          f" children whose pages were out ({_NO_LAYOUT})")
        fields["ppid"] = f"none: {_NO_LAYOUT}"
        return fields
    if kind != "exec" or caps.bpf.kernel_read is not False:
        return fields
    why = "bpf_probe_read_kernel is refused"
    if tier == "tp_btf":  # what the kernel put on the new image's stack stands in for its copy
        fields["filename"] = ("partial: from the new image's stack where the caller's pages"
                              f" were out; {_FAILED_LONG}")
    else:
        fields["filename"] = ("partial: from the caller's memory; None where it was not paged"
                              f" in (the kernel's copy needs kernel reads: {why})")
    btf_task = tier == "tp_btf" and caps.kernel.version >= TASK_BTF_SINCE
    if not btf_task:
        fields["ppid"] = f"none: {why} and no BTF task walk here"
    if tier != "tp_btf":
        fields["argv"] = ("partial: from the caller's memory only (the new image's copy needs"
                          f" kernel reads: {why})")
    return fields


def _tier_reasons(caps: Capabilities, kind: str, tier: str) -> List[Reason]:
    if tier == "raw_tp":
        return _raw_tp_reasons(caps)
    if tier == "tp_btf":
        if caps.kernel.version < TP_BTF_SINCE:
            return [Reason("no-tp-btf", "BTF raw tracepoints (tp_btf) need kernel 5.5+",
                           remedy="mount tracefs for the classic tracepoints")]
        return [Reason("tp-btf", "attached by name to the raw sys_enter/sys_exit and"
                       " sched_process_exec tracepoints: no tracefs needed, but a program runs"
                       " on every syscall", blocking=False)]
    return _classic_tracefs_reasons(caps, kind)


def _raw_tp_reasons(caps: Capabilities) -> List[Reason]:
    out: List[Reason] = []
    if caps.kernel.version < RAW_TP_SINCE:
        out.append(Reason("no-raw-tp", "raw tracepoints need kernel 4.17+"))
    if caps.kernel.arch not in RAW_TP_ARCHES:
        out.append(Reason("raw-tp-arch", f"raw_tp programs know the syscall registers of"
                          f" {', '.join(RAW_TP_ARCHES)} only, not {caps.kernel.arch}"))
    out += kernel_read_reasons(caps)  # pt_regs is read with bpf_probe_read
    out.append(Reason("raw-tp", "raw tracepoints by name without BTF: no tracefs needed, a"
                      " program runs on every syscall, and what needs task_struct (ppid, the"
                      " new image's argv) is left out", blocking=False))
    return out


def _classic_tracefs_reasons(caps: Capabilities, kind: str) -> List[Reason]:
    """Classic tracepoints need their ids from tracefs, which we never mount for eBPF."""
    tfs = caps.tracefs
    if caps.lockdown == "confidentiality":
        return [Reason("lockdown-confidentiality", "kernel lockdown=confidentiality denies"
                       " tracefs, where classic tracepoint ids are read")]
    if tfs.path is None:
        return [Reason("tracefs-not-mounted",
                       "tracefs is not mounted (hybridtrace does not mount it for eBPF)",
                       remedy="mount -t tracefs nodev /sys/kernel/tracing to attach to the"
                       " classic tracepoints, which run only for the traced syscalls")]
    if not tfs.tracepoints:
        return [Reason("tracefs-unreadable",
                       f"{tfs.path} is not readable by us (tracefs is root-only by default)",
                       remedy="run as root to attach to the classic tracepoints")]
    return tracefs_reasons(caps, kind, "ebpf")


def assess_core(caps: Capabilities, kind: str, tier: str = "tracepoint") -> Assessment:
    reasons = bpf_reasons(caps)
    if caps.kernel.arch not in CORE_ARCHES:
        reasons.append(Reason(
            "no-objects-for-arch",
            f"hybridtrace ships ebpf-core's compiled programs for {', '.join(CORE_ARCHES)},"
            f" not {caps.kernel.arch}",
            remedy="use the ebpf-bcc engine (compiles at run time) or the ftrace backend"))
    if caps.btf.path is None and tier != "raw_tp":
        reasons.append(
            Reason(
                "no-btf",
                "no kernel BTF found (searched " + ", ".join(caps.btf.searched[:3]) + ", ...)",
                remedy="use a kernel built with CONFIG_DEBUG_INFO_BTF=y, or install kernel"
                " headers for the BCC engine",
            )
        )
    if caps.libbpf is None:
        reasons.append(
            Reason("no-libbpf", "libbpf.so.1 not found", remedy="apt-get install libbpf1")
        )
    if caps.bpf.ringbuf is False:
        reasons.append(Reason(
            "perf-buffer",
            "no BPF ring buffer (5.8+): events go through per-CPU perf buffers",
            blocking=False,
        ))
    if tier == "tp_btf":  # raw_tp cannot do without kernel reads: _raw_tp_reasons says so
        reasons += kernel_read_reasons(caps, blocking=False)
    reasons += _tier_reasons(caps, kind, tier)
    if tier == "tracepoint" and kernel_read_reasons(caps):
        # libbpf then rewrites user-memory reads into helpers the kernel refuses too;
        # only the tp_btf loader undoes that (user_reads.py).
        reasons.append(Reason("bpf-kernel-read-denied", "BPF kernel reads are refused, and"
                              " libbpf then turns classic programs' user-memory reads into"
                              " refused helpers (ebpf-core/tp_btf keeps them)"))
    return Assessment("ebpf-core", tier, kind, reasons, _core_fields(caps, kind, tier))


def bcc_io_uring(caps: Capabilities) -> str:
    """Whether ebpf-bcc sees opens made through io_uring (bcc/open.c, HT_URING: io_uring's
    tracepoints by their tracefs fields, the request's path by offsets from BTF)."""
    moot = io_uring_moot(caps)
    if moot:
        return f"none needed: {moot}"
    if caps.kernel.version < IO_URING_REQ_SINCE:
        # 5.10's BTF: io_kiocb.open (a union member) holds the io_open, but no cmd.
        return ("none: before 6.0 io_uring_complete names no request (only its ring and"
                " user_data), by which ebpf-bcc ties a result to its submission, and a"
                " request keeps its open in the union member io_kiocb.open, where ebpf-bcc,"
                " which reads io_kiocb.cmd (6.0+), does not look (this kernel:"
                f" {caps.kernel.release})")
    if caps.btf.path is None:
        return "none: no kernel BTF, whose offsets locate an io_uring request's path"
    tps = caps.io_uring.tracepoints
    lacking = _uring_tracepoint_lacking(tps)
    if lacking:
        return lacking
    fields = ("partial: seen with paths: path (the kernel's copy; the caller's for a request"
              " whose preparation failed), dfd (None for those), fd/errno and the submitting"
              " task's pid, tid, comm and uid (tid, comm and uid None for SQPOLL submissions);"
              f" {URING_HOW_NONE} (the kernel keeps only its adjusted copy)")
    return fields + (UNCHECKED_TRACEPOINTS if tps is None else "")


def _bcc_headers(caps: Capabilities, fields: Dict[str, str]) -> List[Reason]:
    """Headers for the exact release are full fidelity; borrowed ones only when
    the user named them, with task_struct reads from BTF (or off without it)."""
    try:
        tree = bcc_headers.locate(caps.kernel.release, caps.headers.build, caps.headers.kheaders)
    except bcc_headers.HeadersError as exc:
        return [
            Reason(
                "no-headers",
                f"no kernel headers at {headers_path(caps)} (BCC compiles against them)"
                if "no kernel headers" in str(exc) else str(exc),
                remedy=bcc_headers.install_hint(caps.kernel.release),
            )
        ]
    if tree.exact:
        return []
    note = f"headers of {tree.release} borrowed for {caps.kernel.release} ({tree.origin})"
    if caps.btf.path is not None:
        return [Reason("borrowed-headers", note + "; task_struct offsets come from BTF",
                       blocking=False)]
    if "ppid" in fields:
        fields["ppid"] = ("partial: from /proc while the process lives (borrowed headers and"
                          " no BTF give no trustworthy task_struct)")
        fields["argv"] = "partial: caller's memory only (no re-read from the new image)"
    return [Reason("borrowed-headers", note + "; no BTF, so ppid and the argv re-read are off",
                   blocking=False,
                   remedy=f"install linux-headers-{caps.kernel.release} for full fidelity")]


def assess_bcc(caps: Capabilities, kind: str) -> Assessment:
    reasons = bpf_reasons(caps) + kernel_read_reasons(caps)
    fields = _fields(kind)
    if kind == "exec":  # measured (ground truth, Debian 6.1 VM): 17 failed execs in 1487
        fields["argv"] = ("partial: re-read from the new image when the caller's pages were"
                          " out; a failed exec has none: then None")
    if caps.bcc.version is None:
        reasons.append(
            Reason(
                "no-bcc",
                "BCC's python module is not importable"
                + (f" ({caps.bcc.error})" if caps.bcc.error else ""),
                remedy="apt-get install python3-bpfcc (not PyPI's unrelated 'bcc')",
            )
        )
    if kind == "open":
        fields[FIELD_IO_URING] = bcc_io_uring(caps)
    reasons += _bcc_headers(caps, fields)
    if caps.bpf.ringbuf is False:
        reasons.append(Reason("perf-buffer", "no BPF ring buffer (5.8+): using the perf buffer",
                              blocking=False))
    reasons += tracefs_reasons(caps, kind, "ebpf")
    reasons += pid_namespace_reasons(caps, "BCC")
    return Assessment("ebpf-bcc", None, kind, reasons, fields)
