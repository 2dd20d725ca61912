"""Proof that /proc/TID/fd/N, read at some moment, still shows the file an open made.

A reading of the link is the open's file only if fd N of that thread's fd
table was neither freed nor replaced between the open's entry (the file is
installed after it) and the reading. The records that can do that are
traced: close, close_range, dup2 and dup3 (their whole span, entry to exit),
any other open returning N in the same table (it was freed, somehow), an exec
in the process (close-on-exec), a new task taking the thread's id, and
io_uring (it closes fds without a syscall: a table whose process entered
io_uring is never proven again). Records the session may have lost (a
buffer overrun, or recording stopped) prove nothing over their time. A
reading is judged once every record up to its moment has been fed.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple, TypeVar

INF = 1 << 62  # "not ended yet" / "forever", in trace clock nanoseconds
SLACK_NS = 1000  # trace_pipe prints microseconds: compare as if every time could be 1 us off
ALL_FDS = 1 << 31
Span = List[int]  # [lo fd, hi fd, start ns, end ns]; end is INF until the call returns
K = TypeVar("K")


def _overlaps(span: Span, start: int, end: int) -> bool:
    return span[3] + SLACK_NS >= start and span[2] - SLACK_NS <= end


class FdLedger:
    """Times at which fds of each table may have changed (see module docstring).

    A table is named by ThreadGroups (None: unknown, which counts for every table).
    """

    def __init__(self) -> None:
        self._single: Dict[Tuple[Optional[int], int], List[Span]] = {}
        self._ranges: Dict[Optional[int], List[Span]] = {}
        self._tids: Dict[int, List[int]] = {}  # tid -> times a new task took the id
        # Every record before _lost_before may be missing: a loss is only known to lie
        # somewhere before the moment it was counted, so one bound stands for them all.
        self._lost_before: Optional[int] = None
        self._gaps: List[Span] = []  # the other gaps (recording stopped)
        self.size = 0
        self._pruned_at = 0

    def changed(self, table: Optional[int], lo: int, hi: int, start: int,
                end: int = INF) -> Span:
        """fds ``lo..hi`` of ``table`` may change from ``start`` to ``end`` (set it later)."""
        span = [lo, hi, start, end]
        if lo == hi:
            self._single.setdefault((table, lo), []).append(span)
        else:
            self._ranges.setdefault(table, []).append(span)
        self.size += 1
        return span

    def tid_reused(self, tid: int, ts: int) -> None:
        self._tids.setdefault(tid, []).append(ts)
        self.size += 1

    def gap(self, start: int, end: int) -> None:
        """Records between ``start`` and ``end`` may be missing."""
        if start == -INF:
            self._lost_before = end if self._lost_before is None else max(self._lost_before, end)
        else:
            self._gaps.append([0, ALL_FDS, start, end])

    def lost(self, start: int, end: int) -> bool:
        """Records between ``start`` and ``end`` may be missing."""
        lost_before = self._lost_before
        return (lost_before is not None and lost_before + SLACK_NS >= start) or (
            bool(self._gaps) and any(_overlaps(span, start, end) for span in self._gaps))

    def proven(self, table: Optional[int], tid: int, fd: int, start: int, end: int,
               own: Optional[Span] = None) -> bool:
        """Nothing could have changed fd ``fd`` of ``table`` (read via ``tid``) in [start, end]."""
        if self.lost(start, end):
            return False
        for ts in self._tids.get(tid, ()):
            if start - SLACK_NS <= ts <= end + SLACK_NS:
                return False
        if table is None:
            singles = [spans for (_t, n), spans in self._single.items() if n == fd]
            ranges = list(self._ranges.values())
        else:
            singles = [self._single.get((table, fd), []), self._single.get((None, fd), [])]
            ranges = [self._ranges.get(table, []), self._ranges.get(None, [])]
        for spans in singles:
            for span in spans:
                if span is not own and _overlaps(span, start, end):
                    return False
        for spans in ranges:
            for span in spans:
                if span[0] <= fd <= span[1] and _overlaps(span, start, end):
                    return False
        return True

    def prune_due(self) -> bool:
        """Has the ledger doubled since it was last pruned? (Pruning walks all of it.)"""
        return self.size >= 2 * self._pruned_at + 1024

    def prune(self, floor: int) -> None:
        """Forget what ended before ``floor``: no reading still to judge starts earlier."""
        if not self.prune_due():
            return
        size = _prune(self._single, floor) + _prune(self._ranges, floor)
        for tid in list(self._tids):
            times = [t for t in self._tids[tid] if t + SLACK_NS >= floor]
            if times:
                self._tids[tid] = times
                size += len(times)
            else:
                del self._tids[tid]
        self._gaps = [s for s in self._gaps if s[3] + SLACK_NS >= floor]
        self.size = self._pruned_at = size


def _prune(table: Dict[K, List[Span]], floor: int) -> int:
    """Drop spans that ended before ``floor``; returns how many are kept."""
    size = 0
    for key in list(table):
        kept = [s for s in table[key] if s[3] + SLACK_NS >= floor]
        if kept:
            table[key] = kept
            size += len(kept)
        else:
            del table[key]
    return size
