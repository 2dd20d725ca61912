"""The kernel-side filter strings of an ftrace session (events/*/filter)."""

from __future__ import annotations

import os
import re

from hybridtrace.backends.ftrace import uring
from hybridtrace.request import TraceRequest

# A comm the filter language can hold as a plain string; others are matched in user space.
SAFE_COMM = re.compile(rb"^[A-Za-z0-9_.:+@%,/-]{1,15}$")


def filter_expr(request: TraceRequest, with_comm: bool) -> str:
    parts = [f"common_pid != {os.getpid()}"]
    flt = request.filters
    if flt.tid is not None:
        parts.append(f"common_pid == {flt.tid}")
    if with_comm and flt.comm is not None:
        parts.append(f'comm == "{flt.comm.decode("ascii")}"')
    return " && ".join(parts)


def uring_filter(request: TraceRequest, event: str, with_comm: bool) -> str:
    """Submissions (the eprobe's too) and failures: open requests, by their submitter;
    anything else (completions and the open handler's kprobe in io-wq workers, rings)
    from any task but ours."""
    if event in (*uring.SUBMIT_EVENTS, uring.FAILED_EVENT, uring.SUBMIT_PROBE,
                 uring.FAILED_PROBE):
        return f"({uring.submit_filter()}) && {filter_expr(request, with_comm)}"
    return f"common_pid != {os.getpid()}"
