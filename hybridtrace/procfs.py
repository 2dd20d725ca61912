"""Reading facts about a live process from /proc, after the fact.

Backends that cannot read a string in the kernel fall back to /proc. Every
read races with the process (it may exit, exec again or reuse an fd), so each
helper returns None rather than a guess, and callers mark what they got as
``Source.PROCFS``.

Not psutil: it decodes names, argv and links to str (we keep the kernel's exact
bytes), reports start times as float seconds since boot scaled by the clock
(we compare the kernel's own clock ticks with record timestamps), and costs a
Process object per call on paths that run for every traced event.
"""

from __future__ import annotations

import os
from typing import Dict, List, NamedTuple, Optional, Tuple, Union

PROC = "/proc"


def read_bytes(path: str, limit: int = 1 << 20) -> Optional[bytes]:
    """Up to ``limit`` bytes of a file, or None when absent or unreadable."""
    try:
        with open(path, "rb") as handle:
            return handle.read(limit)
    except OSError:
        return None


def _readlink(path: str) -> Optional[bytes]:
    try:
        return os.readlink(path.encode())
    except OSError:
        return None


def cmdline(pid: int) -> Optional[Tuple[bytes, ...]]:
    """argv of a live process; None when gone, a zombie or a kernel thread."""
    data = read_bytes(f"{PROC}/{pid}/cmdline")
    if not data:
        return None
    if data.endswith(b"\0"):
        data = data[:-1]
    return tuple(data.split(b"\0"))


def _status_field(pid: Union[int, str], name: bytes) -> Optional[bytes]:
    data = read_bytes(f"{PROC}/{pid}/status", 1 << 16)
    if data is None:
        return None
    for line in data.split(b"\n"):
        if line.startswith(name + b":"):
            return line[len(name) + 1:].strip()
    return None


def uid(pid: Union[int, str]) -> Optional[int]:
    """Real uid (first value of Uid:); zombies still have one."""
    value = _status_field(pid, b"Uid")
    try:
        return int(value.split()[0]) if value else None
    except ValueError:
        return None


def tgid(tid: int) -> Optional[int]:
    """The process (thread group) a thread id belongs to."""
    value = _status_field(tid, b"Tgid")
    try:
        return int(value) if value else None
    except ValueError:
        return None


def _stat(pid: Union[int, str]) -> Optional[Tuple[bytes, List[bytes]]]:
    """(comm, the fields after it) of /proc/PID/stat; the comm may hold ')' and spaces,
    so it ends at the last ')'."""
    data = read_bytes(f"{PROC}/{pid}/stat", 4096)
    if not data:
        return None
    open_paren, close_paren = data.find(b"("), data.rfind(b")")
    return data[open_paren + 1:close_paren], data[close_paren + 2:].split()


def _int_at(fields: List[bytes], index: int) -> Optional[int]:
    """Field ``index`` after the comm (state is 0) as an integer."""
    try:
        return int(fields[index])
    except (IndexError, ValueError):
        return None


def _stat_field(pid: Union[int, str], index: int) -> Optional[int]:
    stat = _stat(pid)
    return None if stat is None else _int_at(stat[1], index)


def ppid(pid: int) -> Optional[int]:
    """Parent pid from /proc/PID/stat."""
    return _stat_field(pid, 1)


def start_ticks(pid: Union[int, str]) -> Optional[int]:
    """When a task started, in clock ticks since boot (CLOCK_BOOTTIME; /proc/PID/stat)."""
    return _stat_field(pid, 19)


class ThreadNow(NamedTuple):
    """One thread as /proc/PID/task/TID shows it."""

    start: int  # clock ticks since boot
    tgid: int
    comm: bytes
    uid: Optional[int]  # real uid


def threads_now() -> Dict[int, ThreadNow]:
    """Every thread now: /proc/PID/task/TID names its process; stat its start and comm,
    status its real uid."""
    out: Dict[int, ThreadNow] = {}
    try:
        pids = [int(name) for name in os.listdir(PROC) if name.isdigit()]
    except OSError:
        return out
    for pid in pids:
        try:
            tids = [int(name) for name in os.listdir(f"{PROC}/{pid}/task") if name.isdigit()]
        except OSError:
            continue
        for tid in tids:
            state = _stat_start_and_comm(f"{pid}/task/{tid}")
            if state is not None:
                out[tid] = ThreadNow(state[0], pid, state[1], uid(f"{pid}/task/{tid}"))
    return out


def thread_identity(tid: int) -> Optional[Tuple[int, int]]:
    """(start ticks, tgid) of the task with this id now, both read from one task.

    The start time is read before and after the Tgid: a task that exits and
    whose id is reused in between shows a different start.
    """
    before = start_ticks(tid)
    group = tgid(tid)
    if before is None or group is None or start_ticks(tid) != before:
        return None
    return before, group


def _stat_start_and_comm(tid: Union[int, str]) -> Optional[Tuple[int, bytes]]:
    stat = _stat(tid)
    start = None if stat is None else _int_at(stat[1], 19)
    return None if stat is None or start is None else (start, stat[0])


def task_state(tid: int) -> Optional[Tuple[int, bytes, Optional[int]]]:
    """(start ticks, comm, real uid) of the task with this id now, all of one task.

    The start time is read before and after the uid: a task that exits and
    whose id is reused in between shows a different start.
    """
    before = _stat_start_and_comm(tid)
    real_uid = uid(tid)
    after = _stat_start_and_comm(tid)
    if before is None or after is None or before[0] != after[0]:
        return None
    return before[0], after[1], real_uid


def comm(pid: int) -> Optional[bytes]:
    data = read_bytes(f"{PROC}/{pid}/comm", 64)
    if data is None:
        return None
    return data[:-1] if data.endswith(b"\n") else data


def exe(pid: int) -> Optional[bytes]:
    return _readlink(f"{PROC}/{pid}/exe")


def cwd(pid: int) -> Optional[bytes]:
    return _readlink(f"{PROC}/{pid}/cwd")


def fd_path(pid: int, fd: int) -> Optional[bytes]:
    """What fd N of a live process points at; None for non-files and deleted files.

    A deleted file's link reads "PATH (deleted)", which cannot be told apart
    from a real name with that suffix, so it is not returned.
    """
    target = _readlink(f"{PROC}/{pid}/fd/{fd}")
    if target is None or not target.startswith(b"/") or target.endswith(b" (deleted)"):
        return None
    return target


def fd_flags(pid: int, fd: int) -> Optional[int]:
    """The open flags of fd N (octal ``flags:`` in fdinfo)."""
    data = read_bytes(f"{PROC}/{pid}/fdinfo/{fd}", 4096)
    if data is None:
        return None
    for line in data.split(b"\n"):
        if line.startswith(b"flags:"):
            try:
                return int(line.split()[1], 8)
            except (IndexError, ValueError):
                return None
    return None


def alive(pid: int) -> bool:
    """True when a process (or thread) with this id exists, zombies included."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
