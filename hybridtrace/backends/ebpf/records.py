"""Decode the engine's ring-buffer records (bpf/common.h) into events.

Formats are native ("@"): the records are in the kernel's byte order and C
alignment, and native unpacking is also the fastest CPython has.

Strings stay exact bytes. The kernel side reads one byte more than we keep,
so a string longer than ARG_SIZE/PATH_SIZE is detected here, cut and flagged.
A string the kernel could not read is None, never an empty guess.
"""

from __future__ import annotations

import mmap
import struct
from typing import Dict, List, Optional, Tuple, Union

from hybridtrace.backends.ebpf.ringbuf import BUSY_BIT, DISCARD_BIT, HDR_SIZE
from hybridtrace.events import ExecEvent, OpenEvent, Source, make_exec, make_open
from hybridtrace.origin import NO_NAMES, CgroupNames
from hybridtrace.request import ARG_SIZE, PATH_SIZE
from hybridtrace.vocabulary import OPEN_SYSCALLS, VIA_IO_URING, syscall_at

# An event's origin fields in OpenEvent's order: cgroup_id, cgroup, container_id, mntns,
# pidns, ns_pid, ns_tid.
Origin = Tuple[Optional[int], Optional[bytes], Optional[str], Optional[int], Optional[int],
               Optional[int], Optional[int]]

F_ARGV_TRUNC = 1
F_ARGV_FAULT = 2
F_NAME_FAULT = 4
F_PPID_UNKNOWN = 8
F_MNTNS_UNKNOWN = 16
F_PIDNS_UNKNOWN = 32
F_NSPID_UNKNOWN = 64
F_NSPPID_UNKNOWN = 128
F_CGROUP_UNKNOWN = 256
F_ORIGIN = (F_MNTNS_UNKNOWN | F_PIDNS_UNKNOWN | F_NSPID_UNKNOWN | F_NSPPID_UNKNOWN
            | F_CGROUP_UNKNOWN)
# io_uring opens (bpf/open.bpf.c): how the record differs from a syscall's
F_IO_URING = 512
F_NO_THREAD = 1024  # submitted by the SQPOLL thread: tid, uid, comm, origin unknown
F_NO_PROCESS = 2048  # submitted by a kernel thread: pid unknown too
F_FIXED_SLOT = 4096  # opened into a fixed file slot: no fd
F_ARGS_FAULT = 8192  # flags and mode unknown
F_NO_RESULT = 16384  # result unknown (IOSQE_CQE_SKIP_SUCCESS: no completion for a success)
F_KERNEL_COPY = 32768  # the path is the kernel's copy
# A tracer in a pid namespace of its own: the record's pid, tid, ppid are that
# namespace's (pidns.py), and these say one has none there (or is unknown)
F_VIEW_TID_NONE = 65536
F_VIEW_PID_NONE = 131072
F_VIEW_PPID_NONE = 262144
# Bits that send a record of the hot loops to _origin (the uncommon case).
F_UNCOMMON = F_ORIGIN | F_VIEW_TID_NONE | F_VIEW_PID_NONE
# Slots of the ht_lost per-CPU counters (enum ht_lost_slot).
LOST_EVENT = 0  # events that could not be output or kept: exact
LOST_PENDING = 1  # execs with no room to wait for their result: failed ones may be missing
LOST_FOLLOW = 2  # children of followed tasks with no room to be followed (--descendants-of)

SOURCES = {1: Source.SYSCALL_ENTRY, 2: Source.NEW_IMAGE, 3: Source.TRACEPOINT}
_OPEN_SYSCALL: Dict[int, Optional[str]] = dict(enumerate(OPEN_SYSCALLS))
_PATH_KEEP = PATH_SIZE + 1  # path_len counts the NUL

# struct ht_hdr: ts, type, pid, tid, ppid, uid, flags, comm[16], then where the task
# lives: cgroup_id, mntns, pidns, ns_pid, ns_tid, ns_ppid, pad
HDR = "QIIIIII16sQIIIII4x"
# struct ht_exec: the header, then retval, syscall, name_len, args_len, name/argv
# sources, pad
EXEC = struct.Struct("@" + HDR + "iHHIBB2x")
# struct ht_open: the header, then ret, dfd, flags, mode, syscall, path_len
OPEN = struct.Struct("@" + HDR + "iiQIHH")
# struct ht_config (the object's whole .rodata): self_tgid, pid, tid, uid, ppid,
# max_args; has_pid, has_tid, has_uid, has_ppid, has_comm, failed_only, kernel_reads,
# has_mntns; comm; mntns; cgroup_slots, follow, has_cgroupmap, has_mntnsmap; view_pidns
CONFIG = struct.Struct("@6I8B16sI4BI")

# Where records are read from: the ring's own mapping (slices are bytes, one
# copy) or a memoryview (libbpf's callbacks, tests).
Buffer = Union[memoryview, mmap.mmap]

# A ring record's 8-byte header (length with the BUSY/DISCARD bits, page
# offset) followed by struct ht_open: one unpack per record in scan_opens.
OPEN_RECORD = struct.Struct("@I4x" + OPEN.format.lstrip("@"))

EXEC_DATA = EXEC.size  # offsetof(struct ht_exec, data)
OPEN_DATA = OPEN.size  # offsetof(struct ht_open, path)
assert EXEC_DATA == 96 and OPEN_DATA == 104 and OPEN_RECORD.size == HDR_SIZE + OPEN_DATA
assert CONFIG.size == 60


def _comm(raw: bytes) -> bytes:
    return raw.split(b"\0", 1)[0]


# Raw 16-byte comm -> its bytes: a busy process repeats its comm in every record.
_COMMS: Dict[bytes, bytes] = {}
_COMMS_MAX = 4096


def _cache_comm(raw: bytes) -> bytes:
    if len(_COMMS) >= _COMMS_MAX:
        _COMMS.clear()
    comm = _COMMS[raw] = _comm(raw)
    return comm


def _string(raw: bytes, keep: int) -> Tuple[bytes, bool]:
    """A NUL-terminated string as read by the kernel -> (bytes kept, was cut)."""
    if raw.endswith(b"\0"):
        raw = raw[:-1]
    return (raw[:keep], True) if len(raw) > keep else (raw, False)


def split_argv(raw: bytes, max_args: int) -> Tuple[Tuple[bytes, ...], bool]:
    """Packed NUL-terminated args -> (args, truncated); a missing last NUL means cut."""
    cut = False
    parts = raw.split(b"\0")
    if parts and parts[-1] == b"":
        parts.pop()
    elif parts:
        cut = True  # the area ended inside an argument
    if len(parts) > max_args:
        parts, cut = parts[:max_args], True
    args: List[bytes] = []
    for part in parts:
        if len(part) > ARG_SIZE:
            part, cut = part[:ARG_SIZE], True
        args.append(part)
    return tuple(args), cut


def _ns(flags: int, bit: int, value: int) -> Optional[int]:
    return None if flags & bit else value


def decode_exec(view: Buffer, off: int, max_args: int,
                names: CgroupNames = NO_NAMES) -> ExecEvent:
    (ts, _type, pid, tid, ppid, uid, flags, comm, cgroup_id, mntns, pidns, ns_pid, ns_tid,
     ns_ppid, retval, sysno, name_len, args_len, name_src, argv_src) = EXEC.unpack_from(view, off)
    data = off + EXEC_DATA
    filename: Optional[bytes] = None
    if name_len:
        filename, cut = _string(bytes(view[data:data + name_len]), PATH_SIZE)
        if cut:  # longer than PATH_SIZE: ExecEvent has no flag for a cut filename
            filename = None
    argv: Optional[Tuple[bytes, ...]] = None
    truncated = bool(flags & F_ARGV_TRUNC)
    if argv_src and not (flags & F_ARGV_FAULT and args_len == 0):
        start = data + name_len
        argv, cut = split_argv(bytes(view[start:start + args_len]), max_args)
        truncated = truncated or cut or bool(flags & F_ARGV_FAULT)
    cgroup: Optional[int] = None if flags & F_CGROUP_UNKNOWN else cgroup_id
    path, cid = names.lookup(cgroup, ts)
    return make_exec(
        ts, None if flags & F_VIEW_PID_NONE else pid, None if flags & F_VIEW_TID_NONE else tid,
        None if flags & (F_PPID_UNKNOWN | F_VIEW_PPID_NONE) else ppid, uid, _comm(comm), filename,
        argv, retval, truncated,
        SOURCES.get(name_src) if filename is not None else None,
        SOURCES.get(argv_src) if argv is not None else None,
        syscall_at("exec", sysno),
        cgroup, path, cid, _ns(flags, F_MNTNS_UNKNOWN, mntns), _ns(flags, F_PIDNS_UNKNOWN, pidns),
        _ns(flags, F_NSPID_UNKNOWN, ns_pid), _ns(flags, F_NSPID_UNKNOWN, ns_tid),
        _ns(flags, F_NSPPID_UNKNOWN, ns_ppid),
    )


_Ids = Tuple[Optional[int], Optional[int], Optional[int], Optional[int], Optional[int],
             Optional[int], Optional[int]]


def _origin(flags: int, pid: int, tid: int, cgroup_id: int, mntns: int, pidns: int,
            ns_pid: int, ns_tid: int) -> _Ids:
    """pid, tid and the origin fields of a record with some flagged unknown (the
    uncommon case: F_UNCOMMON)."""
    return (None if flags & F_VIEW_PID_NONE else pid,
            None if flags & F_VIEW_TID_NONE else tid,
            None if flags & F_CGROUP_UNKNOWN else cgroup_id,
            None if flags & F_MNTNS_UNKNOWN else mntns,
            None if flags & F_PIDNS_UNKNOWN else pidns,
            None if flags & F_NSPID_UNKNOWN else ns_pid,
            None if flags & F_NSPID_UNKNOWN else ns_tid)


def uring_open(ts: int, pid: Optional[int], tid: Optional[int], uid: int, flags: int,
               comm: bytes, ret: int, dfd: int, oflags: int, mode: int,
               path: Optional[bytes], cut: bool, origin: Origin) -> OpenEvent:
    """An io_uring open request's record (flags has F_IO_URING): no syscall was made,
    and what the kernel could not attribute or read is None."""
    no_thread = bool(flags & F_NO_THREAD)
    args_fault = bool(flags & F_ARGS_FAULT)
    return make_open(
        ts, None if flags & F_NO_PROCESS else pid, None if no_thread else tid,
        None if no_thread else uid, None if no_thread else comm, path,
        None if args_fault else oflags, None if args_fault else mode,
        None if ret < 0 or flags & (F_FIXED_SLOT | F_NO_RESULT) else ret,
        -ret if ret < 0 and not flags & F_NO_RESULT else None,
        None if path is None else
        Source.KERNEL_COPY if flags & F_KERNEL_COPY else Source.SYSCALL_ENTRY,
        None, dfd, cut, *origin, VIA_IO_URING)


def decode_open(view: Buffer, off: int, _length: int = 0,
                names: CgroupNames = NO_NAMES) -> OpenEvent:
    # The hot path at high open rates (about a microsecond of which is the
    # OpenEvent itself): one unpack, one copy of the path, cached comm and
    # cgroup names, no keyword arguments.
    (ts, _type, pid, tid, _ppid, uid, flags, raw_comm, cgroup_id, mntns, pidns, ns_pid, ns_tid,
     _ns_ppid, ret, dfd, oflags, mode, sysno, path_len) = OPEN.unpack_from(view, off)
    comm = _COMMS.get(raw_comm)
    if comm is None:
        comm = _cache_comm(raw_comm)
    if path_len:
        start = off + OPEN_DATA
        if path_len <= _PATH_KEEP:
            path: Optional[bytes] = bytes(view[start:start + path_len - 1])
            cut = False
        else:
            path, cut = bytes(view[start:start + PATH_SIZE]), True
        source: Optional[Source] = Source.SYSCALL_ENTRY
    else:
        path, cut, source = None, False, None
    cgid: Optional[int] = cgroup_id
    if flags & F_UNCOMMON:
        pid, tid, cgid, mntns, pidns, ns_pid, ns_tid = _origin(flags, pid, tid, cgroup_id, mntns,
                                                               pidns, ns_pid, ns_tid)
    name = names.cache.get(cgroup_id) or names.lookup(cgid, ts)
    if flags & F_IO_URING:
        return uring_open(ts, pid, tid, uid, flags, comm, ret, dfd, oflags, mode, path, cut,
                          (cgid, name[0], name[1], mntns, pidns, ns_pid, ns_tid))
    if ret >= 0:
        return make_open(ts, pid, tid, uid, comm, path, oflags, mode, ret, None, source,
                         _OPEN_SYSCALL.get(sysno), dfd, cut, cgid, name[0], name[1], mntns,
                         pidns, ns_pid, ns_tid)
    return make_open(ts, pid, tid, uid, comm, path, oflags, mode, None, -ret, source,
                     _OPEN_SYSCALL.get(sysno), dfd, cut, cgid, name[0], name[1], mntns, pidns,
                     ns_pid, ns_tid)


def scan_opens(data: mmap.mmap, base: int, mask: int, cons: int, prod: int, limit: int,
               out: List[OpenEvent], names: CgroupNames = NO_NAMES) -> Tuple[int, int]:
    """ringbuf.Scan for the open object: decode_open fused into the ring walk.

    The highest-rate path there is: one unpack covers the record header and
    the fixed fields, and no call per record but the OpenEvent itself. Every
    record of the open object is a struct ht_open, so reading its fixed part
    before looking at the header's bits is safe (a BUSY one is not used), and
    struct reads the header field first, so x86's in-order loads still see a
    committed record whole (ringbuf.ORDERED_LOADS).
    Must decode exactly as decode_open does (a unit test compares them).
    """
    unpack, append, comms, count = OPEN_RECORD.unpack_from, out.append, _COMMS, 0
    syscalls, keep, entry, uring = _OPEN_SYSCALL, _PATH_KEEP, Source.SYSCALL_ENTRY, F_IO_URING
    uncommon = F_UNCOMMON
    named, lookup = names.cache, names.lookup
    while cons < prod and count < limit:
        off = base + (cons & mask)
        (length, ts, _type, pid, tid, _ppid, uid, flags, raw_comm, cgroup_id, mntns, pidns,
         ns_pid, ns_tid, _ns_ppid, ret, dfd, oflags, mode, sysno, path_len) = unpack(data, off)
        if length & BUSY_BIT:
            break
        cons += (HDR_SIZE + 7 + (length & ~DISCARD_BIT)) & ~7
        count += 1
        if length & DISCARD_BIT:
            continue
        comm = comms.get(raw_comm)
        if comm is None:
            comm = _cache_comm(raw_comm)
        if path_len:
            start = off + HDR_SIZE + OPEN_DATA
            if path_len <= keep:
                path: Optional[bytes] = bytes(data[start:start + path_len - 1])
                cut = False
            else:
                path, cut = bytes(data[start:start + PATH_SIZE]), True
            source: Optional[Source] = entry
        else:
            path, cut, source = None, False, None
        cgid: Optional[int] = cgroup_id
        if flags & uncommon:
            pid, tid, cgid, mntns, pidns, ns_pid, ns_tid = _origin(
                flags, pid, tid, cgroup_id, mntns, pidns, ns_pid, ns_tid)
        name = named.get(cgroup_id) or lookup(cgid, ts)
        if flags & uring:
            append(uring_open(ts, pid, tid, uid, flags, comm, ret, dfd, oflags, mode, path, cut,
                              (cgid, name[0], name[1], mntns, pidns, ns_pid, ns_tid)))
        elif ret >= 0:
            append(make_open(ts, pid, tid, uid, comm, path, oflags, mode, ret, None, source,
                             syscalls.get(sysno), dfd, cut, cgid, name[0], name[1], mntns,
                             pidns, ns_pid, ns_tid))
        else:
            append(make_open(ts, pid, tid, uid, comm, path, oflags, mode, None, -ret, source,
                             syscalls.get(sysno), dfd, cut, cgid, name[0], name[1], mntns,
                             pidns, ns_pid, ns_tid))
    return cons, count
