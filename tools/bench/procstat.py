"""CPU time and peak memory of a tracer's process tree, read from /proc."""

from __future__ import annotations

import os
from typing import List

import psutil

_TICKS = os.sysconf("SC_CLK_TCK")


def tree(pid: int) -> List[int]:
    try:
        root = psutil.Process(pid)
        return [pid] + [p.pid for p in root.children(recursive=True)]
    except psutil.Error:
        return []


def cpu_seconds(pid: int) -> float:
    """utime + stime of the live tree (threads included), in seconds."""
    total = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total / _TICKS


def peak_rss_kb(pid: int) -> int:
    """Sum of VmHWM (peak resident set) over the live tree, in KiB."""
    total = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/status", "rb") as f:
                for line in f:
                    if line.startswith(b"VmHWM:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            continue
    return total
