"""The BCC program text and the -D flags that configure it for one request.

Filters are compiled in (BCC compiles per session anyway), so the kernel
drops what the user did not ask for before it reaches the buffer.
"""

from __future__ import annotations

import os
import struct
from typing import Dict, List, Optional

import attrs

from hybridtrace import vocabulary
from hybridtrace.request import ARG_SIZE, PATH_SIZE, Kind, TraceRequest

HERE = os.path.dirname(os.path.abspath(__file__))

# Syscalls that only some kernels have: each one's programs are compiled in
# (-DHT_HAVE_<SYSCALL>) only when its entry tracepoint is present.
OPTIONAL_TRACEPOINTS: Dict[Kind, Dict[str, str]] = {
    kind: {f"HT_HAVE_{vocabulary.event_name(tp)[len('sys_enter_'):].upper()}": tp
           for tp in vocabulary.OPTIONAL_TRACEPOINTS[kind.value]}
    for kind in Kind
}


@attrs.frozen(slots=True)
class Layout:
    """How task_struct/mm_struct are reached: exact headers, BTF offsets, or not at all."""

    exact_headers: bool
    offsets: Optional[Dict[str, int]]  # from BTF, when the headers are borrowed

    @property
    def task_reads(self) -> bool:
        return self.exact_headers or self.offsets is not None


def source(kind: Kind) -> str:
    """common.c followed by the kind's program."""
    parts = []
    for name in ("common.c", f"{kind.value}.c"):
        with open(os.path.join(HERE, name)) as f:
            parts.append(f.read())
    return "\n".join(parts)


def comm_words(comm: bytes) -> List[int]:
    """The 16-byte, NUL-padded task comm as two little-endian u64 words."""
    return list(struct.unpack("<QQ", comm[:15].ljust(16, b"\0")))


def cflags(request: TraceRequest, layout: Layout, present: List[str], self_pid: int,
           ringbuf_pages: Optional[int]) -> List[str]:
    """-D flags for ``request``; ``present`` lists the tracepoints this kernel has."""
    f = request.filters
    out = [
        f"-DHT_SELF_PID={self_pid}",
        f"-DHT_ARG_SIZE={ARG_SIZE}",
        f"-DHT_PATH_SIZE={PATH_SIZE}",
        f"-DHT_MAX_ARGS={request.max_args}",
    ]
    # The record's syscall index: vocabulary's order, as decoding expects.
    out += [f"-DHT_SYS_{name.upper()}={i}"
            for i, name in enumerate(vocabulary.syscalls_for(request.kind.value))]
    if ringbuf_pages is None:
        out.append("-DHT_PERFBUF")
    else:
        out.append(f"-DHT_RINGBUF_PAGES={ringbuf_pages}")
    for macro, value in (("HT_PID", f.pid), ("HT_TID", f.tid), ("HT_UID", f.uid)):
        if value is not None:
            out.append(f"-D{macro}={int(value)}")
    if f.ppid is not None and request.kind is Kind.EXEC and layout.task_reads:
        out.append(f"-DHT_PPID={int(f.ppid)}")
    if f.comm is not None:
        lo, hi = comm_words(f.comm)
        out += [f"-DHT_COMM0={lo:#x}ULL", f"-DHT_COMM1={hi:#x}ULL"]
    if f.failed_only:
        out.append("-DHT_FAILED_ONLY")
    if layout.exact_headers:
        out.append("-DHT_EXACT_HEADERS")
    elif layout.offsets is not None:
        out += [f"-D{macro}={value}" for macro, value in sorted(layout.offsets.items())]
    for macro, tp in OPTIONAL_TRACEPOINTS[request.kind].items():
        if tp in present:
            out.append(f"-D{macro}")
    return out
