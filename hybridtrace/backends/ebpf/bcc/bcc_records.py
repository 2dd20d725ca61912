"""Decode the BCC programs' records (struct exec_rec / open_rec) into events.

Same meaning as the ebpf-core engine's records: exact bytes, None for what
the kernel could not read, truncation flagged, and the argv splitting rules
shared with it (``records.split_argv``).
"""

from __future__ import annotations

import struct
from typing import Optional, Tuple, TypedDict

from hybridtrace.backends.ebpf.records import split_argv
from hybridtrace.events import ExecEvent, OpenEvent, Source, make_exec, make_open
from hybridtrace.origin import NO_NAMES, CgroupNames
from hybridtrace.request import PATH_SIZE
from hybridtrace.vocabulary import VIA_IO_URING, syscall_at

# common.c
F_TASK_READS_OFF = 1 << 0
# exec.c
F_ARGV_TRUNCATED = 1 << 1
F_ARGV_READ_FAILED = 1 << 2
F_ARGV_FROM_IMAGE = 1 << 3
F_FILENAME_FROM_TP = 1 << 4
F_NO_ENTRY = 1 << 5
F_FILENAME_TRUNCATED = 1 << 6
F_IMAGE_READ_FAILED = 1 << 7
# open.c
F_PATH_TRUNCATED = 1 << 1
F_PATH_READ_FAILED = 1 << 2
F_HOW_READ_FAILED = 1 << 3
F_IO_URING = 1 << 4
F_NO_THREAD = 1 << 5  # the SQPOLL thread submitted it: tid, uid, comm unknown
F_FIXED_SLOT = 1 << 6  # opened into a fixed file slot: no fd
F_NO_RESULT = 1 << 7  # IOSQE_CQE_SKIP_SUCCESS: reported at submission, result unknown
F_KERNEL_COPY = 1 << 8
F_NO_DFD = 1 << 9
# common.c: origin fields the program could not read
F_CGROUP_UNKNOWN = 1 << 16
F_MNTNS_UNKNOWN = 1 << 17
F_PIDNS_UNKNOWN = 1 << 18
F_NSPID_UNKNOWN = 1 << 19
F_NSPPID_UNKNOWN = 1 << 20

# struct ht_origin: cgroup_id, mntns, pidns, ns_pid, ns_tid, ns_ppid, pad
ORIGIN = "QIIIII4x"
# struct exec_rec up to filename[]: ts, pid, tid, ppid, uid, retval, flags,
# argv_len, filename_len, syscall, pad, comm[16], origin
EXEC_HDR = struct.Struct("<QIIIIiIIII4x16s" + ORIGIN)
# struct open_rec up to path[]: ts, pid, tid, uid, ret, dfd, oflags, mode,
# syscall, path_len, flags, path_ptr, comm[16], origin
OPEN_HDR = struct.Struct("<QIIIiiIIIIIQ16s" + ORIGIN)
assert EXEC_HDR.size == 96 and OPEN_HDR.size == 104



class Origin(TypedDict):
    """The origin fields, by ExecEvent's and OpenEvent's names."""

    cgroup_id: Optional[int]
    cgroup: Optional[bytes]
    container_id: Optional[str]
    mntns: Optional[int]
    pidns: Optional[int]
    ns_pid: Optional[int]
    ns_tid: Optional[int]


def _origin(ts: int, flags: int, cgroup_id: int, mntns: int, pidns: int, ns_pid: int,
            ns_tid: int, names: CgroupNames) -> Origin:
    """A record's origin as event fields; what the kernel flagged unknown is None."""
    cgid = None if flags & F_CGROUP_UNKNOWN else cgroup_id
    path, cid = names.lookup(cgid, ts)
    nspid_known = not flags & F_NSPID_UNKNOWN
    return Origin(cgroup_id=cgid, cgroup=path, container_id=cid,
                  mntns=None if flags & F_MNTNS_UNKNOWN else mntns,
                  pidns=None if flags & F_PIDNS_UNKNOWN else pidns,
                  ns_pid=ns_pid if nspid_known else None,
                  ns_tid=ns_tid if nspid_known else None)


def path_slot() -> int:
    return PATH_SIZE + 1


def exec_argv_offset() -> int:
    return EXEC_HDR.size + path_slot()


def _cstring(raw: bytes) -> bytes:
    end = raw.find(b"\0")
    return raw if end < 0 else raw[:end]


def _read_string(raw: bytes, start: int, length: int) -> Optional[bytes]:
    """A string the kernel read (``length`` includes its NUL); None when unread."""
    if length <= 0:
        return None
    return _cstring(raw[start:start + length])


def decode_exec(raw: bytes, max_args: int, names: CgroupNames = NO_NAMES) -> ExecEvent:
    (ts, pid, tid, ppid, uid, retval, flags, argv_len, name_len, sysno,
     comm, cgroup_id, mntns, pidns, ns_pid, ns_tid, ns_ppid) = EXEC_HDR.unpack_from(raw, 0)
    filename = _read_string(raw, EXEC_HDR.size, min(name_len, path_slot()))
    if flags & F_FILENAME_TRUNCATED:  # ExecEvent has no flag for a cut filename
        filename = None
    name_src = Source.TRACEPOINT if flags & F_FILENAME_FROM_TP else Source.SYSCALL_ENTRY
    from_image = bool(flags & F_ARGV_FROM_IMAGE)
    failed = bool(flags & F_ARGV_READ_FAILED) or (
        bool(flags & F_NO_ENTRY) and not from_image
    )
    argv: Optional[Tuple[bytes, ...]] = None
    truncated = bool(flags & F_ARGV_TRUNCATED)
    if not (failed and argv_len == 0):
        start = exec_argv_offset()
        argv, cut = split_argv(raw[start:start + argv_len], max_args)
        truncated = truncated or cut or failed
    return make_exec(
        timestamp_ns=ts, pid=pid, tid=tid,
        ppid=None if flags & F_TASK_READS_OFF else ppid,
        uid=uid, comm=_cstring(comm), filename=filename, argv=argv, retval=retval,
        argv_truncated=truncated,
        filename_source=name_src if filename is not None else None,
        argv_source=(Source.NEW_IMAGE if from_image else Source.SYSCALL_ENTRY)
        if argv is not None else None,
        syscall=syscall_at("exec", sysno),
        ns_ppid=None if flags & F_NSPPID_UNKNOWN else ns_ppid,
        **_origin(ts, flags, cgroup_id, mntns, pidns, ns_pid, ns_tid, names),
    )


def decode_open(raw: bytes, names: CgroupNames = NO_NAMES) -> OpenEvent:
    (ts, pid, tid, uid, ret, dfd, oflags, mode, sysno, path_len, flags, _ptr,
     comm, cgroup_id, mntns, pidns, ns_pid, ns_tid, _ns_ppid) = OPEN_HDR.unpack_from(raw, 0)
    path = _read_string(raw, OPEN_HDR.size, min(path_len, path_slot()))
    how_ok = not flags & F_HOW_READ_FAILED
    origin = _origin(ts, flags, cgroup_id, mntns, pidns, ns_pid, ns_tid, names)
    if flags & F_IO_URING:
        return _uring_open(ts, pid, tid, uid, ret, dfd, oflags, mode, flags, comm, path,
                           how_ok, origin)
    return make_open(
        timestamp_ns=ts, pid=pid, tid=tid, uid=uid, comm=_cstring(comm), path=path,
        flags=oflags if how_ok else None, mode=mode if how_ok else None,
        fd=ret if ret >= 0 else None, errno=-ret if ret < 0 else None,
        path_source=Source.SYSCALL_ENTRY if path is not None else None,
        syscall=syscall_at("open", sysno),
        dfd=dfd, path_truncated=bool(flags & F_PATH_TRUNCATED) and path is not None,
        **origin,
    )


def _uring_open(ts: int, pid: int, tid: int, uid: int, ret: int, dfd: int, oflags: int,
                mode: int, flags: int, comm: bytes, path: Optional[bytes],
                how_ok: bool, origin: Origin) -> OpenEvent:
    """An io_uring open request's record: no syscall was made (syscall None)."""
    no_thread = bool(flags & F_NO_THREAD)
    known = not flags & F_NO_RESULT
    return make_open(
        timestamp_ns=ts, pid=pid, tid=None if no_thread else tid,
        uid=None if no_thread else uid, comm=None if no_thread else _cstring(comm),
        path=path, flags=oflags if how_ok else None, mode=mode if how_ok else None,
        fd=ret if known and ret >= 0 and not flags & F_FIXED_SLOT else None,
        errno=-ret if known and ret < 0 else None,
        path_source=(Source.KERNEL_COPY if flags & F_KERNEL_COPY else Source.SYSCALL_ENTRY)
        if path is not None else None,
        syscall=None, dfd=None if flags & F_NO_DFD else dfd,
        path_truncated=bool(flags & F_PATH_TRUNCATED) and path is not None,
        via=VIA_IO_URING, **origin,
    )
