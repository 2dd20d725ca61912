"""/proc read the moment a record is decoded, for tiers whose strings come from it.

The tracepoint tier (and any call no probe covered) fills argv and paths
from /proc while the process lives. A short-lived process is often gone by
the time its batch is correlated: the binary reader holds records back a few
milliseconds to merge CPUs in time order. So, as soon as a successful exec
or open is decoded, what the correlator will ask about it is read and kept;
the correlator's usual checks (same executable, only the last exec of a pid
in a batch, and for an fd the proof that it was not freed or replaced before
the moment of the reading, which each snapshot keeps) apply to the snapshot as
to live /proc. Fds are read per thread (/proc/TID/fd/N): a thread's table may
be its own, and the snapshot belongs to the thread whose open it was.
"""

from __future__ import annotations

import time
from typing import Dict, List, Optional, Tuple, TypeVar

from hybridtrace import procfs
from hybridtrace.backends.ftrace.correlate import FdReading, ImageReading, ProcLookup
from hybridtrace.backends.ftrace.raw_records import RawRecord
from hybridtrace.backends.ftrace.trace_record import EXEC_DONE, EXIT, OPEN_SYSCALLS

MAX_ENTRIES = 16384  # snapshots kept; the oldest goes first

K = TypeVar("K")
V = TypeVar("V")


def _put(table: Dict[K, V], key: K, value: V) -> None:
    table.pop(key, None)
    table[key] = value
    if len(table) > MAX_ENTRIES:
        del table[next(iter(table))]


class ProcSnapshots:
    """Snapshots of /proc taken at decode time, served through a ProcLookup."""

    def __init__(self, execs: bool, opens: bool) -> None:
        self.execs = execs
        self.opens = opens
        self._image: Dict[int, ImageReading] = {}
        self._fds: Dict[Tuple[int, int], FdReading] = {}  # (tid, fd) -> reading

    def take(self, records: List[RawRecord]) -> None:
        """Read /proc for the successful execs and opens among freshly decoded records."""
        for _ts, _cpu, tid, event, style, args, _faults in records:
            if self.execs and event == EXEC_DONE:
                pid = args.get("pid")
                pid = pid if isinstance(pid, int) else tid
                _put(self._image, pid, _read_image(pid))
            elif self.opens and style == EXIT and event in OPEN_SYSCALLS:
                fd = args.get("ret")
                if isinstance(fd, int) and fd >= 0:
                    _put(self._fds, (tid, fd), _read_fd(tid, fd))

    def lookup(self) -> ProcLookup:
        """Live /proc, except where a snapshot was taken."""
        return ProcLookup(image_read=self._image_read, fd_path=self._fd_path,
                          fd_flags=self._fd_flags, fd_read=self._fd_read)

    def _image_read(self, pid: int) -> ImageReading:
        got = self._image.get(pid)
        return got if got is not None else _read_image(pid)

    def _fd_read(self, tid: int, fd: int) -> FdReading:
        got = self._fds.get((tid, fd))
        return got if got is not None else _read_fd(tid, fd)

    def _fd_path(self, pid: int, fd: int) -> Optional[bytes]:
        got = self._fds.get((pid, fd))
        return got[0] if got is not None else procfs.fd_path(pid, fd)

    def _fd_flags(self, pid: int, fd: int) -> Optional[int]:
        got = self._fds.get((pid, fd))
        return got[1] if got is not None else procfs.fd_flags(pid, fd)


def _read_image(pid: int) -> ImageReading:
    """(exe, cwd, cmdline, the monotonic time once read) of one image of ``pid``."""
    exe = procfs.exe(pid)
    cwd = procfs.cwd(pid)
    argv = procfs.cmdline(pid)
    if procfs.exe(pid) != exe:
        exe = None  # it exec'd meanwhile: which image argv is from is not known
    return exe, cwd, argv, time.monotonic_ns()


def _read_fd(tid: int, fd: int) -> FdReading:
    """(path, flags, the monotonic time once both were read) of fd N of thread ``tid``."""
    path = procfs.fd_path(tid, fd)
    flags = procfs.fd_flags(tid, fd) if path is not None else None
    return path, flags, time.monotonic_ns()
