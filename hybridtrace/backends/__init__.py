"""Backends: each one turns a TraceRequest into an EventStream.

Streams are imported lazily so that judging capabilities (doctor, the
selector) never pays for ctypes, libbpf or BCC.
"""

from __future__ import annotations

from typing import List

from hybridtrace.backends.base import Assessment, BackendError, EventStream
from hybridtrace.capabilities.model import Capabilities
from hybridtrace.request import TraceRequest
from hybridtrace.scope import refusal


def open_stream(assessment: Assessment, request: TraceRequest, caps: Capabilities) -> EventStream:
    why = refusal(assessment.backend, assessment.tier, request.filters)
    if why is not None:
        raise BackendError(why)
    if assessment.backend == "ebpf-core":
        from hybridtrace.backends.ebpf.core_stream import open_core_stream

        return open_core_stream(request, caps, attach=assessment.tier or "tracepoint")
    if assessment.backend == "ebpf-bcc":
        from hybridtrace.backends.ebpf.bcc.bcc_stream import open_bcc_stream

        return open_bcc_stream(request, caps)
    if assessment.backend == "ftrace" and assessment.tier is not None:
        from hybridtrace.backends.ftrace.stream import open_ftrace_stream

        return open_ftrace_stream(request, caps, assessment.tier)
    raise BackendError(f"no stream for {assessment.label}")


def remove_dead_sessions_leftovers() -> List[str]:
    """What killed ftrace sessions left in tracefs, removed by whichever session starts next.

    ftrace sessions do this themselves when they open; the others call this. It never
    mounts tracefs, and where tracefs is not ours to write (least privilege) it does
    nothing.
    """
    try:  # the import too: with file descriptors exhausted even opening a module fails
        from hybridtrace.backends.ftrace.cleanup import remove_stale

        return remove_stale()
    except OSError:
        return []
