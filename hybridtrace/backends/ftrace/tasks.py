"""Each thread's comm and uid at each moment, from task and syscall records.

Neither reader's records carry them usably: binary records have no comm or
uid, and trace_pipe prints the comm from a cache the kernel fills when a task
is recorded or scheduled and looks up when the text is formatted (after an
exec it can print the new image's name for the old image's records, or
``<...>``). /proc read after the fact has nothing for a process that exited.
``task_newtask`` gives a new thread's comm and its creator (whose uid it
inherits), ``task_rename`` every comm change (exec and prctl both go
through it), ``sched_process_exec`` a thread that exec'd taking over its
leader's id (with its own uid), and a successful setreuid/setresuid sets the
real uid it names. A successful setuid(x) sets it only with CAP_SETUID, which
no record shows: a thread whose real uid is 0 is taken to have it; any other
makes the uid unknown again. Fed in timestamp order, they give the comm and
uid a thread had when each of its records was written.

What no record gave is read from /proc: threads older than the session from
a listing taken once every record is enabled (``seed``), anything else (a
uid made unknown, a thread the listing missed) when first needed (comm, real
uid and start time of one task). A reading is believed only with proof: the
task then under that id started before the record (as in threads.py; the
listing is younger than every record), and no record between the record and
the reading changed what was read (a rename, a setuid-family call, an exec
taking over the id, a new task taking it). The second half is known only
once every record up to the reading has been fed, so a value read from /proc
carries its Reading, and the correlator holds the event until then and drops
what a record spoiled. The listing's readings are proven within moments of
the start; one taken later holds the events after it as long as the reader
is behind.
"""

from __future__ import annotations

import time
from typing import Callable, Dict, List, NamedTuple, Optional, Tuple

import attrs

from hybridtrace import procfs
from hybridtrace.backends.ftrace.fd_ledger import SLACK_NS
from hybridtrace.backends.ftrace.threads import started_before

NEWTASK = "task_newtask"
RENAME = "task_rename"
SETUID = "sys_setuid"
SETUID_SYSCALLS = (SETUID, "sys_setreuid", "sys_setresuid")
MAX_THREADS = 65536  # remembered threads; the oldest entry goes first
UNKNOWN_UID = -1  # uid still to be read from /proc
TaskState = Callable[[int], Optional[Tuple[int, bytes, Optional[int]]]]  # procfs.task_state


@attrs.define(eq=False, slots=True)
class Reading:
    """/proc of thread ``tid`` read by ``read_ns`` (CLOCK_MONOTONIC) for its record at
    ``since``; a record between them that may have changed a value sets its flag
    (``image_changed``: it exec'd, for argv read by the correlator)."""

    tid: int
    since: int
    read_ns: int
    comm_changed: bool = False
    uid_changed: bool = False
    image_changed: bool = False


class Task(NamedTuple):
    """A thread's comm and uid, each with the Reading it came from (None: a record)."""

    comm: Optional[bytes]
    comm_from: Optional[Reading]
    uid: Optional[int]
    uid_from: Optional[Reading]


_NOTHING = Task(None, None, None, None)


class TaskTracker:
    """tid -> Task, updated by records in the order they happened.

    ``boot_offset`` is None when record timestamps are not CLOCK_MONOTONIC:
    then /proc is never believed.
    """

    def __init__(self, read: TaskState = procfs.task_state, boot_offset: Optional[int] = None,
                 limit: int = MAX_THREADS,
                 clock: Callable[[], int] = time.monotonic_ns) -> None:
        self._read_proc = read
        self._boot_offset = boot_offset
        self._limit = limit
        # Records up to here may be missing (the correlator's loss horizon): values a
        # record before it taught are not held (_set).
        self.lost_until = -(1 << 63)
        self._clock = clock
        self._tasks: Dict[int, Task] = {}
        self._asked: Dict[int, Tuple[str, Optional[int]]] = {}  # tid -> (syscall, uid)
        self._readings: Dict[int, List[Reading]] = {}  # that a record may still spoil
        self.readings = 0  # /proc readings taken (for tests and statistics)
        self._seed: Dict[int, Tuple[bytes, Optional[int]]] = {}
        self._seed_times = (0, 0)
        self._renamed_at: Dict[int, int] = {}  # tid -> time of its last task_rename

    def seed(self, threads: Dict[int, Tuple[bytes, Optional[int]]], since: int,
             read_ns: int) -> None:
        """tid -> (comm, real uid) of every thread, listed by ``read_ns`` with every
        record enabled since ``since``: a Reading each, made when first needed."""
        self._seed = dict(threads)
        self._seed_times = (since, read_ns)

    def forget(self) -> None:
        """Records may have been lost: a rename, setuid, exec or new task among them
        would make any value held (or listed at the start) stale, so every thread's
        comm and uid is read again when next needed, and proven as such readings are."""
        self._tasks.clear()
        self._seed.clear()
        self._asked.clear()

    # -- records, in time order ---------------------------------------------

    def created(self, tid: int, comm: Optional[bytes], creator: int, ts: int) -> None:
        """``creator`` made thread ``tid`` (task_newtask): same uid, comm as recorded."""
        self._seed.pop(tid, None)  # the listing's was another task's
        self._changed(tid, ts, comm=True, uid=True)
        parent = self.get(creator, ts)
        self._set(tid, Task(comm, None, parent.uid, parent.uid_from), ts)

    def renamed(self, tid: int, comm: Optional[bytes], ts: int) -> None:
        """task_rename (``comm`` None: the record's name could not be read)."""
        self._changed(tid, ts, comm=True)
        task = self._tasks.get(tid)
        uid, uid_from = (task.uid, task.uid_from) if task is not None else (UNKNOWN_UID, None)
        self._set(tid, Task(comm, None, uid, uid_from), ts)
        self._renamed_at.pop(tid, None)
        self._renamed_at[tid] = ts
        if len(self._renamed_at) > self._limit:
            del self._renamed_at[next(iter(self._renamed_at))]

    def last_rename(self, tid: int) -> Optional[int]:
        """When the last task_rename of ``tid`` was recorded (None: none seen)."""
        return self._renamed_at.get(tid)

    def exec_named(self, pid: int, comm: Optional[bytes], ts: int) -> None:
        """``pid``'s exec at ``ts`` named it ``comm`` (None: not known), as the
        correlator worked it out: its own task_rename may have been lost."""
        self._changed(pid, ts, comm=True)
        task = self.get(pid, ts)
        self._set(pid, task._replace(comm=comm, comm_from=None), ts)

    def setuid_entered(self, tid: int, syscall: str, uid: Optional[int], ts: int) -> None:
        """A setuid-family call asks for real uid ``uid`` (None: leave it, -1)."""
        self.get(tid, ts)  # the uid before the call, if it must be read
        self._changed(tid, ts, uid=True)
        self._asked[tid] = (syscall, uid)
        if len(self._asked) > self._limit:
            del self._asked[next(iter(self._asked))]

    def setuid_returned(self, tid: int, ok: bool, ts: int) -> None:
        syscall, uid = self._asked.pop(tid, ("", None))
        self._changed(tid, ts, uid=True)
        if not ok:
            return
        task = self.get(tid, ts)
        uid_from: Optional[Reading] = None
        if syscall == SETUID:
            if task.uid_from is not None and task.uid_from.uid_changed:
                uid = UNKNOWN_UID  # the uid before the call was read after a change
            elif task.uid == uid:
                return
            elif task.uid == 0:
                uid_from = task.uid_from  # root before: stands or falls with that value
            else:
                uid = UNKNOWN_UID
        elif syscall not in SETUID_SYSCALLS:
            uid = UNKNOWN_UID  # its entry was not seen
        if uid is not None:
            self._set(tid, task._replace(uid=uid, uid_from=uid_from), ts)

    def execed(self, old_tid: int, pid: int, ts: int) -> None:
        """Thread ``old_tid`` exec'd and now leads ``pid`` (sched_process_exec; de_thread):
        its credentials came with it, not the old leader's; its comm was renamed under
        ``pid`` already (task_rename comes first)."""
        self._changed(pid, ts, image=True)
        if old_tid == pid:
            return
        self._seed.pop(pid, None)  # the old leader's
        self._changed(pid, ts, comm=True, uid=True)
        self._changed(old_tid, ts, comm=True, uid=True, image=True)
        old = self._tasks.pop(old_tid, None)
        leader = self._tasks.get(pid)
        uid, uid_from = (old.uid, old.uid_from) if old is not None else (UNKNOWN_UID, None)
        if old is None and old_tid in self._seed:
            uid, uid_from = self._from_seed(old_tid)[2:]
        if leader is not None:
            comm, comm_from = leader.comm, leader.comm_from
        else:  # read now: the task under ``pid`` is the thread that exec'd
            comm, read_uid, comm_from = self._read(pid, ts)
            if uid == UNKNOWN_UID:
                uid, uid_from = read_uid, comm_from
        self._set(pid, Task(comm, comm_from, uid, uid_from), ts)

    def exec_entered(self, tid: int, pid: Optional[int], ts: int) -> None:
        """Thread ``tid`` of process ``pid`` (None: not known) entered execve(at). The
        kernel gives the process its new executable and argv before it writes
        sched_process_exec, so /proc read after this entry may already show the next
        image: argv read for an earlier exec is spoiled (of every process, when the
        caller's is not known)."""
        for watched in list(self._readings) if pid is None else (tid, pid):
            self._changed(watched, ts, image=True)

    # -- queries --------------------------------------------------------------

    def get(self, tid: int, ts: int) -> Task:
        """The comm and uid thread ``tid`` had when its record at ``ts`` was written."""
        task = self._tasks.get(tid)
        if task is None:
            task = self._from_seed(tid)
            if task is _NOTHING:
                comm, uid, reading = self._read(tid, ts)
                task = Task(comm, reading, uid, reading)
            self._set(tid, task)
        elif task.uid == UNKNOWN_UID:
            seeded = self._from_seed(tid)
            if seeded is _NOTHING:
                _comm, uid, reading = self._read(tid, ts)
                seeded = Task(None, None, uid, reading)
            task = task._replace(uid=seeded.uid, uid_from=seeded.uid_from)
            self._set(tid, task)
        return task

    def watch(self, tid: int, since: int, read_ns: int) -> Reading:
        """A reading of /proc made elsewhere (argv), for the records to judge."""
        reading = Reading(tid, since, read_ns)
        self._watch(reading)
        return reading

    def settle(self, complete: int, lost: Callable[[int, int], bool]) -> None:
        """Every record up to ``complete`` was fed: older readings are final (spoiled
        as well where ``lost(since, read_ns)`` says records may be missing)."""
        for tid in list(self._readings):
            kept = []
            for reading in self._readings[tid]:
                if reading.read_ns + SLACK_NS > complete:
                    kept.append(reading)
                    continue
                if lost(reading.since, reading.read_ns):
                    reading.comm_changed = reading.uid_changed = reading.image_changed = True
            if kept:
                self._readings[tid] = kept
            else:
                del self._readings[tid]

    # -- inside -------------------------------------------------------------------

    def _set(self, tid: int, task: Task, ts: Optional[int] = None) -> None:
        """Hold ``task`` for ``tid``; what a record at ``ts`` taught is not held when
        records before ``lost_until`` may be missing (one after it may have changed
        the value): comm unknown, uid read again (a Reading, proven or not)."""
        if ts is not None and ts <= self.lost_until:
            if task.comm_from is None:
                task = task._replace(comm=None)
            if task.uid_from is None:
                task = task._replace(uid=UNKNOWN_UID)
        tasks = self._tasks
        tasks.pop(tid, None)  # re-insert: the entry becomes the newest
        tasks[tid] = task
        if len(tasks) > self._limit:
            del tasks[next(iter(tasks))]

    def _from_seed(self, tid: int) -> Task:
        """The listing's values for ``tid`` as a Reading (taken once), or _NOTHING.

        Every record that can change them asks for them first, or replaces them
        from the record itself, so the Reading is watched before any such record."""
        listed = self._seed.pop(tid, None)
        if listed is None:
            return _NOTHING
        reading = Reading(tid, *self._seed_times)
        self._watch(reading)
        return Task(listed[0], reading, listed[1], reading)

    def _read(self, tid: int, ts: int) -> Tuple[Optional[bytes], Optional[int],
                                                Optional[Reading]]:
        """(comm, uid, reading) from /proc, if the task there provably wrote the record."""
        if self._boot_offset is None:
            return None, None, None
        state = self._read_proc(tid)
        read_ns = self._clock()
        if state is None or not started_before(state[0], ts, self._boot_offset):
            return None, None, None
        self.readings += 1
        reading = Reading(tid, ts, read_ns)
        self._watch(reading)
        return state[1], state[2], reading

    def _watch(self, reading: Reading) -> None:
        self._readings.setdefault(reading.tid, []).append(reading)
        if len(self._readings) > self._limit:
            for spoiled in self._readings.pop(next(iter(self._readings))):
                # no longer watched: nothing will prove it
                spoiled.comm_changed = spoiled.uid_changed = spoiled.image_changed = True

    def _changed(self, tid: int, ts: int, comm: bool = False, uid: bool = False,
                 image: bool = False) -> None:
        """A record at ``ts`` may have changed ``tid``'s comm, uid or image: readings
        taken after it saw the new value, which earlier records must not get."""
        for reading in self._readings.get(tid, ()):
            if ts <= reading.read_ns + SLACK_NS:
                reading.comm_changed |= comm
                reading.uid_changed |= uid
                reading.image_changed |= image
