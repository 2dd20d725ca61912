"""Turning trace_pipe records into ExecEvent and OpenEvent.

The static tracepoints are the authority: sched_process_exec says an exec
succeeded, sys_exit_execve(at) with a negative result says one failed, and
sys_exit_open* gives every open's fd or errno. Probe records (uprobe, kprobe,
eprobe) only add strings; they are paired with their syscall by the pointer
both show (``k``). What no record gives comes from /proc while the process
lives, or stays None. Per-thread state is bounded: a thread whose exit record
never arrives is emitted with an unknown result when it ages out.
"""

from __future__ import annotations

import os
from typing import Callable, Dict, FrozenSet, Iterable, List, Optional, Set, Tuple

import attrs

from hybridtrace import procfs
from hybridtrace.backends.ftrace.pipe import ENTER, EXIT, LOST, ArgValue, TraceLine
from hybridtrace.backends.ftrace.probes import ARG, FN, INDEX, MORE, PATH, Role
from hybridtrace.events import Event, ExecEvent, OpenEvent, Source
from hybridtrace.request import Kind

MAX_THREADS = 4096  # threads with state in flight before the oldest is aged out
MAX_FORKS = 65536  # child -> parent entries remembered
UNKNOWN_COMM = b"<...>"
EXEC_SYSCALLS = ("sys_execve", "sys_execveat")
OPEN_SYSCALLS = ("sys_open", "sys_openat", "sys_openat2", "sys_creat")
EXEC_DONE = "sched_process_exec"  # the authority that an exec succeeded


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
                 max_args: int, proc: ProcLookup = ProcLookup()) -> None:
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
        self.records = 0  # records fed
        self.orphans = 0  # exits whose entry was never seen

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
        if line.style == ENTER:
            return self._enter(line)
        if line.style == EXIT:
            return self._exit(line)
        return []

    def feed_all(self, lines: Iterable[TraceLine],
                 later: Optional[Callable[[], Later]] = None) -> List[Event]:
        """Feed a batch, then fill from /proc what no record gave (see ``fill``)."""
        out: List[Event] = []
        self._uids.clear()  # /proc is read once per pid per batch, after the fact anyway
        for line in lines:
            out += self.feed(line)
        return self.fill(out, later)

    def flush(self) -> List[Event]:
        """Emit calls still waiting for their exit (end of session)."""
        out: List[Event] = []
        while self.pending:
            tid = next(iter(self.pending))
            pend = self.pending.pop(tid)
            out.append(self._emit(tid, tid, pend, None, pend.timestamp_ns))
        self.probes.clear()
        return self.fill(out)

    def fill(self, events: List[Event],
             later: Optional[Callable[[], Later]] = None) -> List[Event]:
        """argv and paths from /proc, for events whose strings no record gave.

        Only the last exec of a pid and the last open of a (pid, fd) in the
        batch may look: an earlier one's fd was closed and reused, or its
        image replaced, by the time we read. ``later()`` names the (tid, fd)
        opens and tids' execs already read but not yet due (the reader holds
        them back): they count as later too. It is asked only when some event
        needs /proc.
        """
        if not any(_needs_proc(e) for e in events):
            return events
        held = later() if later is not None else Later()
        later_fds: Set[Tuple[int, int]] = set(held.fds)
        later_execs: Set[int] = set(held.execs)
        out: List[Event] = []
        for event in reversed(events):
            if isinstance(event, OpenEvent) and event.fd is not None:
                key = (event.pid, event.fd)
                if (event.path is None and key not in later_fds
                        and (event.tid, event.fd) not in later_fds):
                    path = self._fd_path(event.pid, event.fd, event.flags)
                    if path is not None:
                        event = attrs.evolve(event, path=path, path_source=Source.PROCFS)
                later_fds.add(key)
            elif isinstance(event, ExecEvent) and event.retval == 0:
                if event.argv is None and event.pid not in later_execs:
                    event = self._fill_argv(event)
                later_execs.add(event.pid)
            out.append(event)
        out.reverse()
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
                           uid=line.uid)
        out.append(self._emit(line.pid, line.pid, pend, ret, line.timestamp_ns))
        return out

    def _exec_done(self, line: TraceLine) -> List[Event]:
        if self.kind is not Kind.EXEC:
            return []
        pid = parse_int(line.args.get("pid")) or line.pid
        old = parse_int(line.args.get("old_pid")) or pid
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
            return self._exec_event(pid, pend, ret, ts, filename, probe)
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

    def _ppid(self, pid: int) -> Optional[int]:
        parent = self.parents.get(pid)
        if parent is not None:
            return self._tgid(parent) or parent
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

    def _exec_event(self, pid: int, pend: Pending, ret: Optional[int], ts: int,
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
            timestamp_ns=ts, pid=pid, tid=pid, ppid=self._ppid(pid),
            uid=self._pend_uid(pend, pid), comm=pend.comm, filename=filename, argv=argv, retval=ret,
            argv_truncated=truncated, filename_source=filename_source,
            argv_source=argv_source, syscall=pend.syscall,
        )

    def _open_event(self, tid: int, pend: Pending, ret: Optional[int], ts: int,
                    probe: Optional[ProbeData]) -> OpenEvent:
        fd = ret if ret is not None and ret >= 0 else None
        err = -ret if ret is not None and ret < 0 else None
        pid = self._tgid(tid) or tid
        path: Optional[bytes] = None
        source: Optional[Source] = None
        if probe is not None and probe.path is not None:
            path, source = probe.path, self.probe_source
        return OpenEvent(
            timestamp_ns=ts, pid=pid, tid=tid,
            uid=self._pend_uid(pend, pid), comm=pend.comm,
            path=path, flags=pend.flags, mode=pend.mode, fd=fd, errno=err,
            path_source=source, syscall=pend.syscall, dfd=pend.dfd,
        )

    def _fd_path(self, pid: int, fd: int, flags: Optional[int]) -> Optional[bytes]:
        """/proc/PID/fd/N, unless its access mode shows the fd was reused."""
        path = self.proc.fd_path(pid, fd)
        if path is None or flags is None:
            return path
        now = self.proc.fd_flags(pid, fd)
        if now is None or now & os.O_ACCMODE != flags & os.O_ACCMODE:
            return None
        return path
