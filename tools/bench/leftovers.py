"""Kernel state a finished tracer left behind (tracefs objects naming its pid).

BPF programs and perf links die with their file descriptors when the tracer
exits; tracefs instances and dynamic events do not, so those are what a
clean stop must have removed.
"""

from __future__ import annotations

import os
from typing import List

from hybridtrace import tracefs


def leftovers(pid: int) -> List[str]:
    found: List[str] = []
    path = tracefs.find()
    if path is None:
        return found
    tag = f"hybridtrace_{pid}_"
    instances = os.path.join(path, "instances")
    if os.path.isdir(instances):
        found += [f"instance {n}" for n in os.listdir(instances) if tag in n]
    for name in ("uprobe_events", "kprobe_events", "dynamic_events"):
        try:
            with open(os.path.join(path, name)) as f:
                found += [f"{name}: {line.strip()}" for line in f if tag in line]
        except OSError:
            continue
    return found
