"""Each thread's comm and uid at each moment, from task and syscall records.

Binary records carry neither, and what trace_pipe prints is no better: its
comm comes from a cache the kernel refreshes only when a task is scheduled
(a process that opens right after exec prints its parent's name), and /proc
read after the fact has nothing for a process that already exited.
``task_newtask`` gives a new thread's comm and its creator (whose uid it
inherits), ``task_rename`` every comm change (exec and prctl both go
through it), ``sched_process_exec`` a thread that exec'd taking over its
leader's id (with its own uid), and a successful setreuid/setresuid sets the real uid it names.
A successful setuid(x) sets it only with CAP_SETUID, which no record shows:
a thread whose real uid is 0 is taken to have it; any other makes the uid
unknown again, to be read from /proc when next needed. Fed in timestamp order,
they give the comm and uid a thread had when each of its records was
written. Threads that existed before the session are read from /proc once,
at first sight.
"""

from __future__ import annotations

from typing import Callable, Dict, Optional, Tuple

from hybridtrace import procfs

NEWTASK = "task_newtask"
RENAME = "task_rename"
SETUID = "sys_setuid"
SETUID_SYSCALLS = (SETUID, "sys_setreuid", "sys_setresuid")
MAX_THREADS = 65536  # remembered threads; the oldest entry goes first
_UNKNOWN = -1  # uid still to be read from /proc


class TaskTracker:
    """tid -> (comm, uid), updated by records in the order they happened."""

    def __init__(self, comm: Callable[[int], Optional[bytes]] = procfs.comm,
                 uid: Callable[[int], Optional[int]] = procfs.uid,
                 limit: int = MAX_THREADS) -> None:
        self._read_comm = comm
        self._read_uid = uid
        self._limit = limit
        self._tasks: Dict[int, Tuple[Optional[bytes], Optional[int]]] = {}
        self._asked: Dict[int, Tuple[str, Optional[int]]] = {}  # tid -> (syscall, uid)

    def _set(self, tid: int, comm: Optional[bytes], uid: Optional[int]) -> None:
        tasks = self._tasks
        tasks.pop(tid, None)  # re-insert: the entry becomes the newest
        tasks[tid] = (comm, uid)
        if len(tasks) > self._limit:
            del tasks[next(iter(tasks))]

    def _get(self, tid: int) -> Tuple[Optional[bytes], Optional[int]]:
        task = self._tasks.get(tid)
        if task is None:
            task = (self._read_comm(tid), _UNKNOWN)
            self._set(tid, *task)
        return task

    def created(self, tid: int, comm: Optional[bytes], creator: int) -> None:
        """``creator`` made thread ``tid`` (task_newtask): same uid, comm as recorded."""
        self._set(tid, comm, self.uid(creator))

    def renamed(self, tid: int, comm: Optional[bytes]) -> None:
        self._set(tid, comm, self._get(tid)[1])

    def setuid_entered(self, tid: int, syscall: str, uid: Optional[int]) -> None:
        """A setuid-family call asks for real uid ``uid`` (None: leave it, -1)."""
        self._asked[tid] = (syscall, uid)
        if len(self._asked) > self._limit:
            del self._asked[next(iter(self._asked))]

    def setuid_returned(self, tid: int, ok: bool) -> None:
        syscall, uid = self._asked.pop(tid, ("", None))
        if not ok:
            return
        now = self.uid(tid) if syscall == SETUID else None
        comm = self._get(tid)[0]
        if syscall == SETUID:
            uid = uid if now == 0 else None if now == uid else _UNKNOWN
        elif syscall not in SETUID_SYSCALLS:
            uid = _UNKNOWN  # its entry was not seen
        if uid is not None:
            self._set(tid, comm, uid)

    def execed(self, old_tid: int, pid: int) -> None:
        """Thread ``old_tid`` exec'd and now leads ``pid`` (sched_process_exec; de_thread):
        its credentials came with it, not the old leader's; its comm was renamed under
        ``pid`` already (task_rename comes first)."""
        if old_tid == pid:
            return
        uid = self.uid(old_tid)
        comm = self._get(pid)[0]
        self._tasks.pop(old_tid, None)
        self._set(pid, comm, uid)

    def comm(self, tid: int) -> Optional[bytes]:
        return self._get(tid)[0]

    def uid(self, tid: int) -> Optional[int]:
        return self.get(tid)[1]

    def get(self, tid: int) -> Tuple[Optional[bytes], Optional[int]]:
        """(comm, uid) of ``tid`` now, reading /proc for what is not known."""
        comm, uid = self._get(tid)
        if uid == _UNKNOWN:
            uid = self._read_uid(tid)
            self._set(tid, comm, uid)
        return comm, uid
