"""Can the eBPF engines run on a kernel? Pure judgement of a Capabilities value."""

from __future__ import annotations

from typing import Dict, List

from hybridtrace.backends.base import Assessment, Reason
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
    reasons += _buffer_reasons(caps)
    reasons += tracefs_reasons(caps, kind, "ebpf")
    return Assessment("ebpf-core", None, kind, reasons, _fields(kind))


def assess_bcc(caps: Capabilities, kind: str) -> Assessment:
    reasons = bpf_reasons(caps)
    if caps.bcc.version is None:
        reasons.append(
            Reason(
                "no-bcc",
                "BCC's python module is not importable"
                + (f" ({caps.bcc.error})" if caps.bcc.error else ""),
                remedy="apt-get install python3-bpfcc (not PyPI's unrelated 'bcc')",
            )
        )
    if caps.headers.build is None and not caps.headers.kheaders:
        reasons.append(
            Reason(
                "no-headers",
                f"no kernel headers at {headers_path(caps)} (BCC compiles against them)",
                remedy=f"apt-get install linux-headers-{caps.kernel.release}",
            )
        )
    reasons += _buffer_reasons(caps)
    reasons += tracefs_reasons(caps, kind, "ebpf")
    return Assessment("ebpf-bcc", None, kind, reasons, _fields(kind))
