"""Can the eBPF engines run on a kernel? Pure judgement of a Capabilities value."""

from __future__ import annotations

from typing import Dict, List

from hybridtrace.backends.base import Assessment, Reason
from hybridtrace.backends.ebpf.bcc import headers as bcc_headers
from hybridtrace.backends.requirements_common import bpf_reasons, headers_path, tracefs_reasons
from hybridtrace.capabilities.model import Capabilities


def _fields(kind: str) -> Dict[str, str]:
    if kind == "exec":
        return {
            "filename": "complete",
            "argv": "complete (re-read from the new image when the caller's pages were out)",
            "ppid": "complete",
            "uid": "complete",
            "retval": "complete",
        }
    return {"path": "complete", "flags": "complete", "mode": "complete", "fd": "complete",
            "uid": "complete"}


def _buffer_reasons(caps: Capabilities) -> List[Reason]:
    if caps.bpf.ringbuf is False:
        return [
            Reason(
                "no-ringbuf",
                "the kernel has no BPF ring buffer (5.8+); the perf-buffer fallback is not"
                " implemented yet",
                remedy="use --backend ftrace, or a 5.8+ kernel",
            )
        ]
    return []


def assess_core(caps: Capabilities, kind: str) -> Assessment:
    reasons = bpf_reasons(caps)
    if caps.btf.path is None:
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
    reasons += tracefs_reasons(caps, kind, "ebpf")
    return Assessment("ebpf-core", None, kind, reasons, _fields(kind))


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
                remedy=f"apt-get install linux-headers-{caps.kernel.release}, or set"
                f" ${bcc_headers.ENV_VAR} to a tree from tools/fetch_bcc_headers.sh",
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
    reasons = bpf_reasons(caps)
    fields = _fields(kind)
    if caps.bcc.version is None:
        reasons.append(
            Reason(
                "no-bcc",
                "BCC's python module is not importable"
                + (f" ({caps.bcc.error})" if caps.bcc.error else ""),
                remedy="apt-get install python3-bpfcc (not PyPI's unrelated 'bcc')",
            )
        )
    reasons += _bcc_headers(caps, fields)
    if caps.bpf.ringbuf is False:
        reasons.append(Reason("perf-buffer", "no BPF ring buffer (5.8+): using the perf buffer",
                              blocking=False))
    reasons += tracefs_reasons(caps, kind, "ebpf")
    return Assessment("ebpf-bcc", None, kind, reasons, fields)
