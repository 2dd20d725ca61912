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
record; else None (a failed exec's too: never the tid). comm and uid come
from the task records too (tasks.py), whichever reader decoded them; a value
tasks.py had to read from /proc waits, with every event after it, until the
records up to the reading have been fed (``complete``), and is dropped if one
of them changed it. Likewise a path read from /proc/TID/fd/N is kept only
when the records prove fd N still held the file this open made when it was
read (fd_ledger.py), and argv read from /proc/PID only when no exec of PID
entered between its exec and the reading (one entered and not ended when we
would read: not read at all), as a later image of the same file shows its own.
"""

from __future__ import annotations

import collections
import os
import re
import time
from typing import (
    Callable,
    Deque,
    Dict,
    Iterable,
    List,
    Mapping,
    Optional,
    Set,
    Tuple,
)

import attrs

from hybridtrace import compiled, procfs
from hybridtrace.backends.ftrace.fd_ledger import ALL_FDS, INF, SLACK_NS, FdLedger, Span
from hybridtrace.backends.ftrace.probes import ARG, FN, INDEX, MORE, PATH, URING, Role
from hybridtrace.backends.ftrace.tasks import (
    NEWTASK,
    RENAME,
    SETUID_SYSCALLS,
    UNKNOWN_UID,
    Reading,
    Task,
    TaskState,
    TaskTracker,
)
from hybridtrace.backends.ftrace.threads import Listing, ThreadGroups
from hybridtrace.backends.ftrace.trace_record import (
    ENTER,
    EXEC_DONE,
    EXEC_SYSCALLS,
    EXIT,
    LOST,
    OPEN_SYSCALLS,
    TASK_EXIT,
    ArgValue,
    Later,
    TraceLine,
)
from hybridtrace.backends.ftrace.uring import EVENTS as URING_EVENTS
from hybridtrace.backends.ftrace.uring import UringOpens
from hybridtrace.events import (
    Event,
    ExecEvent,
    LostEvent,
    OpenEvent,
    Source,
    fill_in,
    make_exec,
    make_open,
)
from hybridtrace.request import Kind

MAX_THREADS = 4096  # threads with state in flight before the oldest is aged out
MAX_FORKS = 65536  # child -> parent entries remembered
# Syscall events as trace output names them.
# Calls that free or replace fds (and io_uring, which can without a syscall): fd_ledger.py.
FD_SYSCALLS = ("sys_close", "sys_close_range", "sys_dup2", "sys_dup3", "sys_io_uring_enter")
CLOSE_RANGE_CLOEXEC = 1 << 2  # close_range() that only sets close-on-exec
FdReading = Tuple[Optional[bytes], Optional[int], int]  # (path, flags, monotonic ns after)
# /proc/PID's exe, cwd and cmdline, and the monotonic ns once they were read.
ImageReading = Tuple[Optional[bytes], Optional[bytes], Optional[Tuple[bytes, ...]], int]
Sources = Tuple[Optional[Reading], Optional[Reading]]  # where an event's comm and uid came from
_NO_TASK = Task(None, None, None, None)
_CALL_NAME = {e: e[4:] for e in (*EXEC_SYSCALLS, *OPEN_SYSCALLS)}  # "sys_openat" -> "openat"
_DFD_CALLS = frozenset(("sys_openat", "sys_openat2"))  # the calls with a directory fd
_FD_ONLY = re.compile(rb"/dev/fd/[0-9]+")  # fexecve's (AT_EMPTY_PATH) file name
_CREAT_FLAGS = os.O_CREAT | os.O_WRONLY | os.O_TRUNC  # what creat() is open() with


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


def real_uid(args: Mapping[str, ArgValue]) -> Optional[int]:
    """The real uid a setuid-family call asks for; None for -1 (unchanged) or unreadable."""
    value = parse_hex(args.get("ruid", args.get("uid")))
    if value is None or value & 0xFFFFFFFF == 0xFFFFFFFF:
        return None
    return value & 0xFFFFFFFF


def signed(value: Optional[int], bits: int) -> Optional[int]:
    if value is None:
        return None
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


@attrs.define
class ProbeData:
    """Strings the probes read for one call (one ``k``)."""

    fn: Optional[bytes] = None
    args: Dict[int, Optional[bytes]] = attrs.Factory(dict)  # index -> string (None: fault)
    ends: Optional[int] = None  # first argv index whose pointer is NULL
    more: bool = False  # argv[max_args] is not NULL (its record was read)
    path: Optional[bytes] = None
    seen: Set[Role] = attrs.Factory(set)  # the roles whose record was read

    def argv(self, max_args: int) -> Tuple[Optional[Tuple[bytes, ...]], bool]:
        """(argv, truncated), argv None when a slot is missing or unreadable, or when
        nothing says whether argv goes on past ``max_args`` (argv[max_args]'s record
        was lost: all of argv is not known to be there, nor known to be cut)."""
        if self.ends is None and not self.more:
            return None, False
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

    syscall: Optional[str]  # "execve", "openat", ...; None: not known
    timestamp_ns: int
    task: Task  # the caller's comm and uid (tasks.py)
    key: Optional[int]
    dfd: Optional[int] = None
    flags: Optional[int] = None
    mode: Optional[int] = None
    entered: bool = True  # False: made up at the exit, the entry record was never seen




def _needs_proc(event: Event) -> bool:
    if isinstance(event, OpenEvent):
        return event.fd is not None and event.path is None
    return isinstance(event, ExecEvent) and event.retval == 0 and event.argv is None


@attrs.frozen
class ProcLookup:
    """The /proc readers the correlator uses (a seam for unit tests)."""

    cmdline: Callable[[int], Optional[Tuple[bytes, ...]]] = procfs.cmdline
    ppid: Callable[[int], Optional[int]] = procfs.ppid
    exe: Callable[[int], Optional[bytes]] = procfs.exe
    cwd: Callable[[int], Optional[bytes]] = procfs.cwd
    fd_path: Callable[[int, int], Optional[bytes]] = procfs.fd_path
    fd_flags: Callable[[int, int], Optional[int]] = procfs.fd_flags
    task_state: TaskState = procfs.task_state
    thread_identity: Callable[[int], Optional[Tuple[int, int]]] = procfs.thread_identity
    # (path, flags, when read) of /proc/TID/fd/N; None: fd_path and fd_flags, read now.
    fd_read: Optional[Callable[[int, int], FdReading]] = None
    # (exe, cwd, cmdline, when read) of /proc/PID; None: exe, cwd and cmdline, read now.
    image_read: Optional[Callable[[int], ImageReading]] = None


@attrs.frozen
class FdProof:
    """A reading of /proc/TID/fd/N waiting to be proven the open's own file."""

    table: Optional[int]
    start: int  # the open's entry
    own: Span  # the open's own record in the ledger
    path: bytes
    read_ns: int


@attrs.frozen
class ArgvProof:
    """argv read from /proc/PID, kept if no exec of PID came between its exec and then."""

    reading: Reading
    argv: Tuple[bytes, ...]
    truncated: bool


@attrs.define
class Held:
    """An event waiting for what proves the values /proc gave it (module docstring)."""

    event: Event
    fd: Optional[FdProof] = None
    sources: Optional[Sources] = None  # where its comm and uid came from
    argv: Optional[ArgvProof] = None

    def ready_at(self) -> int:
        """When every record that could spoil one of its readings has been fed."""
        times = [r.read_ns for r in self.sources or () if r is not None]
        if self.argv is not None:
            times.append(self.argv.reading.read_ns)
        return max(times) + SLACK_NS if times else -INF


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
                 threads: Optional[Listing] = None,
                 uring_results: bool = True) -> None:
        """``boot_offset``: see ThreadGroups (None: records' clock is not CLOCK_MONOTONIC).
        ``fd_proof``: the records of fd_ledger.py are traced, so /proc fd links can be proven.
        ``threads``: the threads alive once recording began.
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
        self.threads = ThreadGroups(proc.thread_identity, boot_offset, seed=None if threads is None
                                    else {t: (n.start, n.tgid) for t, n in threads.threads.items()})
        self.tasks = TaskTracker(proc.task_state, boot_offset)
        if threads is not None:
            self.tasks.seed({t: (n.comm, n.uid) for t, n in threads.threads.items()},
                            threads.since, threads.read_ns)
        self._sources: Dict[int, Sources] = {}  # id(event) -> its readings, until filled
        self.fd_proof = fd_proof
        self.ledger = FdLedger()
        self._fd_calls: Dict[int, Span] = {}  # tid -> its close/dup call in flight
        self._opened: Dict[int, Tuple[Optional[int], Optional[int], Span]] = {}
        self.awaiting: Deque[Held] = collections.deque()
        self._lost_until = -INF  # records before this may be missing
        self.records = 0  # records fed
        self.orphans = 0  # exits whose entry was never seen
        self.uring = UringOpens(self.threads, uring_results)  # through io_uring
        # The traced calls' records, which feed() sends straight to _enter/_exit (a
        # probe event of the same name would be a role first: then they take the long way).
        self._execs = kind is Kind.EXEC
        self._names = frozenset(EXEC_SYSCALLS if self._execs else OPEN_SYSCALLS)
        self._calls = self._names - set(roles)
        # An open session's batches through the C loop, when built (feed is its definition).
        self._feed_c = OPEN_CALLS if kind is Kind.OPEN else None

    # -- entry point -------------------------------------------------------

    def feed(self, line: TraceLine) -> List[Event]:
        style = line.style
        if line.event in self._calls:  # most records: skip the chain of special cases
            self.records += 1
            if style == ENTER:
                return self._enter(line)
            if style == EXIT:
                return self._exit(line)
            return []
        if style == LOST:
            return []  # losses are counted from the per-CPU stats instead
        self.records += 1
        role = self.roles.get(line.event)
        if role is not None and role.what != URING:
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
        if line.event == RENAME:
            pid = parse_int(line.args.get("pid"))
            comm = line.args.get("newcomm")
            self.tasks.renamed(line.pid if pid is None else pid,
                               comm if isinstance(comm, bytes) else None, line.timestamp_ns)
            return []
        if line.event in SETUID_SYSCALLS:
            if line.style == ENTER:
                self.tasks.setuid_entered(line.pid, line.event, real_uid(line.args),
                                          line.timestamp_ns)
            elif line.style == EXIT:
                ok = signed(parse_hex(line.args.get("ret")), 64) == 0
                self.tasks.setuid_returned(line.pid, ok, line.timestamp_ns)
            return []
        if line.event == TASK_EXIT:
            tid = parse_int(line.args.get("pid")) or line.pid
            pend = self.pending.pop(tid, None)  # its exit record was lost: result unknown
            out = [] if pend is None else [self._emit(tid, tid, pend, None, pend.timestamp_ns)]
            self.probes.pop(tid, None)  # strings of a call it never made: not the next task's
            self.threads.exited(tid)
            return out
        if line.event in FD_SYSCALLS:
            self._fd_call(line)
            return []
        if line.event in URING_EVENTS or role is not None:  # io_uring's, and our probes on it
            # the submitter's comm and uid, settled as any call's
            task = self._task(line)
            proc = task.comm_from is not None or task.uid_from is not None
            out = self.uring.feed(line, task.comm, task.uid,
                                  (task.comm_from, task.uid_from) if proc else None)
            if self.uring.sources_of:
                self._sources.update(self.uring.sources_of)  # type: ignore[arg-type]
                self.uring.sources_of.clear()
            return out
        if line.event not in self._names:
            return []
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
        if self._feed_c is not None:
            out = self._feed_c(self, lines)  # type: ignore[arg-type]
        else:
            out = []
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
            self.uring.lost(end)
        if start == -INF and end != INF:  # the ledger forgets old gaps; this never
            self._lost_until = max(self._lost_until, end)
            self.tasks.forget()  # what lost records changed is not known
            self.tasks.lost_until = self._lost_until + SLACK_NS

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
            if not self._sources:
                return events
            if complete is not None:
                return self._settle_batch(events, complete)
        return self._hold(events, later, complete)

    def _hold(self, events: List[Event], later: Optional[Callable[[], Later]],
              complete: Optional[int]) -> List[Event]:
        """fill's general way: every event queued with what it waits for."""
        held = later() if later is not None else Later()
        later_fds: Set[Tuple[int, int]] = set(held.fds)
        later_execs: Set[int] = set(held.execs)
        # An exec entered (already fed) and not ended yet may have replaced the image.
        entered = self._execs_in_flight()
        filled: List[Held] = []
        for event in reversed(events):
            held_event = Held(event, sources=self._sources.pop(id(event), None))
            if isinstance(event, OpenEvent) and event.fd is not None and event.tid is not None:
                opened = self._opened.get(id(event))
                key = (event.tid, event.fd)
                if (event.path is None and opened is not None and complete is not None
                        and key not in later_fds):
                    held_event.fd = self._read_fd(event, *opened)
                later_fds.add(key)
            elif isinstance(event, ExecEvent) and event.retval == 0 and event.pid is not None:
                if (event.argv is None and event.pid not in later_execs and complete is not None
                        and entered is not None and event.pid not in entered):
                    held_event.argv = self._read_argv(event)
                later_execs.add(event.pid)
            filled.append(held_event)
        self._opened.clear()
        self._sources.clear()
        filled.reverse()
        self.awaiting.extend(filled)
        return self._release(complete)

    def _settle_batch(self, events: List[Event], complete: int) -> List[Event]:
        """fill's common case (nothing waits, no event needs /proc, some comm or uid came
        from /proc): ``_release`` one reading at a time instead of one event at a time,
        since a busy thread's events share their readings. The first event whose reading
        is not due yet waits, with every event after it, as ``_release`` would make it."""
        self.tasks.settle(complete, self.ledger.lost)
        sources = self._sources
        lost = self.ledger.lost
        judged: Dict[int, Tuple[bool, bool]] = {}  # id(reading) -> (due, records missing)
        out: List[Event] = []
        for index, event in enumerate(events):
            src = sources.get(id(event))
            if src is None:
                out.append(event)
                continue
            comm_from, uid_from = src
            spoil: Dict[str, object] = {}
            for reading, field in ((comm_from, "comm"), (uid_from, "uid")):
                if reading is None:
                    continue
                verdict = judged.get(id(reading))
                if verdict is None:
                    verdict = judged[id(reading)] = (
                        reading.read_ns + SLACK_NS <= complete,
                        lost(reading.since, reading.read_ns))
                if not verdict[0]:
                    self.awaiting.extend(Held(e, sources=sources.get(id(e)))
                                         for e in events[index:])
                    sources.clear()
                    self._prune(complete)
                    return out
                if verdict[1] or (reading.comm_changed if field == "comm"
                                  else reading.uid_changed):
                    spoil[field] = None
            out.append(fill_in(event, spoil) if spoil else event)
        sources.clear()
        self._prune(complete)
        return out

    def _execs_in_flight(self) -> Optional[Set[int]]:
        """Processes with an exec entered but not yet ended (None: one whose caller's
        process is not known, which could be any)."""
        pids: Set[int] = set()
        if self.kind is not Kind.EXEC:
            return pids
        for tid, pend in self.pending.items():
            pid = self.threads.tgid(tid, pend.timestamp_ns)
            if pid is None:
                return None
            pids.update((tid, pid))
        return pids

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
        if complete is not None:
            self.tasks.settle(complete, self.ledger.lost)
        awaiting = self.awaiting
        while awaiting:
            held = awaiting[0]
            if complete is not None and held.ready_at() > complete:
                break
            event, proof = held.event, held.fd
            if held.sources is not None:
                event = self._settle(event, held.sources, complete)
            argv = held.argv
            if (argv is not None and complete is not None and isinstance(event, ExecEvent)
                    and not argv.reading.image_changed):
                event = fill_in(event, {"argv": argv.argv, "argv_truncated": argv.truncated,
                                        "argv_source": Source.PROCFS})
            if (proof is not None and isinstance(event, OpenEvent) and event.fd is not None
                    and event.tid is not None):
                if complete is not None and proof.read_ns > complete:
                    break
                if complete is not None and self.ledger.proven(
                        proof.table, event.tid, event.fd, proof.start, proof.read_ns,
                        proof.own):
                    event = fill_in(event, {"path": proof.path, "path_source": Source.PROCFS})
            awaiting.popleft()
            out.append(event)
        if complete is not None:
            self._prune(complete)
        return out

    def _prune(self, complete: int) -> None:
        """Let the fd ledger forget what no event still waiting can ask about."""
        if self.fd_proof and self.ledger.prune_due():
            awaiting = self.awaiting
            floor = min([complete] + [h.fd.start for h in awaiting if h.fd is not None]
                        + [r.since for h in awaiting for r in h.sources or () if r is not None]
                        + [p.timestamp_ns for p in self.pending.values()])
            self.ledger.prune(floor)

    def _settle(self, event: Event, sources: Sources, complete: Optional[int]) -> Event:
        """Keep a comm or uid read from /proc only if no record (nor a loss) between
        its record and the reading could have changed it."""
        assert not isinstance(event, LostEvent)
        comm_from, uid_from = sources

        def spoiled(reading: Optional[Reading], changed: bool) -> bool:
            return reading is not None and (complete is None or changed or self.ledger.lost(
                reading.since, reading.read_ns))

        if spoiled(comm_from, comm_from is not None and comm_from.comm_changed):
            event = fill_in(event, {"comm": None})
        if spoiled(uid_from, uid_from is not None and uid_from.uid_changed):
            event = fill_in(event, {"uid": None})
        return event

    def _read_argv(self, event: ExecEvent) -> Optional[ArgvProof]:
        """argv from /proc while the process runs the exec'd file, to be proven (no
        later exec of the pid, which can run the same file again, before the reading)."""
        assert event.pid is not None
        if event.filename is None:
            return None
        if self.proc.image_read is not None:
            exe, cwd, argv, read_ns = self.proc.image_read(event.pid)
        else:
            exe, cwd, argv, read_ns = self._image(event.pid)
        if exe is None or argv is None or not _same_file(event.filename, exe, cwd):
            return None
        reading = self.tasks.watch(event.pid, event.timestamp_ns, read_ns)
        return ArgvProof(reading, argv[: self.max_args], len(argv) > self.max_args)

    def _image(self, pid: int) -> ImageReading:
        """exe, cwd and cmdline of one image: exe is read before and after."""
        exe = self.proc.exe(pid)
        cwd = self.proc.cwd(pid)
        argv = self.proc.cmdline(pid)
        if self.proc.exe(pid) != exe:
            exe = None
        return exe, cwd, argv, time.monotonic_ns()

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
        value = line.args.get("s")
        if not isinstance(value, bytes):
            value = None
        fault = "s" in line.faults or value is None
        if role.what == ARG and INDEX in line.args:  # one event for every argv slot
            index = parse_int(line.args.get(INDEX))
            if index is None or index >= self.max_args:
                return
            role = Role(ARG, index)
        data = per_tid.get(key)
        if data is None or role in data.seen:
            # A second record of one role: a new call with the same argv or path pointer,
            # the last one's syscall records lost. Its strings are not this call's.
            data = per_tid[key] = ProbeData()
        data.seen.add(role)
        if role.what == PATH:
            data.path = None if fault else value
        elif role.what == FN:
            data.fn = None if fault else value
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
        comm = line.args.get("comm")
        self.tasks.created(child, comm if isinstance(comm, bytes) else None, line.pid,
                           line.timestamp_ns)
        if self.fd_proof:
            self.ledger.tid_reused(child, line.timestamp_ns)
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
        """A traced call entered (``line.event`` is one of them: feed checked)."""
        out: List[Event] = []
        old = self.pending.pop(line.pid, None)
        if old is not None:  # its exit was lost
            out.append(self._emit(line.pid, line.pid, old, None, old.timestamp_ns))
        args = line.args
        event = line.event
        if self._execs:
            ts = line.timestamp_ns
            self.tasks.exec_entered(line.pid, self.threads.tgid(line.pid, ts), ts)
            key = parse_hex(args.get("argv"))
            pend = Pending(_CALL_NAME[event], line.timestamp_ns, self._task(line), key)
        else:
            # The binary reader gives ints; the text reader, hex text (parse_hex).
            raw = args.get("filename")
            if raw is None:
                raw = args.get("pathname")
            key = raw if type(raw) is int else parse_hex(raw)
            flags: Optional[int] = None  # openat2's are in struct open_how: not readable
            if event == "sys_creat":
                flags = _CREAT_FLAGS
            elif event != "sys_openat2":
                raw = args.get("flags")
                flags = signed(raw if type(raw) is int else parse_hex(raw), 32)
            raw = args.get("mode")
            mode = raw if type(raw) is int else parse_hex(raw)
            dfd: Optional[int] = None
            if event in _DFD_CALLS:
                raw = args.get("dfd")
                dfd = signed(raw if type(raw) is int else parse_hex(raw), 32)
            pend = Pending(_CALL_NAME[event], line.timestamp_ns,
                           self.tasks.get(line.pid, line.timestamp_ns), key,
                           dfd=dfd, flags=flags, mode=mode)
        self.pending[line.pid] = pend
        while len(self.pending) > MAX_THREADS:
            tid = next(iter(self.pending))
            stale = self.pending.pop(tid)
            out.append(self._emit(tid, tid, stale, None, stale.timestamp_ns))
        return out

    def _exit(self, line: TraceLine) -> List[Event]:
        """A traced call returned (``line.event`` is one of them: feed checked)."""
        ret = line.args.get("ret")
        ret = signed(ret if type(ret) is int else parse_hex(ret), 64)
        pend = self.pending.pop(line.pid, None)
        out: List[Event] = []
        if pend is not None and self._unproven(pend, line.timestamp_ns):
            self._drop_unproven(line.pid)
            pend = None
        elif pend is not None and pend.syscall != _CALL_NAME[line.event]:
            out.append(self._emit(line.pid, line.pid, pend, None, pend.timestamp_ns))
            pend = None
        if pend is None:
            if self._execs and ret == 0:
                return out  # the success was already reported at sched_process_exec
            self.orphans += 1
            pend = Pending(_CALL_NAME[line.event], line.timestamp_ns, self._task(line), None,
                           entered=False)
        out.append(self._emit(line.pid, line.pid, pend, ret, line.timestamp_ns))
        return out

    def _exec_done(self, line: TraceLine) -> List[Event]:
        pid = parse_int(line.args.get("pid")) or line.pid
        old = parse_int(line.args.get("old_pid")) or pid
        ts = line.timestamp_ns
        if self.fd_proof:  # close-on-exec fds go; the table may be unshared
            self.ledger.changed(self.threads.files(old, ts), 0, ALL_FDS, ts, ts)
        self.threads.execed(old, pid)
        self.tasks.execed(old, pid, ts)
        name = line.args.get("filename")
        filename = name if isinstance(name, bytes) else None
        self.tasks.exec_named(pid, self._exec_comm(pid, filename, ts), ts)
        if self.kind is not Kind.EXEC:
            return []
        pend = self.pending.pop(old, None)
        if pend is not None and self._unproven(pend, ts):
            self._drop_unproven(old)
            pend = None
        if pend is None:  # its entry was not seen: execve or execveat, unknown
            pend = Pending(None, ts, _NO_TASK, None)
        pend.task = self.tasks.get(pid, ts)
        return [self._emit(old, pid, pend, 0, ts, filename)]

    def _unproven(self, pend: Pending, ts: int) -> bool:
        """May records between ``pend``'s entry and its end at ``ts`` be missing? Then
        that entry may be an earlier call's whose end was lost, and this end another's."""
        return pend.timestamp_ns <= self._lost_until + SLACK_NS \
            or self.ledger.lost(pend.timestamp_ns, ts)

    def _drop_unproven(self, tid: int) -> None:
        """An end that cannot be paired with the entry waiting: it is reported with
        what its own record says, and the entry (perhaps of a call whose end was lost,
        which is then missing, as lost calls are) and the thread's probe strings go."""
        self.orphans += 1
        self.probes.pop(tid, None)

    def _exec_comm(self, pid: int, filename: Optional[bytes], ts: int) -> Optional[bytes]:
        """The comm an exec gives: the kernel names the image after the file it was
        given, except for fexecve (``/dev/fd/N``), named after the file itself since
        6.14 (N before): then only the exec's own task_rename says, if no record
        between it and the exec may be missing (else the last rename could be an
        earlier one)."""
        if filename is not None and not _FD_ONLY.fullmatch(filename):
            return os.path.basename(filename)[:15]
        renamed = self.tasks.last_rename(pid)
        if renamed is None or renamed <= self._lost_until + SLACK_NS \
                or self.ledger.lost(renamed, ts):
            return None
        return self.tasks.get(pid, ts).comm

    # -- building events ---------------------------------------------------

    def _task(self, line: TraceLine) -> Task:
        """The comm and uid of the thread that wrote ``line``, when it wrote it."""
        return self.tasks.get(line.pid, line.timestamp_ns)

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
        event: Event
        if self.kind is not Kind.EXEC:
            event = self._open_event(tid, pend, ret, ts, probe)
        elif ret == 0:  # exec'd: the task now leads its process
            event = self._exec_event(pid, pid, pend, ret, ts, filename, probe)
        else:
            # Not (known to be) exec'd: the calling thread, of its process as the task
            # records prove it, else None: a non-leader thread's tid is no pid.
            event = self._exec_event(tid, self.threads.tgid(tid, ts), pend, ret, ts,
                                     filename, probe)
        task = pend.task
        if task.comm_from is not None or task.uid_from is not None:
            self._sources[id(event)] = (task.comm_from, task.uid_from)
        return event

    def _ppid(self, pid: Optional[int], ts: int) -> Optional[int]:
        if pid is None:
            return None
        parent = self.parents.get(pid)
        if parent is not None:  # the forking thread: its process, proven, or None
            return self.threads.tgid(parent, ts)
        return self.proc.ppid(pid)

    def _exec_event(self, tid: int, pid: Optional[int], pend: Pending, ret: Optional[int],
                    ts: int, filename: Optional[bytes],
                    probe: Optional[ProbeData]) -> ExecEvent:
        filename_source: Optional[Source] = Source.TRACEPOINT if filename is not None else None
        argv: Optional[Tuple[bytes, ...]] = None
        argv_source: Optional[Source] = None
        truncated = False
        if probe is not None:
            if filename is None and probe.fn is not None:
                filename, filename_source = probe.fn, self.probe_source
            argv, truncated = probe.argv(self.max_args)
            argv_source = self.probe_source if argv is not None else None
        return make_exec(
            timestamp_ns=ts, pid=pid, tid=tid, ppid=self._ppid(pid, ts),
            uid=pend.task.uid, comm=pend.task.comm, filename=filename, argv=argv, retval=ret,
            argv_truncated=truncated, filename_source=filename_source,
            argv_source=argv_source, syscall=pend.syscall,
        )

    def _open_event(self, tid: int, pend: Pending, ret: Optional[int], ts: int,
                    probe: Optional[ProbeData]) -> OpenEvent:
        fd = ret if ret is not None and ret >= 0 else None
        err = -ret if ret is not None and ret < 0 else None
        # never the tid unless it is proven the process's
        pid, table = self.threads.get(tid, ts)
        path: Optional[bytes] = None
        source: Optional[Source] = None
        if probe is not None and probe.path is not None:
            path, source = probe.path, self.probe_source
        event = make_open(
            timestamp_ns=ts, pid=pid, tid=tid, uid=pend.task.uid, comm=pend.task.comm,
            path=path, flags=pend.flags, mode=pend.mode, fd=fd, errno=err,
            path_source=source, syscall=pend.syscall, dfd=pend.dfd,
        )
        if fd is not None and self.fd_proof and ret is not None:
            own = self.ledger.changed(table, fd, fd, ts, ts)  # fd N was free before this
            self._opened[id(event)] = (pend.timestamp_ns if pend.entered else None, table, own)
        return event


def _open_calls() -> Optional[Callable[[Correlator, List[TraceLine]], List[Event]]]:
    """The C version of feed over a batch of an open session's records (_opencalls.c), or
    None: not built, or switched off."""
    module = compiled.load("hybridtrace.backends.ftrace._opencalls")
    if module is None:
        return None
    fields = attrs.fields(OpenEvent)
    module.configure(
        TraceLine, ("pid", "timestamp_ns", "event", "args", "style", "faults"),
        Pending, tuple(f.name for f in attrs.fields(Pending)),
        OpenEvent, tuple(f.name for f in fields),
        tuple(None if f.default is attrs.NOTHING else f.default for f in fields),
        ("timestamp_ns", "pid", "tid", "uid", "comm", "path", "flags", "mode", "fd", "errno",
         "path_source", "syscall", "dfd"),
        ENTER, EXIT, LOST, _CALL_NAME, _DFD_CALLS, "sys_creat", "sys_openat2", _CREAT_FLAGS,
        SLACK_NS, MAX_THREADS, UNKNOWN_UID, PATH, ProbeData)
    return module.feed  # type: ignore[no-any-return]


OPEN_CALLS = _open_calls()
