"""The one event schema every backend emits.

Strings from traced processes are kept as the exact bytes the kernel gave us:
names, argv and paths are not text and may hold anything. A field a backend
could not capture is None; where a string came from is recorded beside it so
users can judge its fidelity.
"""

from __future__ import annotations

import enum
from typing import Any, Mapping, Optional, Tuple, Type, TypeVar, Union

import attrs

from hybridtrace.vocabulary import VIA_SYSCALL


class Source(str, enum.Enum):
    """Where a string field was read from, best first."""

    SYSCALL_ENTRY = "syscall-entry"  # caller's memory at syscall entry (eBPF, kprobe, eprobe)
    KERNEL_COPY = "kernel-copy"  # the kernel's own copy of the caller's argument (io_uring)
    NEW_IMAGE = "new-image"  # the new process image (mm->arg_start..arg_end) after exec
    TRACEPOINT = "tracepoint"  # a string field of a static tracepoint
    LIBC_PROBE = "libc-uprobe"  # a uprobe on the C library's wrapper
    PROCFS = "procfs"  # /proc/PID/..., read after the fact; may race with the process


# weakref_slot=False on both event classes: see make_open below.
@attrs.frozen(slots=True, weakref_slot=False)
class ExecEvent:
    """One execve/execveat, successful or not.

    ``timestamp_ns`` is CLOCK_MONOTONIC in nanoseconds. ``retval`` is 0 on
    success and a negative errno on failure; None if the result was not seen.
    ``pid`` (the process) is None when it could not be proven: the ftrace
    backend may not know which process a thread of a failed exec belonged to,
    and ``tid`` never stands in (a successful exec's pid is always known).
    """

    timestamp_ns: int
    pid: Optional[int]
    tid: Optional[int]  # None only for a process outside the tracer's pid namespace
    ppid: Optional[int]
    uid: Optional[int]
    comm: Optional[bytes]
    filename: Optional[bytes]
    argv: Optional[Tuple[bytes, ...]]
    retval: Optional[int]
    argv_truncated: bool = False
    filename_source: Optional[Source] = None
    argv_source: Optional[Source] = None
    syscall: Optional[str] = "execve"  # None: a record naming a syscall we do not know
    # Where it came from (see Origin fields below OpenEvent). Declared on both classes,
    # not in a base class: attrs puts a base's fields first, and the decoders build
    # events positionally in their hot loops.
    cgroup_id: Optional[int] = None
    cgroup: Optional[bytes] = None
    container_id: Optional[str] = None
    mntns: Optional[int] = None
    pidns: Optional[int] = None
    ns_pid: Optional[int] = None
    ns_tid: Optional[int] = None
    ns_ppid: Optional[int] = None

    @property
    def failed(self) -> bool:
        return self.retval is not None and self.retval < 0


@attrs.frozen(slots=True, weakref_slot=False)
class OpenEvent:
    """One open/openat/openat2/creat call, or io_uring open request, and its result.

    Exactly one of ``fd`` and ``errno`` is set when the result was seen (an
    io_uring open into a fixed file slot makes no fd: both None on success).
    ``dfd`` is the directory fd of a relative path (AT_FDCWD is -100).
    ``pid`` (the process) is None when it could not be proven: ``tid`` never stands in.
    ``via`` says how the open reached the kernel (vocabulary.VIA_*): a syscall, or an
    io_uring request (IORING_OP_OPENAT/OPENAT2), which makes no open syscall, so its
    ``syscall`` is None. pid/tid/comm/uid are then the submitting task's, never those
    of the kernel worker that ran it; ``tid`` (and comm, uid) are None where no
    thread of the process submitted it (SQPOLL: the kernel's poller thread did).
    """

    timestamp_ns: int
    pid: Optional[int]
    tid: Optional[int]
    uid: Optional[int]
    comm: Optional[bytes]
    path: Optional[bytes]
    flags: Optional[int]
    mode: Optional[int]
    fd: Optional[int]
    errno: Optional[int]
    path_source: Optional[Source] = None
    syscall: Optional[str] = "openat"
    dfd: Optional[int] = None
    path_truncated: bool = False
    cgroup_id: Optional[int] = None
    cgroup: Optional[bytes] = None
    container_id: Optional[str] = None
    mntns: Optional[int] = None
    pidns: Optional[int] = None
    ns_pid: Optional[int] = None
    ns_tid: Optional[int] = None
    via: str = VIA_SYSCALL

    @property
    def failed(self) -> bool:
        return self.errno is not None


# Where an exec or open came from, on both event types (None: not known):
#   cgroup_id     the cgroup v2 id (bpf_get_current_cgroup_id; the directory's inode)
#   cgroup        its path in the v2 hierarchy, as /proc/PID/cgroup shows it ("0::PATH")
#   container_id  the full 64-hex id when that path names a container (containers.py)
#   mntns, pidns  the mount and pid namespace inodes (/proc/PID/ns/mnt, /proc/PID/ns/pid)
#   ns_pid, ns_tid, ns_ppid  the pids as the process sees them, in its own pid namespace
#                 (equal to pid/tid/ppid when that is the tracer's); ns_ppid 0: the
#                 parent is outside that namespace, as getppid() says there
ORIGIN_FIELDS = ("cgroup_id", "cgroup", "container_id", "mntns", "pidns", "ns_pid", "ns_tid")
EXEC_ORIGIN_FIELDS = (*ORIGIN_FIELDS, "ns_ppid")


@attrs.frozen(slots=True)
class LostEvent:
    """Events the kernel produced that we could not deliver, as soon as we learn of them.

    ``exact`` is False where the kernel counts ring-buffer records, not events
    (ftrace: one event is several records, and some records belong to none): then
    at most ``count`` events were lost, and maybe fewer. ``count`` is None when
    nobody can know (someone else switched recording off for a while).
    """

    timestamp_ns: int
    count: Optional[int]
    where: str  # e.g. "ring buffer reserve", "trace buffer overrun (cpu 1)"
    cpu: Optional[int] = None
    exact: bool = True


Event = Union[ExecEvent, OpenEvent, LostEvent]


_set = object.__setattr__
_T = TypeVar("_T")


def _builder(cls: type) -> type:
    """A plain slotted class with ``cls``'s fields, defaults and memory layout."""
    fields = {f.name: attrs.field(default=f.default) for f in attrs.fields(cls)}
    return attrs.make_class(f"_{cls.__name__}Builder", fields, slots=True, weakref_slot=False)


_OPEN_BUILDER = _builder(OpenEvent)
_EXEC_BUILDER = _builder(ExecEvent)


def _as(obj: Any, cls: Type[_T]) -> _T:
    obj.__class__ = cls
    return obj  # type: ignore[no-any-return]


# Backends' hot loops build events with these (same arguments as the classes).
# A frozen attrs __init__ sets each of the ~22 fields through object.__setattr__:
# 1.0 µs per event, more than decoding its record. The builder stores its slots
# plainly (0.3 µs) and the object then takes the frozen class, which CPython
# allows between slotted classes of one layout; that is also why neither event
# class has a __weakref__ slot (CPython's layout check counts it wrongly when it
# follows other slots).
def make_open(*args: Any, **kwargs: Any) -> OpenEvent:
    return _as(_OPEN_BUILDER(*args, **kwargs), OpenEvent)


def make_exec(*args: Any, **kwargs: Any) -> ExecEvent:
    return _as(_EXEC_BUILDER(*args, **kwargs), ExecEvent)


def fill_origin(event: Union[ExecEvent, OpenEvent], pidns: Optional[int], ns_pid: Optional[int],
                ns_tid: Optional[int], mntns: Optional[int], cgroup: Optional[bytes],
                cgroup_id: Optional[int], container_id: Optional[str]) -> None:
    """fill_in for ORIGIN_FIELDS, on every event of an ftrace session: stores by
    fixed name through the builder's class (make_open) cost a third of seven
    object.__setattr__ calls by name."""
    cls = type(event)
    _set(event, "__class__", _OPEN_BUILDER if cls is OpenEvent else _EXEC_BUILDER)
    plain: Any = event
    plain.pidns = pidns
    plain.ns_pid = ns_pid
    plain.ns_tid = ns_tid
    plain.mntns = mntns
    plain.cgroup = cgroup
    plain.cgroup_id = cgroup_id
    plain.container_id = container_id
    plain.__class__ = cls


def fill_in(event: Event, fields: Mapping[str, object]) -> Event:
    """``event`` with ``fields`` set, in place: for a backend, on an event it built
    and has not handed out yet (held back until /proc readings are proven).

    Events are frozen for whoever receives them, and nobody has seen this one, so
    no one can see it change; attrs.evolve would build it a second time (about
    4 µs per event, more than decoding its trace records). A name that is not a
    field raises AttributeError (the classes are slotted).
    """
    for name, value in fields.items():
        _set(event, name, value)
    return event
