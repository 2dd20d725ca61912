"""Which process and which fd table each thread id belongs to, as records prove it.

A record names its thread only (``common_pid`` is the tid). ``task_newtask``
names a new task, its creator (the record's thread) and its clone flags: with
CLONE_THREAD it joins its creator's process, else it leads its own; with
CLONE_FILES it shares its creator's fd table, else it gets a copy of its own.
Fed in timestamp order, these give every task created during the session.
Tasks older than the session come from a listing of /proc/PID/task/TID taken
once every record is enabled (``seed``), or else are read from /proc (``Tgid:``); both only
believed when the task living under that id now provably wrote the record:
it started before the record's timestamp (its start time, in clock ticks of
CLOCK_BOOTTIME, read before and after the Tgid). A thread of a process that
already exited, and was not seen created, has no process id: None, never its
own tid. An fd table is named by the tid of its first owner; a process that
existed before the session is taken to own one table shared by its threads
(a table shared with another process since before the session is not seen).
"""

from __future__ import annotations

import os
import time
from typing import Callable, Dict, Optional, Tuple

import attrs

from hybridtrace import procfs
from hybridtrace.backends.ftrace.fd_ledger import SLACK_NS

CLONE_FILES = 0x400
CLONE_THREAD = 0x10000
MAX_THREADS = 65536  # remembered threads; the oldest entry goes first
TICK_NS = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
Identity = Callable[[int], Optional[Tuple[int, int]]]  # tid -> (start ticks, tgid)
Thread = Tuple[Optional[int], Optional[int]]  # (tgid, fd table)
_UNKNOWN: Thread = (None, None)


@attrs.frozen
class Listing:
    """Every thread alive once the session's events were enabled (procfs.threads_now)."""

    threads: Dict[int, procfs.ThreadNow]
    since: int  # CLOCK_MONOTONIC ns before the events were enabled
    read_ns: int  # and once the listing was read

    @staticmethod
    def take(since: int) -> Listing:
        threads = procfs.threads_now()
        return Listing(threads, since, time.monotonic_ns())


def started_before(start_ticks: int, ts: int, boot_offset: int) -> bool:
    """Did a task that started at ``start_ticks`` exist when a record at ``ts`` was written?

    Start times are whole clock ticks: only a start a whole tick earlier (and
    trace_pipe's rounding to microseconds) counts; closer is too close to tell.
    """
    return (start_ticks + 1) * TICK_NS + SLACK_NS <= ts + boot_offset


def boot_offset_ns() -> int:
    """CLOCK_BOOTTIME - CLOCK_MONOTONIC now: turns a trace timestamp into boot time.

    Measured once: time suspended later makes the offset too small, so a start
    time looks later than it was, and the comparison stays on the safe side.
    """
    return time.clock_gettime_ns(time.CLOCK_BOOTTIME) - time.monotonic_ns()


class ThreadGroups:
    """tid -> (tgid, fd table), from task records in time order, /proc only with proof.

    ``boot_offset`` is None when record timestamps are not CLOCK_MONOTONIC:
    then /proc is never believed.
    """

    def __init__(self, identity: Identity = procfs.thread_identity,
                 boot_offset: Optional[int] = None, limit: int = MAX_THREADS,
                 seed: Optional[Dict[int, Tuple[int, int]]] = None) -> None:
        self._identity = identity
        self._seed = dict(seed or {})  # tid -> (start ticks, tgid) when the session began
        self._boot_offset = boot_offset
        self._limit = limit
        self._known: Dict[int, Thread] = {}

    def _set(self, tid: int, thread: Thread) -> None:
        known = self._known
        known.pop(tid, None)
        known[tid] = thread
        if len(known) > self._limit:
            del known[next(iter(known))]

    def created(self, child: int, creator: int, clone_flags: int, ts: int) -> None:
        """``creator`` made ``child`` at ``ts`` (task_newtask)."""
        tgid, files = self.get(creator, ts)
        self._set(child, (tgid if clone_flags & CLONE_THREAD else child,
                          files if clone_flags & CLONE_FILES else child))

    def exited(self, tid: int) -> None:
        """sched_process_exit: the id may be reused by a task we must not confuse it with."""
        self._known.pop(tid, None)
        self._seed.pop(tid, None)

    def execed(self, old_tid: int, pid: int) -> None:
        """A thread ``old_tid`` exec'd and now leads ``pid`` (de_thread): whatever was
        known or not before, the task ``pid`` is its process's leader from here on."""
        thread = self._known.pop(old_tid, None)
        files = thread[1] if thread is not None and thread[1] is not None else pid
        self._set(pid, (pid, files))

    def tgid(self, tid: int, ts: int) -> Optional[int]:
        return self.get(tid, ts)[0]

    def files(self, tid: int, ts: int) -> Optional[int]:
        return self.get(tid, ts)[1]

    def get(self, tid: int, ts: int) -> Thread:
        """(tgid, fd table) of the thread that wrote a record ``tid`` at ``ts``."""
        thread = self._known.get(tid)
        if thread is None:
            thread = self._from_proc(tid, ts)
            self._set(tid, thread)
        return thread

    def _from_proc(self, tid: int, ts: int) -> Thread:
        if self._boot_offset is None:
            return _UNKNOWN
        ident = self._seed.get(tid)
        if ident is None:
            ident = self._identity(tid)
        if ident is None:
            return _UNKNOWN
        start_ticks, tgid = ident
        if not started_before(start_ticks, ts, self._boot_offset):
            return _UNKNOWN  # started after the record (or too close to tell): another task
        return tgid, tgid
