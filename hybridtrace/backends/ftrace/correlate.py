"""Turning trace_pipe records into ExecEvent and OpenEvent.

The static tracepoints are the authority: sched_process_exec says an exec
succeeded, sys_exit_execve(at) with a negative result says one failed, and
sys_exit_open* gives every open's fd or errno. Probe records (uprobe, kprobe,
eprobe) only add strings; they are paired with their syscall by the pointer
both show (``k``). What no record gives comes from /proc while the process
lives, or stays None. Per-thread state is bounded: a thread whose exit record
never arrives is emitted with an unknown result when it ages out.

A record names its thread; the process (``pid``) comes from the task records
(threads.py), or from /proc only where the live task provably wrote the
record; else None. A path read from /proc/TID/fd/N is kept only when the
records prove fd N still held the file this open made when it was read
(fd_ledger.py): such an open waits, with every event after it, until the
records up to the reading have been fed (``complete``).
"""

from __future__ import annotations

import collections
import os
import time
from typing import Callable, Deque, Dict, FrozenSet, Iterable, List, Optional, Set, Tuple

import attrs

from hybridtrace import procfs, vocabulary
from hybridtrace.backends.ftrace.fd_ledger import ALL_FDS, INF, FdLedger, Span
from hybridtrace.backends.ftrace.pipe import ENTER, EXIT, LOST, ArgValue, TraceLine
from hybridtrace.backends.ftrace.probes import ARG, FN, INDEX, MORE, PATH, Role
from hybridtrace.backends.ftrace.threads import ThreadGroups
from hybridtrace.backends.ftrace.uring import EVENTS as URING_EVENTS
from hybridtrace.backends.ftrace.uring import UringOpens
from hybridtrace.events import Event, ExecEvent, OpenEvent, Source
from hybridtrace.request import Kind

MAX_THREADS = 4096  # threads with state in flight before the oldest is aged out
MAX_FORKS = 65536  # child -> parent entries remembered
UNKNOWN_COMM = b"<...>"
# Syscall events as trace output names them.
EXEC_SYSCALLS = tuple(vocabulary.printed(s) for s in vocabulary.EXEC_SYSCALLS)
OPEN_SYSCALLS = tuple(vocabulary.printed(s) for s in vocabulary.OPEN_SYSCALLS)
EXEC_DONE = vocabulary.event_name(vocabulary.SCHED_EXEC)  # the authority that an exec succeeded
NEWTASK = "task_newtask"
TASK_EXIT = "sched_process_exit"
# Calls that free or replace fds (and io_uring, which can without a syscall): fd_ledger.py.
FD_SYSCALLS = ("sys_close", "sys_close_range", "sys_dup2", "sys_dup3", "sys_io_uring_enter")
CLOSE_RANGE_CLOEXEC = 1 << 2  # close_range() that only sets close-on-exec
FdReading = Tuple[Optional[bytes], Optional[int], int]  # (path, flags, monotonic ns after)


def parse_int(value: Optional[ArgValue]) -> Optional[int]:
    """A decimal number as printed for %d fields (pids), or as decoded."""
    if value is None or isinstance(value, int):
        return value
    try:
        return int(value.strip(), 10)
    except ValueError:
        return None


def parse_hex(value: Optional[ArgValue]) -> Optional[int]:
    """A hex number: x64 probe fields and syscall fields print it with or without 0x."""
    if value is None or isinstance(value, int):
        return value
    try:
        return int(value.strip(), 16)
    except ValueError:
        return None


def signed(value: Optional[int], bits: int) -> Optional[int]:
    if value is None:
        return None
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


@attrs.define
class ProbeData:
    """Strings the probes read for one call (one ``k``)."""

    fn: Optional[bytes] = None
    fn_fault: bool = False
    args: Dict[int, Optional[bytes]] = attrs.Factory(dict)  # index -> string (None: fault)
    ends: Optional[int] = None  # first argv index whose pointer is NULL
    more: bool = False  # argv[max_args] is not NULL
    path: Optional[bytes] = None
    path_fault: bool = False

    def argv(self, max_args: int) -> Tuple[Optional[Tuple[bytes, ...]], bool]:
        """(argv, truncated), argv None when a slot is missing or unreadable."""
        count = self.ends if self.ends is not None else max_args
        values: List[bytes] = []
        for i in range(count):
            value = self.args.get(i)
            if value is None:
                return None, False
            values.append(value)
        return tuple(values), self.ends is None and self.more


@attrs.define
class Pending:
    """A syscall entry waiting for its exit record."""

    syscall: str  # "execve", "openat", ...
    timestamp_ns: int
    comm: Optional[bytes]
    key: Optional[int]
    dfd: Optional[int] = None
    flags: Optional[int] = None
    mode: Optional[int] = None
    uid: Optional[int] = None  # as the record says (raw reader), else from /proc
    entered: bool = True  # False: made up at the exit, the entry record was never seen


@attrs.frozen
class Later:
    """Results read but not yet correlated: (tid, fd) of successful opens, exec'd tids."""

    fds: FrozenSet[Tuple[int, int]] = frozenset()
    execs: FrozenSet[int] = frozenset()


def _needs_proc(event: Event) -> bool:
    if isinstance(event, OpenEvent):
        return event.fd is not None and event.path is None
    return isinstance(event, ExecEvent) and event.retval == 0 and event.argv is None


@attrs.frozen
class ProcLookup:
    """The /proc readers the correlator uses (a seam for unit tests)."""

    cmdline: Callable[[int], Optional[Tuple[bytes, ...]]] = procfs.cmdline
    uid: Callable[[int], Optional[int]] = procfs.uid
    ppid: Callable[[int], Optional[int]] = procfs.ppid
    tgid: Callable[[int], Optional[int]] = procfs.tgid
    exe: Callable[[int], Optional[bytes]] = procfs.exe
    cwd: Callable[[int], Optional[bytes]] = procfs.cwd
    fd_path: Callable[[int, int], Optional[bytes]] = procfs.fd_path
    fd_flags: Callable[[int, int], Optional[int]] = procfs.fd_flags
    comm: Callable[[int], Optional[bytes]] = procfs.comm
    thread_identity: Callable[[int], Optional[Tuple[int, int]]] = procfs.thread_identity
    # (path, flags, when read) of /proc/TID/fd/N; None: fd_path and fd_flags, read now.
    fd_read: Optional[Callable[[int, int], FdReading]] = None


@attrs.frozen
class FdProof:
    """A reading of /proc/TID/fd/N waiting to be proven the open's own file."""

    table: Optional[int]
    start: int  # the open's entry
    own: Span  # the open's own record in the ledger
    path: bytes
    read_ns: int


def _same_file(filename: bytes, exe: bytes, cwd: Optional[bytes]) -> bool:
    """Does the exec'd ``filename`` name the process's current executable?"""
    if not filename.startswith(b"/"):
        if cwd is None:
            return False
        filename = os.path.join(cwd, filename)
    try:
        return os.path.realpath(filename) == exe
    except (OSError, ValueError):
        return False


class Correlator:
    """Feeds TraceLines, yields events; one per session."""

    def __init__(self, kind: Kind, roles: Dict[str, Role], probe_source: Optional[Source],
                 max_args: int, proc: ProcLookup = ProcLookup(),
                 boot_offset: Optional[int] = None, fd_proof: bool = False,
                 threads: Optional[Dict[int, Tuple[int, int]]] = None,
                 uring_results: bool = True) -> None:
        """``boot_offset``: see ThreadGroups (None: records' clock is not CLOCK_MONOTONIC).
        ``fd_proof``: the records of fd_ledger.py are traced, so /proc fd links can be proven.
        ``threads``: tid -> (start ticks, tgid) of the threads alive once recording began.
        ``uring_results``: io_uring completions are recorded from every task (uring.py).
        """
        self.kind = kind
        self.roles = roles
        self.probe_source = probe_source
        self.max_args = max_args
        self.proc = proc
        # Plain dicts keep insertion order: the first key is the oldest entry.
        self.pending: Dict[int, Pending] = {}
        self.probes: Dict[int, Dict[int, ProbeData]] = {}
        self.parents: Dict[int, int] = {}
        self._tgids: Dict[int, Optional[int]] = {}
        self._uids: Dict[int, Optional[int]] = {}
        self.threads = ThreadGroups(proc.thread_identity, boot_offset, seed=threads)
        self.fd_proof = fd_proof
        self.ledger = FdLedger()
        self._fd_calls: Dict[int, Span] = {}  # tid -> its close/dup call in flight
        self._opened: Dict[int, Tuple[Optional[int], Optional[int], Span]] = {}
        self.awaiting: Deque[Tuple[Event, Optional[FdProof]]] = collections.deque()
        self.records = 0  # records fed
        self.orphans = 0  # exits whose entry was never seen
        self.uring = UringOpens(self.threads, self._uid, uring_results)  # through io_uring

    # -- entry point -------------------------------------------------------

    def feed(self, line: TraceLine) -> List[Event]:
        if line.style == LOST:
            return []  # losses are counted from the per-CPU stats instead
        self.records += 1
        role = self.roles.get(line.event)
        if role is not None:
            self._probe(line, role)
            return []
        if line.event == EXEC_DONE:
            return self._exec_done(line)
        if line.event == "sched_process_fork":
            self._fork(line)
            return []
        if line.event == NEWTASK:
            self._newtask(line)
            return []
        if line.event == TASK_EXIT:
            self.threads.exited(parse_int(line.args.get("pid")) or line.pid)
            return []
        if line.event in FD_SYSCALLS:
            self._fd_call(line)
            return []
        if line.event in URING_EVENTS:
            return self.uring.feed(line)
        if line.style == ENTER:
            return self._enter(line)
        if line.style == EXIT:
            return self._exit(line)
        return []

    def feed_all(self, lines: Iterable[TraceLine],
                 later: Optional[Callable[[], Later]] = None,
                 complete: Optional[int] = None) -> List[Event]:
        """Feed a batch, then fill from /proc what no record gave (see ``fill``).

        ``complete``: every record up to this time has now been fed (None: unknown).
        """
        out: List[Event] = []
        self._uids.clear()  # /proc is read once per pid per batch, after the fact anyway
        for line in lines:
            out += self.feed(line)
        return self.fill(out, later, complete)

    def flush(self) -> List[Event]:
        """Emit calls still waiting for their exit (end of input: every record was fed)."""
        out: List[Event] = []
        while self.pending:
            tid = next(iter(self.pending))
            pend = self.pending.pop(tid)
            out.append(self._emit(tid, tid, pend, None, pend.timestamp_ns))
        self.probes.clear()
        return self.fill(out, complete=INF)

    def gap(self, start: int, end: int = INF) -> None:
        """Records between ``start`` and ``end`` may be missing (lost, or recording stopped)."""
        self.ledger.gap(start, end)
        if end != INF:  # lost: a pending io_uring result may be among them
            self.uring.lost()

    def fill(self, events: List[Event], later: Optional[Callable[[], Later]] = None,
             complete: Optional[int] = None) -> List[Event]:
        """argv and paths from /proc, for events whose strings no record gave.

        Only the last exec of a pid in the batch may look: an earlier one's
        image was replaced by the time we read. ``later()`` names the (tid, fd)
        opens and tids' execs already read but not yet due (the reader holds
        them back): they count as later too. It is asked only when some event
        needs /proc. An open's path read from /proc waits for its proof (see
        the module docstring), and every event after it waits with it.
        """
        if not self.awaiting and not any(_needs_proc(e) for e in events):
            self._opened.clear()
            return events
        held = later() if later is not None else Later()
        later_fds: Set[Tuple[int, int]] = set(held.fds)
        later_execs: Set[int] = set(held.execs)
        filled: List[Tuple[Event, Optional[FdProof]]] = []
        for event in reversed(events):
            proof: Optional[FdProof] = None
            if isinstance(event, OpenEvent) and event.fd is not None and event.tid is not None:
                opened = self._opened.get(id(event))
                key = (event.tid, event.fd)
                if (event.path is None and opened is not None and complete is not None
                        and key not in later_fds):
                    proof = self._read_fd(event, *opened)
                later_fds.add(key)
            elif isinstance(event, ExecEvent) and event.retval == 0:
                if event.argv is None and event.pid not in later_execs:
                    event = self._fill_argv(event)
                later_execs.add(event.pid)
            filled.append((event, proof))
        self._opened.clear()
        filled.reverse()
        self.awaiting.extend(filled)
        return self._release(complete)

    def _read_fd(self, event: OpenEvent, start: Optional[int], table: Optional[int],
                 own: Span) -> Optional[FdProof]:
        """/proc/TID/fd/N (the thread's own table), unless its access mode shows a reuse."""
        assert event.fd is not None and event.tid is not None
        if start is None:
            return None  # the open's entry was not seen: no time to prove from
        if self.proc.fd_read is not None:
            path, flags, read_ns = self.proc.fd_read(event.tid, event.fd)
        else:
            path = self.proc.fd_path(event.tid, event.fd)
            flags = self.proc.fd_flags(event.tid, event.fd) if path is not None else None
            read_ns = time.monotonic_ns()
        if path is None:
            return None
        if event.flags is not None and (
                flags is None or flags & os.O_ACCMODE != event.flags & os.O_ACCMODE):
            return None
        return FdProof(table, start, own, path, read_ns)

    def _release(self, complete: Optional[int]) -> List[Event]:
        """Events in order, up to the first whose /proc reading can't be judged yet."""
        out: List[Event] = []
        awaiting = self.awaiting
        while awaiting:
            event, proof = awaiting[0]
            if (proof is not None and isinstance(event, OpenEvent) and event.fd is not None
                    and event.tid is not None):
                if complete is not None and proof.read_ns > complete:
                    break
                if complete is not None and self.ledger.proven(
                        proof.table, event.tid, event.fd, proof.start, proof.read_ns,
                        proof.own):
                    event = attrs.evolve(event, path=proof.path, path_source=Source.PROCFS)
            awaiting.popleft()
            out.append(event)
        if self.fd_proof and complete is not None:
            floor = min([complete] + [p.start for _e, p in awaiting if p is not None]
                        + [p.timestamp_ns for p in self.pending.values()])
            self.ledger.prune(floor)
        return out

    def _fill_argv(self, event: ExecEvent) -> ExecEvent:
        argv = self._cmdline(event.pid, event.filename)
        if argv is None:
            return event
        truncated = len(argv) > self.max_args
        return attrs.evolve(event, argv=argv[: self.max_args], argv_truncated=truncated,
                            argv_source=Source.PROCFS)

    # -- record kinds ------------------------------------------------------

    def _probe(self, line: TraceLine, role: Role) -> None:
        key = parse_hex(line.args.get("k"))
        if key is None:
            return
        per_tid = self.probes.get(line.pid)
        if per_tid is None:
            per_tid = self.probes[line.pid] = {}
            while len(self.probes) > MAX_THREADS:
                del self.probes[next(iter(self.probes))]
        data = per_tid.get(key)
        if data is None:
            data = per_tid[key] = ProbeData()
        value = line.args.get("s")
        if not isinstance(value, bytes):
            value = None
        fault = "s" in line.faults or value is None
        if role.what == ARG and INDEX in line.args:  # one event for every argv slot
            index = parse_int(line.args.get(INDEX))
            if index is None or index >= self.max_args:
                return
            role = Role(ARG, index)
        if role.what == PATH:
            data.path, data.path_fault = (None, True) if fault else (value, False)
        elif role.what == FN:
            data.fn, data.fn_fault = (None, True) if fault else (value, False)
        elif role.what in (ARG, MORE):
            pointer = parse_hex(line.args.get("p"))
            if pointer == 0:
                if data.ends is None or role.index < data.ends:
                    data.ends = role.index
            elif role.what == MORE:
                data.more = pointer is not None
            else:
                data.args[role.index] = None if fault else value

    def _fork(self, line: TraceLine) -> None:
        child = parse_int(line.args.get("child_pid"))
        parent = parse_int(line.args.get("parent_pid", line.args.get("pid")))
        if child is None or parent is None:
            return
        self.parents[child] = parent
        while len(self.parents) > MAX_FORKS:
            del self.parents[next(iter(self.parents))]

    def _newtask(self, line: TraceLine) -> None:
        child = parse_int(line.args.get("pid"))
        flags = parse_hex(line.args.get("clone_flags"))
        if child is None or flags is None:
            return
        self.threads.created(child, line.pid, flags, line.timestamp_ns)
        if self.fd_proof:
            self.ledger.tid_reused(child, line.timestamp_ns)
            comm = line.args.get("comm")
            if isinstance(comm, bytes) and comm.startswith(b"iou-"):  # io_uring's own threads
                self.ledger.changed(self.threads.files(child, line.timestamp_ns), 0, ALL_FDS,
                                    line.timestamp_ns)

    def _fd_call(self, line: TraceLine) -> None:
        """close, close_range, dup2, dup3: fds of the caller's table may change meanwhile."""
        if not self.fd_proof:
            return
        ts = line.timestamp_ns
        if line.style == EXIT:
            span = self._fd_calls.pop(line.pid, None)
            if span is not None:
                span[3] = ts
            elif line.event != "sys_io_uring_enter":  # its entry was not seen: any fd, until now
                self.ledger.changed(self.threads.files(line.pid, ts), 0, ALL_FDS, 0, ts)
            return
        table = self.threads.files(line.pid, ts)
        args = line.args
        if line.event == "sys_io_uring_enter":
            self.ledger.changed(table, 0, ALL_FDS, ts)  # from now on, never proven
            return
        if line.event == "sys_close_range":
            lo = parse_hex(args.get("fd"))
            hi = parse_hex(args.get("max_fd"))
            flags = parse_hex(args.get("flags"))
            if flags is not None and flags == CLOSE_RANGE_CLOEXEC:
                return
            lo, hi = (0, ALL_FDS) if lo is None or hi is None else (lo, min(hi, ALL_FDS))
        else:
            fd = parse_hex(args.get("fd", args.get("newfd")))
            lo, hi = (0, ALL_FDS) if fd is None else (fd & 0xFFFFFFFF, fd & 0xFFFFFFFF)
        old = self._fd_calls.pop(line.pid, None)
        if old is not None:
            old[3] = ts  # its exit was lost: it ended before this call began
        self._fd_calls[line.pid] = self.ledger.changed(table, lo, hi, ts)
        while len(self._fd_calls) > MAX_THREADS:
            del self._fd_calls[next(iter(self._fd_calls))]

    def _enter(self, line: TraceLine) -> List[Event]:
        names = EXEC_SYSCALLS if self.kind is Kind.EXEC else OPEN_SYSCALLS
        if line.event not in names:
            return []
        out: List[Event] = []
        old = self.pending.pop(line.pid, None)
        if old is not None:  # its exit was lost
            out.append(self._emit(line.pid, line.pid, old, None, old.timestamp_ns))
        args = line.args
        if self.kind is Kind.EXEC:
            key = parse_hex(args.get("argv"))
            pend = Pending(line.event[4:], line.timestamp_ns, self._comm(line), key,
                           uid=line.uid)
        else:
            key = parse_hex(args.get("filename", args.get("pathname")))
            dfd = signed(parse_hex(args.get("dfd")), 32)
            flags = signed(parse_hex(args.get("flags")), 32)
            if line.event == "sys_creat":
                flags = os.O_CREAT | os.O_WRONLY | os.O_TRUNC
            elif line.event == "sys_openat2":
                flags = None  # in struct open_how, not readable from the tracepoint
            mode = parse_hex(args.get("mode"))
            pend = Pending(line.event[4:], line.timestamp_ns, self._comm(line), key,
                           dfd=dfd if line.event in ("sys_openat", "sys_openat2") else None,
                           flags=flags, mode=mode, uid=line.uid)
        self.pending[line.pid] = pend
        while len(self.pending) > MAX_THREADS:
            tid = next(iter(self.pending))
            stale = self.pending.pop(tid)
            out.append(self._emit(tid, tid, stale, None, stale.timestamp_ns))
        return out

    def _exit(self, line: TraceLine) -> List[Event]:
        names = EXEC_SYSCALLS if self.kind is Kind.EXEC else OPEN_SYSCALLS
        if line.event not in names:
            return []
        ret = signed(parse_hex(line.args.get("ret")), 64)
        pend = self.pending.pop(line.pid, None)
        if pend is not None and pend.syscall != line.event[4:]:
            out = [self._emit(line.pid, line.pid, pend, None, pend.timestamp_ns)]
            pend = None
        else:
            out = []
        if pend is None:
            if self.kind is Kind.EXEC and ret == 0:
                return out  # the success was already reported at sched_process_exec
            self.orphans += 1
            pend = Pending(line.event[4:], line.timestamp_ns, self._comm(line), None,
                           uid=line.uid, entered=False)
        out.append(self._emit(line.pid, line.pid, pend, ret, line.timestamp_ns))
        return out

    def _exec_done(self, line: TraceLine) -> List[Event]:
        pid = parse_int(line.args.get("pid")) or line.pid
        old = parse_int(line.args.get("old_pid")) or pid
        if self.fd_proof:  # close-on-exec fds go; the table may be unshared
            self.ledger.changed(self.threads.files(old, line.timestamp_ns), 0, ALL_FDS,
                                line.timestamp_ns, line.timestamp_ns)
        self.threads.execed(old, pid)
        if self.kind is not Kind.EXEC:
            return []
        pend = self.pending.pop(old, None)
        if pend is None:
            pend = Pending("execve", line.timestamp_ns, None, None)
        comm = self._comm(line)
        name = line.args.get("filename")
        filename = name if isinstance(name, bytes) else None
        if filename is not None and not filename.startswith(b"/dev/fd/"):
            comm = os.path.basename(filename)[:15]
        pend.comm = comm
        if line.uid is not None:
            pend.uid = line.uid
        return [self._emit(old, pid, pend, 0, line.timestamp_ns, filename)]

    # -- building events ---------------------------------------------------

    def _comm(self, line: TraceLine) -> Optional[bytes]:
        """The header's comm; the kernel's comm cache prints ``<...>`` once it forgot."""
        if line.comm not in (UNKNOWN_COMM, b""):
            return line.comm
        return self.proc.comm(line.pid)

    def _take_probe(self, tid: int, key: Optional[int]) -> Optional[ProbeData]:
        per_tid = self.probes.pop(tid, None)
        if per_tid is None:
            return None
        if key is not None:
            return per_tid.get(key)
        # The syscall entry was lost: one probed call on this thread can only be it.
        return next(iter(per_tid.values())) if len(per_tid) == 1 else None

    def _emit(self, tid: int, pid: int, pend: Pending, ret: Optional[int], ts: int,
              filename: Optional[bytes] = None) -> Event:
        probe = self._take_probe(tid, pend.key)
        if self.kind is Kind.EXEC:
            if ret == 0:  # exec'd: the task now leads its process
                return self._exec_event(pid, pid, pend, ret, ts, filename, probe)
            # Not (known to be) exec'd: the calling thread, of its process as the task
            # records prove it; a non-leader thread's tid is no pid, nor its process a
            # parent. Unproven (the text reader has no task records; the process is
            # gone), the tid stands in, as ExecEvent.pid cannot be None: right for a
            # single-threaded caller, the only case the text reader can prove nothing of.
            tgid = self.threads.tgid(tid, ts)
            return self._exec_event(tid, tid if tgid is None else tgid, pend, ret, ts,
                                    filename, probe)
        return self._open_event(tid, pend, ret, ts, probe)

    def _tgid(self, tid: int) -> Optional[int]:
        if tid not in self._tgids:
            if len(self._tgids) > MAX_FORKS:
                self._tgids.clear()
            self._tgids[tid] = self.proc.tgid(tid)
        return self._tgids[tid]

    def _uid(self, pid: int) -> Optional[int]:
        if pid not in self._uids:
            self._uids[pid] = self.proc.uid(pid)
        return self._uids[pid]

    def _pend_uid(self, pend: Pending, pid: int) -> Optional[int]:
        """The uid the records gave (raw reader), else /proc's."""
        return pend.uid if pend.uid is not None else self._uid(pid)

    def _ppid(self, pid: int, ts: int) -> Optional[int]:
        parent = self.parents.get(pid)
        if parent is not None:  # the forking thread: its process, proven, or None
            return self.threads.tgid(parent, ts)
        return self.proc.ppid(pid)

    def _cmdline(self, pid: int, filename: Optional[bytes]) -> Optional[Tuple[bytes, ...]]:
        """argv from /proc, only while the process still runs the exec'd file."""
        if filename is None:
            return None
        exe = self.proc.exe(pid)
        if exe is None or not _same_file(filename, exe, self.proc.cwd(pid)):
            return None
        argv = self.proc.cmdline(pid)
        if argv is None or self.proc.exe(pid) != exe:
            return None
        return argv

    def _exec_event(self, tid: int, pid: int, pend: Pending, ret: Optional[int], ts: int,
                    filename: Optional[bytes], probe: Optional[ProbeData]) -> ExecEvent:
        filename_source: Optional[Source] = Source.TRACEPOINT if filename is not None else None
        argv: Optional[Tuple[bytes, ...]] = None
        argv_source: Optional[Source] = None
        truncated = False
        if probe is not None:
            if filename is None and probe.fn is not None:
                filename, filename_source = probe.fn, self.probe_source
            argv, truncated = probe.argv(self.max_args)
            argv_source = self.probe_source if argv is not None else None
        return ExecEvent(
            timestamp_ns=ts, pid=pid, tid=tid, ppid=self._ppid(pid, ts),
            uid=self._pend_uid(pend, pid), comm=pend.comm, filename=filename, argv=argv, retval=ret,
            argv_truncated=truncated, filename_source=filename_source,
            argv_source=argv_source, syscall=pend.syscall,
        )

    def _open_event(self, tid: int, pend: Pending, ret: Optional[int], ts: int,
                    probe: Optional[ProbeData]) -> OpenEvent:
        fd = ret if ret is not None and ret >= 0 else None
        err = -ret if ret is not None and ret < 0 else None
        pid = self.threads.tgid(tid, ts)  # never the tid unless it is proven the process's
        path: Optional[bytes] = None
        source: Optional[Source] = None
        if probe is not None and probe.path is not None:
            path, source = probe.path, self.probe_source
        event = OpenEvent(
            timestamp_ns=ts, pid=pid, tid=tid,
            uid=self._pend_uid(pend, tid if pid is None else pid), comm=pend.comm,
            path=path, flags=pend.flags, mode=pend.mode, fd=fd, errno=err,
            path_source=source, syscall=pend.syscall, dfd=pend.dfd,
        )
        if fd is not None and self.fd_proof and ret is not None:
            table = self.threads.files(tid, ts)
            own = self.ledger.changed(table, fd, fd, ts, ts)  # fd N was free before this
            self._opened[id(event)] = (pend.timestamp_ns if pend.entered else None, table, own)
        return event
