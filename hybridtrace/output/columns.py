"""BCC-style columns for execsnoop and opensnoop; every process string escaped.

A line is built by one f-string per event (no list of cells to join), and the
values that repeat from event to event (process names, the wall-clock second)
are escaped and padded once: at tens of thousands of events a second the
formatting otherwise costs as much CPU as reading the events.
"""

from __future__ import annotations

import math
import time
from typing import Callable, Dict, List, Optional

import attrs

from hybridtrace.events import ExecEvent, LostEvent, OpenEvent
from hybridtrace.output.escape import escape_bytes, quote_arg

_COMM_CACHE_MAX = 4096  # distinct process names; the cache is dropped when full
_comm_cache: Dict[Optional[bytes], str] = {}


def _text(value: Optional[bytes], missing: str = "?") -> str:
    return missing if value is None else escape_bytes(value)


def _comm16(comm: Optional[bytes]) -> str:
    """The escaped comm padded to 16 columns, memoised (few distinct names, many events)."""
    try:
        cell = _comm_cache.get(comm)
    except TypeError:  # not bytes (unhashable): nothing to remember
        return f"{_text(comm):<16}"
    if cell is None:
        if len(_comm_cache) >= _COMM_CACHE_MAX:
            _comm_cache.clear()
        cell = _comm_cache[comm] = f"{_text(comm):<16}"
    return cell


@attrs.frozen(slots=True)
class TimeColumn:
    """-T wall clock (HH:MM:SS) or -t seconds since start; events carry CLOCK_MONOTONIC."""

    mode: Optional[str]  # None, "wall", "relative"
    start_ns: int = attrs.field(factory=time.monotonic_ns)
    wall_offset_ns: int = attrs.field(factory=lambda: time.time_ns() - time.monotonic_ns())
    # The last wall-clock second formatted and its text: one strftime a second, not per event.
    _last_wall: List[object] = attrs.field(factory=lambda: [None, ""], init=False, eq=False,
                                           repr=False)

    def header(self) -> List[str]:
        return [] if self.mode is None else ["TIME" if self.mode == "wall" else "TIME(s)"]

    def cell(self, timestamp_ns: int) -> List[str]:
        if self.mode == "wall":
            return [self._wall(timestamp_ns)]
        if self.mode == "relative":
            return [f"{(timestamp_ns - self.start_ns) / 1e9:<8.3f}"]
        return []

    def prefix(self, timestamp_ns: int) -> str:
        """The time cell padded and followed by its separator, or "" without a time column."""
        if self.mode is None:
            return ""
        if self.mode == "wall":
            return f"{self._wall(timestamp_ns):<8} "
        return "".join(f"{c:<8} " for c in self.cell(timestamp_ns))

    def _wall(self, timestamp_ns: int) -> str:
        wall = (timestamp_ns + self.wall_offset_ns) / 1e9
        # localtime() floors a float, so the floored second gives the same text.
        second = math.floor(wall)
        last = self._last_wall
        if last[0] != second:
            last[1] = time.strftime("%H:%M:%S", time.localtime(second))
            last[0] = second
        text = last[1]
        assert isinstance(text, str)
        return text


def lost_line(event: LostEvent) -> str:
    cpu = "" if event.cpu is None else f" on cpu {event.cpu}"
    if event.count is None:
        return f"LOST an unknown number of events ({event.where}{cpu})"
    if not event.exact:
        return (f"LOST up to {event.count} events ({event.count} ring-buffer records,"
                f" {event.where}{cpu})")
    return f"LOST {event.count} events ({event.where}{cpu})"


@attrs.frozen(slots=True)
class ExecFormat:
    clock: TimeColumn
    show_uid: bool = False
    quote: bool = False

    def header(self) -> str:
        cols = [f"{h:<8}" for h in self.clock.header()]
        if self.show_uid:
            cols.append(f"{'UID':<6}")
        cols += [f"{'PCOMM':<16}", f"{'PID':<7}", f"{'PPID':<7}", f"{'RET':>3}", "ARGS"]
        return " ".join(cols)

    def line(self, ev: ExecEvent) -> str:
        head = self.clock.prefix(ev.timestamp_ns)
        if self.show_uid:
            head += f"{'?' if ev.uid is None else ev.uid:<6} "
        ppid = ev.ppid
        retval = ev.retval
        return (f"{head}{_comm16(ev.comm)} {ev.pid:<7} {'?' if ppid is None else ppid:<7}"
                f" {'?' if retval is None else retval:>3} {self.args(ev)}")

    def args(self, ev: ExecEvent) -> str:
        render: Callable[[bytes], str] = quote_arg if self.quote else escape_bytes
        if ev.argv is None:
            # Never invent argv: say what we know.
            return f"{_text(ev.filename)} [argv unavailable]"
        text = " ".join(map(render, ev.argv))
        return text + " ..." if ev.argv_truncated else text


@attrs.frozen(slots=True)
class OpenFormat:
    clock: TimeColumn
    show_uid: bool = False
    extended: bool = False  # -e: FLAGS and MODE

    def header(self) -> str:
        cols = [f"{h:<8}" for h in self.clock.header()]
        if self.show_uid:
            cols.append(f"{'UID':<6}")
        cols += [f"{'PID':<7}", f"{'COMM':<16}", f"{'FD':>4}", f"{'ERR':>3}"]
        if self.extended:
            cols += [f"{'FLAGS':<8}", f"{'MODE':<6}"]
        cols.append("PATH")
        return " ".join(cols)

    def line(self, ev: OpenEvent, path: Optional[bytes]) -> str:
        fd = ev.fd
        errno = ev.errno
        pid = "?" if ev.pid is None else ev.pid
        text = (f"{pid:<7} {_comm16(ev.comm)} {-1 if fd is None else fd:>4}"
                f" {0 if errno is None else errno:>3} ")
        if self.clock.mode is not None or self.show_uid:
            head = self.clock.prefix(ev.timestamp_ns)
            if self.show_uid:
                head += f"{'?' if ev.uid is None else ev.uid:<6} "
            text = head + text
        if self.extended:
            flags = ev.flags
            mode = ev.mode
            text += ("?" * 8 if flags is None else f"{flags:08o}") + " "
            text += (f"{'?':<6}" if mode is None else f"{mode:04o}  ") + " "
        return text + ("[path unavailable]" if path is None else escape_bytes(path))
