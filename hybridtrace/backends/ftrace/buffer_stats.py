"""Per-CPU ring-buffer statistics of a tracefs instance, for loss accounting.

trace_pipe shows a loss only as an occasional ``[LOST n EVENTS]`` line; the
per_cpu/cpuN/stats counters are exact, so a session compares two readings.
"""

from __future__ import annotations

import os
import re
from typing import Dict, Optional

import attrs

from hybridtrace.text_fields import colon_fields

_CPU_DIR_RE = re.compile(r"^cpu(\d+)$")


@attrs.frozen(slots=True)
class CpuStats:
    """One reading of per_cpu/cpuN/stats. Timestamps in the trace clock's ns.

    Counters an old kernel does not print are None.
    """

    cpu: int
    entries: int
    overrun: int
    commit_overrun: int
    bytes: Optional[int]
    oldest_event_ts_ns: Optional[int]
    now_ts_ns: Optional[int]
    dropped_events: Optional[int]
    read_events: Optional[int]

    @property
    def lost(self) -> int:
        """Events the buffer lost so far: overwritten, dropped, or lost mid-commit."""
        return self.overrun + self.commit_overrun + (self.dropped_events or 0)


def _ts_ns(text: str) -> Optional[int]:
    text = text.strip()
    if not text:
        return None
    sec, _, frac = text.partition(".")
    try:
        return int(sec) * 1_000_000_000 + (int(frac[:9].ljust(9, "0")) if frac else 0)
    except ValueError:
        return None


def parse_stats(text: str, cpu: int) -> CpuStats:
    """Parse the text of one per_cpu/cpuN/stats file."""
    values = colon_fields(text)

    def count(key: str) -> Optional[int]:
        raw = values.get(key)
        try:
            return int(raw) if raw is not None else None
        except ValueError:
            return None

    return CpuStats(
        cpu=cpu,
        entries=count("entries") or 0,
        overrun=count("overrun") or 0,
        commit_overrun=count("commit overrun") or 0,
        bytes=count("bytes"),
        oldest_event_ts_ns=_ts_ns(values.get("oldest event ts", "")),
        now_ts_ns=_ts_ns(values.get("now ts", "")),
        dropped_events=count("dropped events"),
        read_events=count("read events"),
    )


def read_stats(instance_dir: str) -> Dict[int, CpuStats]:
    """Read every per_cpu/cpuN/stats of a tracefs instance (or the top level)."""
    base = os.path.join(instance_dir, "per_cpu")
    out: Dict[int, CpuStats] = {}
    for entry in os.listdir(base):
        match = _CPU_DIR_RE.match(entry)
        if match is None:
            continue
        cpu = int(match.group(1))
        try:
            with open(os.path.join(base, entry, "stats"), encoding="ascii",
                      errors="replace") as handle:
                out[cpu] = parse_stats(handle.read(), cpu)
        except FileNotFoundError:
            continue  # a CPU that went offline
    return out


def loss_delta(before: Dict[int, CpuStats], after: Dict[int, CpuStats]) -> Dict[int, int]:
    """Events lost per CPU between two readings (CPUs absent before count from 0)."""
    out: Dict[int, int] = {}
    for cpu, now in after.items():
        then = before.get(cpu)
        out[cpu] = now.lost - (then.lost if then is not None else 0)
    return out
