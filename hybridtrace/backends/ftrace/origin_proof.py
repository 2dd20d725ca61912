"""Where an ftrace event came from, read from /proc and proven, else None.

Records name a thread only; its cgroup and namespaces come from /proc/TID,
read after the fact. A reading is believed for a record only when

- the task living under that id now started before the record (its start
  time, read before and after, in CLOCK_BOOTTIME ticks): it wrote it;
- for what a task can change (its mount namespace with setns or unshare, its
  cgroup when anyone migrates it): no such change, and no exit of that id,
  was recorded between the record and the reading, every record up to the
  later of the two having been read (``complete``), and no records were lost
  in between. The pid namespace and the pids in it never change in a task's
  life, so those need the first proof only.

A reading is kept per thread and reused for its later records under the same
proof, so a busy thread costs one set of /proc reads, not one per event.
"""

from __future__ import annotations

import bisect
import collections
import os
import time
from typing import Callable, Deque, Dict, List, Optional, Tuple

import attrs

from hybridtrace import compiled, procfs
from hybridtrace.backends.ftrace.fd_ledger import INF
from hybridtrace.backends.ftrace.threads import TICK_NS
from hybridtrace.backends.ftrace.trace_record import EXIT, TraceLine
from hybridtrace.cgroups import CgroupTree, proc_cgroup
from hybridtrace.containers import container_id
from hybridtrace.events import Event, ExecEvent, LostEvent, OpenEvent, fill_in, fill_origin

# What may change a task's mount namespace or cgroup, and its end: enabled with
# the stream's events where the kernel has them (all of them, or no proof).
LEDGER_EVENTS = [("syscalls", "sys_exit_setns"), ("syscalls", "sys_exit_unshare"),
                 ("cgroup", "cgroup_attach_task"), ("cgroup", "cgroup_transfer_tasks")]
_CHANGES = {"sys_setns", "sys_unshare"}  # as records name both syscalls' exits
_MIGRATIONS = {"cgroup_attach_task", "cgroup_transfer_tasks"}
TASK_EXIT = "sched_process_exit"
# Every record name ChangeLedger.feed looks at: the session skips the call for the rest.
NOTED_EVENTS = frozenset(_CHANGES | _MIGRATIONS | {TASK_EXIT})
MAX_TASKS = 65536
MAX_CHANGES = 64  # kept per thread (older ones: the thread counts as changed)
_Origin = Dict[str, object]


def parse_int(value: object) -> Optional[int]:
    if isinstance(value, int):
        return value
    if isinstance(value, bytes):
        try:
            return int(value, 0)
        except ValueError:
            return None
    return None


class ChangeLedger:
    """tid -> when its namespaces or cgroup may have changed (or its id changed hands)."""

    def __init__(self, migrations_seen: bool = True) -> None:
        # With set_event_pid, a migration written by an untraced task is filtered away.
        self.migrations_seen = migrations_seen
        self._times: Dict[int, List[int]] = collections.OrderedDict()
        # Gaps: every record before _lost_before may be missing (a loss is only known to
        # be somewhere before the moment it was counted, so one bound covers them all,
        # however many there were), and _gaps holds the others (recording stopped).
        self._lost_before: Optional[int] = None
        self._gaps: List[Tuple[int, int]] = []
        self._blurred: Dict[int, Tuple[int, int]] = {}

    def feed(self, line: TraceLine) -> bool:
        """Note a record that concerns us; True when it is ours alone (not the correlator's)."""
        event = line.event
        if event in _CHANGES and line.style == EXIT:
            self._note(line.pid, line.timestamp_ns)
            return True
        if event in _MIGRATIONS:
            tid = parse_int(line.args.get("pid"))
            if tid is not None:
                self._note(tid, line.timestamp_ns)
            return True
        if event == TASK_EXIT:
            tid = parse_int(line.args.get("pid"))
            self._note(line.pid if tid is None else tid, line.timestamp_ns)
        return False

    def _note(self, tid: int, ts: int) -> None:
        times = self._times.pop(tid, None) or []
        bisect.insort(times, ts)
        if len(times) > MAX_CHANGES:
            # Too many to keep: the thread counts as changing all along from its first.
            self._blurred[tid] = (min(times[0], self._blurred.get(tid, (INF, 0))[0]), INF)
            times = times[-1:]
        self._times[tid] = times
        if len(self._times) > MAX_TASKS:
            del self._times[next(iter(self._times))]
            self.gap(-INF, ts)  # forgot a thread's changes: anything before is moot

    def gap(self, start: int, end: int = INF) -> None:
        """Records between ``start`` and ``end`` may be missing."""
        if start == -INF:
            self._lost_before = end if self._lost_before is None else max(self._lost_before, end)
        else:
            self._gaps.append((start, end))

    def changed(self, tid: int, lo: int, hi: int) -> bool:
        """Whether ``tid`` may have changed (or ended) between ``lo`` and ``hi``."""
        if (self._lost_before is not None and lo <= self._lost_before) or (
                self._gaps and any(start <= hi and lo <= end for start, end in self._gaps)):
            return True
        blur = self._blurred.get(tid)
        if blur is not None and blur[0] <= hi:
            return True
        times = self._times.get(tid)
        if not times:
            return False
        i = bisect.bisect_left(times, lo)
        return i < len(times) and times[i] <= hi


@attrs.frozen(slots=True)
class TaskReading:
    """One thread's /proc, read at ``read_ns`` (CLOCK_MONOTONIC)."""

    start_ticks: int
    read_ns: int
    pidns: Optional[int]
    mntns: Optional[int]
    cgroup: Optional[bytes]
    nstgid: Tuple[int, ...]  # the process's ids, outermost namespace first
    nspid: Tuple[int, ...]  # the thread's


def _ns_inode(tid: int, name: str) -> Optional[int]:
    try:
        return os.stat(f"{procfs.PROC}/{tid}/ns/{name}").st_ino
    except OSError:
        return None


def _id_list(text: bytes, name: bytes) -> Tuple[int, ...]:
    for line in text.split(b"\n"):
        if line.startswith(name + b":"):
            try:
                return tuple(int(x) for x in line[len(name) + 1:].split())
            except ValueError:
                return ()
    return ()


def read_task(tid: int, clock: Callable[[], int] = time.monotonic_ns) -> Optional[TaskReading]:
    """/proc/TID's namespaces, cgroup and ids, all from one task (same start time around)."""
    before = procfs.start_ticks(tid)
    if before is None:
        return None
    pidns, mntns = _ns_inode(tid, "pid"), _ns_inode(tid, "mnt")
    raw = procfs.read_bytes(f"{procfs.PROC}/{tid}/cgroup", 1 << 16)
    status = procfs.read_bytes(f"{procfs.PROC}/{tid}/status", 1 << 16) or b""
    if procfs.start_ticks(tid) != before:
        return None
    return TaskReading(before, clock(), pidns, mntns, proc_cgroup(raw) if raw else None,
                       _id_list(status, b"NStgid"), _id_list(status, b"NSpid"))


Reader = Callable[[int], Optional[TaskReading]]
_Queued = Tuple[Event, Optional[TaskReading], Optional[TaskReading]]


def _origins() -> Optional[Callable[[OriginFiller, List[Event], Optional[int]], List[Event]]]:
    """OriginFiller.fill in C (_origins.c), or None: not built, or switched off."""
    module = compiled.load("hybridtrace.backends.ftrace._origins")
    if module is None:
        return None
    module.configure(OpenEvent, ("timestamp_ns", "pid", "tid", *_FILL_ORIGIN_ORDER),
                     TaskReading, ("start_ticks", "read_ns", "pidns", "mntns", "cgroup",
                                   "nstgid", "nspid"), TICK_NS)
    return module.fill  # type: ignore[no-any-return]


# fill_origin's arguments, in its order: how _origins.c stores them.
_FILL_ORIGIN_ORDER = ("pidns", "ns_pid", "ns_tid", "mntns", "cgroup", "cgroup_id",
                      "container_id")


class OriginFiller:
    """Fills events' origin fields from /proc with proof; holds each until it can judge it.

    ``boot_offset`` is CLOCK_BOOTTIME - CLOCK_MONOTONIC (None: records are not on
    CLOCK_MONOTONIC, and nothing read later can be tied to them: all None).
    ``ledger_ok`` is False when the change records could not be enabled: then
    the mount namespace and cgroup are None (the rest needs no ledger).
    """

    def __init__(self, boot_offset: Optional[int], ledger: ChangeLedger, ledger_ok: bool,
                 tree: Optional[CgroupTree] = None, read: Reader = read_task) -> None:
        self._boot = boot_offset
        self.ledger = ledger
        self._ledger_ok = ledger_ok
        self._tree = tree
        self._read = read
        self._cache: Dict[int, TaskReading] = {}  # oldest first
        # cgroup path -> (its id, the container it names): both cost a walk or a parse.
        self._ids: Dict[bytes, Tuple[Optional[int], Optional[str]]] = {}
        self.awaiting: Deque[_Queued] = collections.deque()
        # Batches through the C loop when built (this is its definition).
        self._fill_c = ORIGINS

    def _wrote(self, reading: Optional[TaskReading], ts: int) -> bool:
        """The task read started before ``ts`` (by a whole tick): it wrote that record."""
        return (reading is not None and self._boot is not None
                and (reading.start_ticks + 1) * TICK_NS <= ts + self._boot)

    def _reading(self, tid: int, ts: int) -> Optional[TaskReading]:
        """The thread's reading for its record at ``ts``: the cached one where it is as good
        as a new one, else /proc now.

        A cached reading made after the record, of a task that started before it, is of
        the task that wrote it (alive at both times), and a new one could prove no more:
        what may have changed between record and reading would only span longer. One
        made before the record is reused only if nothing (nor a loss) was noted between:
        the thread may have exited and its id gone to the writer. (Re-reading the first
        kind after every loss made each event of a busy thread read /proc: 100 µs each,
        more loss.)"""
        cached = self._cache.get(tid)
        if cached is not None and self._wrote(cached, ts) and (
                ts <= cached.read_ns or not self.ledger.changed(tid, cached.read_ns, ts)):
            return cached
        fresh = self._read(tid)
        if fresh is None or not self._wrote(fresh, ts):
            return None
        self._cache.pop(tid, None)
        self._cache[tid] = fresh
        if len(self._cache) > MAX_TASKS:
            del self._cache[next(iter(self._cache))]
        return fresh

    def fill(self, events: List[Event], complete: Optional[int]) -> List[Event]:
        """Queue ``events`` with their readings; return those that can be judged now."""
        if self._fill_c is not None:
            return self._fill_c(self, events, complete)  # type: ignore[no-any-return]
        self.awaiting.extend(map(self._queued, events))
        return self.release(complete)

    def _queued(self, event: Event) -> _Queued:
        """``event`` with the readings of its thread and, for an exec, its parent."""
        # No thread to read (an SQPOLL io_uring open has no tid): no origin.
        if isinstance(event, LostEvent) or self._boot is None or event.tid is None:
            return event, None, None
        own = self._reading(event.tid, event.timestamp_ns)
        parent = None
        if isinstance(event, ExecEvent) and event.ppid:
            parent = self._reading(event.ppid, event.timestamp_ns)
        return event, own, parent

    def release(self, complete: Optional[int]) -> List[Event]:
        """Events in order, up to the first whose reading cannot be judged yet: every
        record up to the later of the event and the reading must have been read."""
        out: List[Event] = []
        awaiting = self.awaiting
        while awaiting:
            event, own, parent = awaiting[0]
            if (own is not None and complete is not None
                    and complete < max(own.read_ns, event.timestamp_ns)):
                break
            awaiting.popleft()
            out.append(self._apply(event, own, parent, complete))
        return out

    def flush(self) -> List[Event]:
        return self.release(INF)

    def _apply(self, event: Event, own: Optional[TaskReading], parent: Optional[TaskReading],
               complete: Optional[int]) -> Event:
        if own is None or isinstance(event, LostEvent):
            return event
        tid, pid, nspid, nstgid = event.tid, event.pid, own.nspid, own.nstgid
        ts, read_ns = event.timestamp_ns, own.read_ns
        lo, hi = (ts, read_ns) if ts <= read_ns else (read_ns, ts)
        mntns = cgroup = cgroup_id = container_id = None
        # What a task can change: only with no change nor loss recorded in between.
        if (self._ledger_ok and complete is not None and complete >= hi
                and tid is not None and not self.ledger.changed(tid, lo, hi)):
            mntns = own.mntns
            if self.ledger.migrations_seen and own.cgroup is not None:
                cgroup = own.cgroup
                cgroup_id, container_id = self._cgroup_ids(cgroup)
        fill_origin(event, own.pidns,
                    nstgid[-1] if nstgid and (pid is None or nstgid[0] == pid) else None,
                    nspid[-1] if nspid and nspid[0] == tid else None,
                    mntns, cgroup, cgroup_id, container_id)
        if isinstance(event, ExecEvent):
            fill_in(event, {"ns_ppid": self._ns_ppid(event, own, parent)})
        return event

    def _cgroup_ids(self, path: bytes) -> Tuple[Optional[int], Optional[str]]:
        """The cgroup's id and the container it names (cached per path)."""
        found = self._ids.get(path)
        if found is None:
            if len(self._ids) >= MAX_TASKS:
                self._ids.clear()
            tree = self._tree = self._tree or CgroupTree.here()
            found = self._ids[path] = (tree.id_of(path), container_id(path))
        return found

    @staticmethod
    def _ns_ppid(event: ExecEvent, own: TaskReading, parent: Optional[TaskReading]
                 ) -> Optional[int]:
        """The parent as getppid() shows it in the task's own pid namespace."""
        if event.ppid == 0:
            return 0
        if parent is None or not parent.nstgid or not own.nspid:
            return None
        if parent.nstgid[0] != event.ppid:
            return None
        if parent.pidns is not None and parent.pidns == own.pidns:
            return parent.nstgid[-1]
        if len(parent.nstgid) < len(own.nspid):
            return 0  # the parent is in an outer namespace: the task sees no parent id
        return None


ORIGINS = _origins()
