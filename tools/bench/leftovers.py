"""Kernel state a finished tracer left behind, as lines for the benchmark report.

BPF programs and perf links die with their file descriptors when the tracer
exits; tracefs instances and dynamic events do not, so those are what a
clean stop must have removed. The listing itself is hybridtrace.kernel_state.
"""

from __future__ import annotations

from typing import List

from hybridtrace import kernel_state


def leftovers(pid: int) -> List[str]:
    return [str(item) for item in kernel_state.leftovers(pid)]
