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
from hybridtrace.events import ExecEvent, OpenEvent, Source
from hybridtrace.request import ARG_SIZE, PATH_SIZE
from hybridtrace.vocabulary import OPEN_SYSCALLS, syscall_at

F_ARGV_TRUNC = 1
F_ARGV_FAULT = 2
F_NAME_FAULT = 4
F_PPID_UNKNOWN = 8
# Slots of the ht_lost per-CPU counters (enum ht_lost_slot).
LOST_EVENT = 0  # events that could not be output or kept: exact
LOST_PENDING = 1  # execs with no room to wait for their result: failed ones may be missing

SOURCES = {1: Source.SYSCALL_ENTRY, 2: Source.NEW_IMAGE, 3: Source.TRACEPOINT}
_OPEN_SYSCALL: Dict[int, Optional[str]] = dict(enumerate(OPEN_SYSCALLS))
_PATH_KEEP = PATH_SIZE + 1  # path_len counts the NUL

# struct ht_exec: the header (ts, type, pid, tid, ppid, uid, flags, comm[16]),
# then retval, syscall, name_len, args_len, name/argv sources, pad
EXEC = struct.Struct("@QIIIIII16siHHIBB2x")
# struct ht_open: the header, then ret, dfd, flags, mode, syscall, path_len
OPEN = struct.Struct("@QIIIIII16siiQIHH")
# struct ht_config (the object's whole .rodata)
CONFIG = struct.Struct("@6I7Bx16s")

# Where records are read from: the ring's own mapping (slices are bytes, one
# copy) or a memoryview (libbpf's callbacks, tests).
Buffer = Union[memoryview, mmap.mmap]

# A ring record's 8-byte header (length with the BUSY/DISCARD bits, page
# offset) followed by struct ht_open: one unpack per record in scan_opens.
OPEN_RECORD = struct.Struct("@I4x" + OPEN.format.lstrip("@"))

EXEC_DATA = EXEC.size  # offsetof(struct ht_exec, data)
OPEN_DATA = OPEN.size  # offsetof(struct ht_open, path)
assert EXEC_DATA == 64 and OPEN_DATA == 72 and OPEN_RECORD.size == HDR_SIZE + OPEN_DATA


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


def decode_exec(view: Buffer, off: int, max_args: int) -> ExecEvent:
    (ts, _type, pid, tid, ppid, uid, flags, comm, retval, sysno, name_len, args_len,
     name_src, argv_src) = EXEC.unpack_from(view, off)
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
    return ExecEvent(
        ts, pid, tid, None if flags & F_PPID_UNKNOWN else ppid, uid, _comm(comm), filename,
        argv, retval, truncated,
        SOURCES.get(name_src) if filename is not None else None,
        SOURCES.get(argv_src) if argv is not None else None,
        syscall_at("exec", sysno),
    )


def decode_open(view: Buffer, off: int, _length: int = 0) -> OpenEvent:
    # The hot path at high open rates (about a microsecond of which is the
    # OpenEvent itself): one unpack, one copy of the path, cached comm, no
    # keyword arguments.
    (ts, _type, pid, tid, _ppid, uid, _flags, raw_comm, ret, dfd, oflags, mode, sysno,
     path_len) = OPEN.unpack_from(view, off)
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
    if ret >= 0:
        return OpenEvent(ts, pid, tid, uid, comm, path, oflags, mode, ret, None, source,
                         _OPEN_SYSCALL.get(sysno), dfd, cut)
    return OpenEvent(ts, pid, tid, uid, comm, path, oflags, mode, None, -ret, source,
                     _OPEN_SYSCALL.get(sysno), dfd, cut)


def scan_opens(data: mmap.mmap, base: int, mask: int, cons: int, prod: int, limit: int,
               out: List[OpenEvent]) -> Tuple[int, int]:
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
    syscalls, keep, entry = _OPEN_SYSCALL, _PATH_KEEP, Source.SYSCALL_ENTRY
    while cons < prod and count < limit:
        off = base + (cons & mask)
        (length, ts, _type, pid, tid, _ppid, uid, _flags, raw_comm, ret, dfd, oflags, mode,
         sysno, path_len) = unpack(data, off)
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
        if ret >= 0:
            append(OpenEvent(ts, pid, tid, uid, comm, path, oflags, mode, ret, None, source,
                             syscalls.get(sysno), dfd, cut))
        else:
            append(OpenEvent(ts, pid, tid, uid, comm, path, oflags, mode, None, -ret, source,
                             syscalls.get(sysno), dfd, cut))
    return cons, count
