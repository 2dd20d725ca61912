"""BCC-style columns for execsnoop and opensnoop; every process string escaped.

A line is built by one f-string per event (no list of cells to join), and the
values that repeat from event to event (process names, the wall-clock second)
are escaped and padded once: at tens of thousands of events a second the
formatting otherwise costs as much CPU as reading the events.
"""

from __future__ import annotations

import math
import time
from typing import Callable, Dict, List, Optional, Union

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
class WallClock:
    """HH:MM:SS of an event's CLOCK_MONOTONIC timestamp, one strftime per second."""

    wall_offset_ns: int = attrs.field(factory=lambda: time.time_ns() - time.monotonic_ns())
    # The last wall-clock second formatted and its text.
    _last: List[object] = attrs.field(factory=lambda: [None, ""], init=False, eq=False,
                                      repr=False)

    def text(self, timestamp_ns: int) -> str:
        wall = (timestamp_ns + self.wall_offset_ns) / 1e9
        # localtime() floors a float, so the floored second gives the same text.
        second = math.floor(wall)
        last = self._last
        if last[0] != second:
            last[1] = time.strftime("%H:%M:%S", time.localtime(second))
            last[0] = second
        text = last[1]
        assert isinstance(text, str)
        return text


def _uid(uid: Optional[int]) -> str:
    return f"{'?' if uid is None else uid:<6}"  # BCC's "%-6d", no separator after it


CONTAINER_HEAD = f"{'CONTAINER':<12} "


def _container(ev: Union[ExecEvent, OpenEvent]) -> str:
    """--print-container: the short id as `docker ps` shows it, "-" for a cgroup that
    names no container, "?" when the cgroup is not known."""
    cid = ev.container_id
    if cid is not None:
        return f"{cid[:12]:<12} "
    return f"{'?' if ev.cgroup is None else '-':<12} "


def lost_line(event: LostEvent) -> str:
    cpu = "" if event.cpu is None else f" on cpu {event.cpu}"
    if event.count is None:
        return f"LOST an unknown number of events ({event.where}{cpu})"
    if not event.exact:
        return (f"LOST up to {event.count} events ({event.count} ring-buffer records,"
                f" {event.where}{cpu})")
    return f"LOST {event.count} events ({event.where}{cpu})"


UNKNOWN_PATH = "?"
ARGV_UNAVAILABLE = "[argv unavailable]"


@attrs.frozen(slots=True)
class ExecFormat:
    """BCC execsnoop's lines (tools/execsnoop.py, 0.26), cell for cell.

    ``-T`` "%-9s" HH:MM:SS, ``-t`` "%-8.3f" seconds since ``start_ns``, ``-U``
    "%-6d", then "%-16s %-7d %-7s %3d %s": PCOMM PID PPID RET ARGS. ARGS is the
    path given to execve, then argv[1:] (argv[0] is not shown, as in BCC), and
    "..." when argv was cut. An unknown path is "?" (argv[0] is not a path, so
    it never stands in for one); unknown argv is "[argv unavailable]".
    """

    wall: bool = False  # -T
    elapsed: bool = False  # -t
    show_uid: bool = False  # -U
    quote: bool = False  # -q
    show_container: bool = False  # --print-container
    start_ns: int = attrs.field(factory=time.monotonic_ns)
    clock: WallClock = attrs.field(factory=WallClock)

    def header(self) -> str:
        head = ""
        if self.wall:
            head += f"{'TIME':<9}"
        if self.elapsed:
            head += f"{'TIME(s)':<8}"
        head += _owner_head(self.show_uid, self.show_container)
        return f"{head}{'PCOMM':<16} {'PID':<7} {'PPID':<7} {'RET':>3} ARGS"

    def line(self, ev: ExecEvent) -> str:
        head = ""
        if self.wall:
            head = f"{self.clock.text(ev.timestamp_ns):<9}"
        if self.elapsed:
            head += f"{(ev.timestamp_ns - self.start_ns) / 1e9:<8.3f}"
        head += _owner_cells(ev, self.show_uid, self.show_container)
        pid, ppid = ev.pid, ev.ppid
        retval = ev.retval
        return (f"{head}{_comm16(ev.comm)} {'?' if pid is None else pid:<7}"
                f" {'?' if ppid is None else ppid:<7}"
                f" {'?' if retval is None else retval:>3} {self.args(ev)}")

    def args(self, ev: ExecEvent) -> str:
        render: Callable[[bytes], str] = quote_arg if self.quote else escape_bytes
        path = UNKNOWN_PATH if ev.filename is None else render(ev.filename)
        if ev.argv is None:  # never invent argv: say what we know
            return f"{path} {ARGV_UNAVAILABLE}"
        words = [path, *map(render, ev.argv[1:])]
        if ev.argv_truncated:
            words.append('"..."' if self.quote else "...")
        return " ".join(words)


def _owner_head(show_uid: bool, show_container: bool) -> str:
    """The UID and CONTAINER column heads, each only when asked for."""
    return (f"{'UID':<6}" if show_uid else "") + (CONTAINER_HEAD if show_container else "")


def _owner_cells(ev: Union[ExecEvent, OpenEvent], show_uid: bool, show_container: bool) -> str:
    """The UID and CONTAINER cells of one line, under _owner_head's heads."""
    return (_uid(ev.uid) if show_uid else "") + (_container(ev) if show_container else "")


def args_bytes(ev: ExecEvent) -> bytes:
    """ARGS before escaping and quoting: what ``execsnoop -l`` searches, as BCC does."""
    path = UNKNOWN_PATH.encode() if ev.filename is None else ev.filename
    if ev.argv is None:
        return path + b" " + ARGV_UNAVAILABLE.encode()
    return b" ".join([path, *ev.argv[1:], *((b"...",) if ev.argv_truncated else ())])


@attrs.frozen(slots=True)
class OpenFormat:
    """BCC opensnoop's lines (tools/opensnoop.py, 0.26), cell for cell.

    ``-T`` "%-14.9f" seconds since the first event shown (microseconds, as
    BCC's timestamps are), ``-U`` "%-6d", then "%-6d %-16s %4d %3d " PID (TID
    with ``-t``) COMM FD ERR, ``-e`` "%08o " FLAGS, then PATH. A result that was
    not seen is "?" in both FD and ERR. ``--via`` (ours, not BCC's) adds "%-8s "
    VIA before PATH: how the open arrived, ``syscall`` or ``io_uring``.
    """

    elapsed: bool = False  # -T
    show_uid: bool = False  # -U
    extended: bool = False  # -e: FLAGS
    show_tid: bool = False  # -t TID: the first column is the thread
    show_container: bool = False  # --print-container
    show_via: bool = False  # --via: syscall or io_uring
    # The first event's timestamp in microseconds, set by the first line().
    _first_us: List[Optional[int]] = attrs.field(factory=lambda: [None], init=False,
                                                 eq=False, repr=False)

    def header(self) -> str:
        head = f"{'TIME(s)':<14}" if self.elapsed else ""
        head += _owner_head(self.show_uid, self.show_container)
        head += f"{'TID' if self.show_tid else 'PID':<6} {'COMM':<16} {'FD':>4} {'ERR':>3} "
        if self.extended:
            head += f"{'FLAGS':<9}"
        if self.show_via:
            head += f"{'VIA':<9}"
        return head + "PATH"

    def line(self, ev: OpenEvent, path: Optional[bytes]) -> str:
        fd = ev.fd
        errno = ev.errno
        if fd is None and errno is None:
            result = f"{'?':>4} {'?':>3}"
        else:
            result = f"{-1 if fd is None else fd:>4} {0 if errno is None else errno:>3}"
        who = ev.tid if self.show_tid else ev.pid
        text = f"{'?' if who is None else who:<6} {_comm16(ev.comm)} {result} "
        if self.elapsed or self.show_uid or self.show_container:
            head = ""
            if self.elapsed:
                head = f"{self._seconds(ev.timestamp_ns):<14.9f}"
            text = head + _owner_cells(ev, self.show_uid, self.show_container) + text
        if self.extended:
            flags = ev.flags
            text += ("?" * 8 if flags is None else f"{flags:08o}") + " "
        if self.show_via:
            text += f"{ev.via:<8} "
        return text + ("[path unavailable]" if path is None else escape_bytes(path))

    def _seconds(self, timestamp_ns: int) -> float:
        now = timestamp_ns // 1000
        first = self._first_us
        if first[0] is None:
            first[0] = now
        start = first[0]
        assert start is not None
        return (now - start) / 1000000
