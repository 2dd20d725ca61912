"""Run time of a process's BPF programs, as the kernel counts it.

The kernel counts each program's run time and runs only while statistics are on.
``run_time_stats()`` turns them on through bpf(2) BPF_ENABLE_STATS, which gives an
fd: they stay on while it is open and go back off when it closes, so no sysctl is
touched (kernel.bpf_stats_enabled) and a crash cannot leave them on. A program's
counters are in the fdinfo of every fd that holds it (``run_time_ns``, ``run_cnt``).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import platform
import shutil
import subprocess
from typing import Dict, Iterator

import attrs

from hybridtrace.capabilities.bpf_probes import ATTR_SIZE, bpf_syscall
from hybridtrace.text_fields import colon_fields

_BPF_ENABLE_STATS = 32
_BPF_STATS_RUN_TIME = 0


class StatsError(RuntimeError):
    """Statistics could not be turned on; the message is whole."""


@attrs.frozen(slots=True)
class ProgStats:
    prog_id: int
    run_time_ns: int
    run_cnt: int


@contextlib.contextmanager
def run_time_stats() -> Iterator[None]:
    """BPF run-time statistics on for the block, off again after it (the fd closes)."""
    attr = ctypes.create_string_buffer(ATTR_SIZE)  # bpf_attr.enable_stats.type = RUN_TIME
    ctypes.c_uint32.from_buffer(attr).value = _BPF_STATS_RUN_TIME
    fd = bpf_syscall(_BPF_ENABLE_STATS, attr, platform.machine())
    if fd < 0:
        raise StatsError(f"BPF_ENABLE_STATS failed: {os.strerror(-fd)}")
    try:
        yield
    finally:
        os.close(fd)


def programs_of(pid: int) -> Dict[int, ProgStats]:
    """Every BPF program the process holds an fd of, by id, with its counters now."""
    found: Dict[int, ProgStats] = {}
    base = f"/proc/{pid}/fdinfo"
    for name in os.listdir(base):
        try:
            with open(os.path.join(base, name)) as f:
                fields = colon_fields(f.read())
        except OSError:  # closed meanwhile
            continue
        if "prog_id" in fields and "run_cnt" in fields:
            pid_ = int(fields["prog_id"])
            found[pid_] = ProgStats(pid_, int(fields["run_time_ns"]), int(fields["run_cnt"]))
    return found


def names(ids: Iterator[int]) -> Dict[int, str]:
    """A label per program id: bpftool's name (cut to 15 bytes by the kernel) and type,
    numbered in load order where two share one; the id alone without bpftool."""
    tool = shutil.which("bpftool")
    out: Dict[int, str] = {}
    for prog_id in sorted(ids):
        label = f"prog {prog_id}"
        if tool:
            done = subprocess.run([tool, "-j", "prog", "show", "id", str(prog_id)],
                                  capture_output=True, text=True)
            if done.returncode == 0:
                info = json.loads(done.stdout)
                label = f"{info.get('name', label)} ({info.get('type', '?')})"
        taken = sum(1 for seen in out.values() if seen.split(" #")[0] == label)
        out[prog_id] = f"{label} #{taken + 1}" if taken else label
    return out


def costs(before: Dict[int, ProgStats], after: Dict[int, ProgStats], labels: Dict[int, str],
          per: int) -> Dict[str, Dict[str, float]]:
    """Per program that ran between two readings: runs, ns per run and ns per unit of
    work (``per``: the execs or opens the loop made)."""
    out: Dict[str, Dict[str, float]] = {}
    per = max(per, 1)
    for prog_id, end in after.items():
        start = before.get(prog_id)
        if start is None or end.run_cnt == start.run_cnt:
            continue
        runs = end.run_cnt - start.run_cnt
        ns = end.run_time_ns - start.run_time_ns
        out[labels.get(prog_id, f"prog {prog_id}")] = {
            "runs_per_op": runs / per, "ns_per_run": ns / runs, "ns_per_op": ns / per}
    return out
