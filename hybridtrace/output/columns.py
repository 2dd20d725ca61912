"""BCC-style columns for execsnoop and opensnoop; every process string escaped."""

from __future__ import annotations

import time
from typing import Callable, List, Optional

import attrs

from hybridtrace.events import ExecEvent, LostEvent, OpenEvent
from hybridtrace.output.escape import escape_bytes, quote_arg


def _text(value: Optional[bytes], missing: str = "?") -> str:
    return missing if value is None else escape_bytes(value)


@attrs.frozen(slots=True)
class TimeColumn:
    """-T wall clock (HH:MM:SS) or -t seconds since start; events carry CLOCK_MONOTONIC."""

    mode: Optional[str]  # None, "wall", "relative"
    start_ns: int = attrs.field(factory=time.monotonic_ns)
    wall_offset_ns: int = attrs.field(factory=lambda: time.time_ns() - time.monotonic_ns())

    def header(self) -> List[str]:
        return [] if self.mode is None else ["TIME" if self.mode == "wall" else "TIME(s)"]

    def cell(self, timestamp_ns: int) -> List[str]:
        if self.mode == "wall":
            wall = (timestamp_ns + self.wall_offset_ns) / 1e9
            return [time.strftime("%H:%M:%S", time.localtime(wall))]
        if self.mode == "relative":
            return [f"{(timestamp_ns - self.start_ns) / 1e9:<8.3f}"]
        return []


def lost_line(event: LostEvent) -> str:
    cpu = "" if event.cpu is None else f" on cpu {event.cpu}"
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
        cols = [f"{c:<8}" for c in self.clock.cell(ev.timestamp_ns)]
        if self.show_uid:
            cols.append(f"{'?' if ev.uid is None else ev.uid:<6}")
        cols += [
            f"{_text(ev.comm):<16}",
            f"{ev.pid:<7}",
            f"{'?' if ev.ppid is None else ev.ppid:<7}",
            f"{'?' if ev.retval is None else ev.retval:>3}",
            self.args(ev),
        ]
        return " ".join(cols)

    def args(self, ev: ExecEvent) -> str:
        render: Callable[[bytes], str] = quote_arg if self.quote else escape_bytes
        if ev.argv is None:
            # Never invent argv: say what we know.
            return f"{_text(ev.filename)} [argv unavailable]"
        text = " ".join(render(a) for a in ev.argv)
        return text + (" ..." if ev.argv_truncated else "")


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
        cols = [f"{c:<8}" for c in self.clock.cell(ev.timestamp_ns)]
        if self.show_uid:
            cols.append(f"{'?' if ev.uid is None else ev.uid:<6}")
        cols += [
            f"{ev.pid:<7}",
            f"{_text(ev.comm):<16}",
            f"{-1 if ev.fd is None else ev.fd:>4}",
            f"{0 if ev.errno is None else ev.errno:>3}",
        ]
        if self.extended:
            cols.append("?" * 8 if ev.flags is None else f"{ev.flags:08o}")
            cols.append(f"{'?':<6}" if ev.mode is None else f"{ev.mode:04o}  ")
        cols.append(_text(path, "[path unavailable]"))
        return " ".join(cols)
