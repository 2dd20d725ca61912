"""Reading an instance's per-CPU binary buffers, merged into one timeline.

trace_pipe formats every record as text in the kernel and we parse it back;
reading ``per_cpu/cpuN/trace_pipe_raw`` hands out the pages themselves and
costs a fraction of that per record. Each CPU's buffer is in time order but
the CPUs are not in step: a thread can enter a syscall on one CPU and leave
it on another, and a page read from CPU 1 can hold records newer than ones
CPU 0 has not yet committed when we read it. So records are held back until
they are older than a horizon: the clock reading taken before the round
(less a margin for records reserved but not yet committed), and no newer
than the last record of a CPU whose reading was cut short. With a clock that
is not CLOCK_MONOTONIC, or after recording stopped, each round is released
whole (ordered within itself).
"""

from __future__ import annotations

import errno
import operator
import os
import re
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

import attrs

from hybridtrace.backends.ftrace.fd_ledger import INF
from hybridtrace.backends.ftrace.format import EventFormat
from hybridtrace.backends.ftrace.pipe_fds import PipeFds
from hybridtrace.backends.ftrace.raw_records import RawRecord, RecordDecoder, c_loop
from hybridtrace.backends.ftrace.ring_page import read_page_layout
from hybridtrace.backends.ftrace.trace_record import (
    EXEC_DONE,
    EXIT,
    OPEN_SYSCALLS,
    Later,
    TraceLine,
)

COMMIT_MARGIN_NS = 2_000_000  # a record is committed within this of its timestamp
_CPU_DIR = re.compile(r"^cpu(\d+)$")


_ts = operator.itemgetter(0)  # a record's timestamp (in C: sorting calls it per record)


class Timeline:
    """Decoded records of all CPUs in, correlator-ready lines out, in time order.

    Pure (no files): ``add`` takes a round's records and the horizon up to
    which they are due (None: all), keeps the rest pending, and turns what is
    due into TraceLines (comm and uid come from the task records, tasks.py).
    """

    def __init__(self, use_c: bool = True) -> None:
        self.pending: List[RawRecord] = []
        self.records = 0
        self._liner = _liner() if use_c else None

    def add(self, fresh: List[RawRecord], horizon: Optional[int]) -> List[TraceLine]:
        if not fresh and not self.pending:
            return []
        merged = self.pending + fresh
        merged.sort(key=_ts)
        if horizon is None:
            due, self.pending = merged, []
        else:
            cut = _first_after(merged, horizon)
            due, self.pending = merged[:cut], merged[cut:]
        return self._lines(due)

    def flush(self) -> List[TraceLine]:
        """Everything still held back (the session ends)."""
        due, self.pending = self.pending, []
        return self._lines(due)

    def later(self) -> Later:
        """What the records held back will say (see Correlator.fill)."""
        fds = set()
        execs = set()
        for _ts, _cpu, tid, event, style, args, _faults in self.pending:
            if style == EXIT and event in OPEN_SYSCALLS:
                ret = args.get("ret")
                if isinstance(ret, int) and ret >= 0:
                    fds.add((tid, ret))
            elif event == EXEC_DONE:
                pid = args.get("pid")
                execs.add(pid if isinstance(pid, int) else tid)
        return Later(frozenset(fds), frozenset(execs))

    def _lines(self, records: List[RawRecord]) -> List[TraceLine]:
        self.records += len(records)
        if self._liner is not None:
            return self._liner.lines(records)  # type: ignore[no-any-return]
        return [TraceLine(b"", tid, cpu, ts, event, args, b"", style, faults)
                for ts, cpu, tid, event, style, args, faults in records]


def _liner() -> Optional[Any]:
    """The C builder of TraceLines (_ringpage.c), or None where it cannot fill this class."""
    module = c_loop()
    if module is None:
        return None
    # _lines passes b"" for comm and raw and leaves flags, complete, tgid to their defaults.
    given = ("pid", "cpu", "timestamp_ns", "event", "args", "style", "faults")
    defaults: List[Any] = []
    for fld in attrs.fields(TraceLine):
        if fld.name in given or fld.name in ("comm", "raw"):
            defaults.append(None if fld.name in given else b"")
        elif fld.default is attrs.NOTHING or hasattr(fld.default, "factory"):
            return None  # a default made per instance: only __init__ can give it
        else:
            defaults.append(fld.default)
    names = tuple(fld.name for fld in attrs.fields(TraceLine))
    try:
        return module.Liner(TraceLine, names, tuple(defaults))
    except ValueError:
        return None


class RawReader(PipeFds):
    """The trace_pipe_raw files of one instance (see module docstring)."""

    def __init__(self, inst_path: str, formats: Sequence[EventFormat], monotonic: bool) -> None:
        self.decoder = RecordDecoder(formats, read_page_layout(os.path.join(inst_path,
                                                                            "events")))
        self.page_size = self.decoder.layout.page_size
        self.monotonic = monotonic
        self.timeline = Timeline()
        self.stopped = False  # recording is off: nothing older can still arrive
        # After read(): every record up to this time has been returned (None: unknown).
        self.complete: Optional[int] = None
        # Called with (cpu, page) for each page read: how tools/record_ftrace_stream.py
        # saves exactly the bytes a session parsed (one None check per page when unused).
        self.tap: Optional[Callable[[int, bytes], None]] = None
        # Called with each round's records as soon as they are decoded (proc_snapshots.py).
        self.on_decoded: Optional[Callable[[List[RawRecord]], None]] = None
        self.fds: Dict[int, int] = {}
        # Each CPU's last record read, and the earliest of those of CPUs cut short by the
        # budget last round (None: none was): see read().
        self._last: Dict[int, int] = {}
        self._behind: Optional[int] = None
        per_cpu = os.path.join(inst_path, "per_cpu")
        try:
            for name in sorted(os.listdir(per_cpu)):
                match = _CPU_DIR.match(name)
                if match:
                    path = os.path.join(per_cpu, name, "trace_pipe_raw")
                    self.fds[int(match.group(1))] = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        except OSError:
            self.close()
            raise

    def read(self, max_bytes: int) -> List[TraceLine]:
        """Read what the buffers hold (up to about ``max_bytes``); return what is due."""
        horizon: Optional[int] = None
        if self.monotonic and not self.stopped:
            horizon = time.monotonic_ns() - COMMIT_MARGIN_NS
        cut: Optional[int] = None
        fresh: List[RawRecord] = []
        budget = max(self.page_size, max_bytes // max(1, len(self.fds)))
        behind, self._behind = self._behind, None
        for cpu, fd in self.fds.items():
            last = self._last.get(cpu)
            if behind is not None and horizon is not None and last is not None and last > behind:
                # Ahead of a CPU still catching up on its backlog: what this one holds
                # could only wait in pending, decoded (~10x its size in the kernel's
                # buffer) until the other catches up; it waits in the kernel instead.
                # Nothing newer than what we got from it is due yet.
                cut = last if cut is None else min(cut, last)
                continue
            got = 0
            start = len(fresh)
            while got < budget:
                page = self._read_page(fd)
                if not page:
                    break
                got += len(page)
                if self.tap is not None:
                    self.tap(cpu, page)
                self.decoder.decode_page(page, cpu, fresh)
            if len(fresh) > start:
                last = self._last[cpu] = fresh[-1][0]
                if got >= budget:
                    # This CPU has more: nothing newer than what we got from it is due yet.
                    cut = last if cut is None else min(cut, last)
                    self._behind = last if self._behind is None else min(self._behind, last)
        if cut is not None:
            horizon = cut if horizon is None else min(horizon, cut)
        if fresh and self.on_decoded is not None:
            self.on_decoded(fresh)
        if self.monotonic:
            self.complete = INF if horizon is None else horizon
        return self.timeline.add(fresh, horizon)

    @property
    def pending(self) -> List[RawRecord]:
        return self.timeline.pending

    def later(self) -> Later:
        return self.timeline.later()

    def flush(self) -> List[TraceLine]:
        return self.timeline.flush()

    def _read_page(self, fd: int) -> bytes:
        while True:
            try:
                return os.read(fd, self.page_size)
            except BlockingIOError:
                return b""
            except OSError as exc:
                if exc.errno == errno.EINTR:
                    continue
                if exc.errno in (errno.ENODEV, errno.EBUSY):
                    return b""  # the instance is going away
                raise


def _first_after(records: List[RawRecord], horizon: int) -> int:
    """Index of the first record newer than ``horizon`` (records sorted by time)."""
    lo, hi = 0, len(records)
    while lo < hi:
        mid = (lo + hi) // 2
        if records[mid][0] <= horizon:
            lo = mid + 1
        else:
            hi = mid
    return lo
