"""Member offsets of kernel structs, read from the running kernel's BTF.

BCC compiles against headers; when those headers belong to another kernel
release (borrowed), their task_struct/mm_struct layout is wrong for this
kernel. BTF describes the running kernel exactly, so the few offsets our
programs need come from here instead (BCC 0.26 applies no CO-RE relocations).
The ftrace tiers' probes read an io_uring open request's path the same way
(``io_uring_open_layout``): the offsets come from BTF, never from a guess.
"""

from __future__ import annotations

import struct
from array import array
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

BTF_MAGIC = 0xEB9F

# BTF kinds (include/uapi/linux/btf.h) and the bytes each adds after the
# 12-byte common type header, as (fixed, per vlen item).
KIND_STRUCT = 4
KIND_UNION = 5
KIND_TYPEDEF = 8
KIND_VOLATILE = 9
KIND_CONST = 10
KIND_RESTRICT = 11
KIND_FUNC = 12
KIND_TYPE_TAG = 18
_EXTRA: Dict[int, Tuple[int, int]] = {
    1: (4, 0),  # INT
    2: (0, 0),  # PTR
    3: (12, 0),  # ARRAY
    4: (0, 12),  # STRUCT
    5: (0, 12),  # UNION
    6: (0, 8),  # ENUM
    7: (0, 0),  # FWD
    8: (0, 0),  # TYPEDEF
    9: (0, 0),  # VOLATILE
    10: (0, 0),  # CONST
    11: (0, 0),  # RESTRICT
    12: (0, 0),  # FUNC
    13: (0, 8),  # FUNC_PROTO
    14: (4, 0),  # VAR
    15: (0, 12),  # DATASEC
    16: (0, 0),  # FLOAT
    17: (4, 0),  # DECL_TAG
    18: (0, 0),  # TYPE_TAG
    19: (0, 12),  # ENUM64
}
# By kind: a type's whole size as (header and fixed part, per vlen item).
_SIZES: List[Optional[Tuple[int, int]]] = [
    (12 + _EXTRA[k][0], _EXTRA[k][1]) if k in _EXTRA else None for k in range(32)]
_MODIFIERS = (KIND_TYPEDEF, KIND_VOLATILE, KIND_CONST, KIND_RESTRICT, KIND_TYPE_TAG)


class BtfError(Exception):
    """The BTF blob is unreadable or lacks a struct or member we need."""


class _Type:
    __slots__ = ("kind", "kind_flag", "members", "name", "ref")

    def __init__(self, name: str, kind: int, kind_flag: bool, ref: int) -> None:
        self.name = name
        self.kind = kind
        self.kind_flag = kind_flag
        self.ref = ref  # size for structs, referenced type id for modifiers
        self.members: List[Tuple[str, int, int]] = []  # (name, type id, bit offset)


class Btf:
    """The types of one BTF blob (type ids start at 1).

    Only each type's place and name are indexed up front; a type is decoded when a
    lookup reaches it. The kernel's BTF has over 100k types and every session's
    capability probe reads it, so decoding all of them (0.4 s and 25 MB here) would
    be paid at every start for the few structs we ask about."""

    def __init__(self, data: bytes) -> None:
        if len(data) < 24:
            raise BtfError("BTF blob too short")
        magic, _version, _flags, hdr_len = struct.unpack_from("<HBBI", data, 0)
        if magic != BTF_MAGIC:
            raise BtfError("not a little-endian BTF blob")
        type_off, type_len, str_off, str_len = struct.unpack_from("<IIII", data, 8)
        self._blob = data[hdr_len + type_off : hdr_len + type_off + type_len]
        self._strings = data[hdr_len + str_off : hdr_len + str_off + str_len]
        self._places = array("I", [0])  # by type id: where its header starts
        self._name_offs = array("I", [0])  # by type id: its name (4-byte items: _named)
        self._decoded: Dict[int, _Type] = {}
        self._index()

    def _name(self, off: int) -> str:
        end = self._strings.find(b"\0", off)
        return self._strings[off:end].decode("utf-8", "replace")

    def _index(self) -> None:
        # The one loop over every type: kept to the fewest Python operations per type.
        blob, end = self._blob, len(self._blob) - 12
        add_place, add_name = self._places.append, self._name_offs.append
        header = struct.Struct("<II").unpack_from
        pos = 0
        while pos <= end:
            name_off, info = header(blob, pos)
            sizes = _SIZES[info >> 24 & 0x1F]
            if sizes is None:
                raise BtfError(f"unknown BTF kind {info >> 24 & 0x1F}")
            add_place(pos)
            add_name(name_off)
            pos += sizes[0] + (info & 0xFFFF) * sizes[1]

    def _type(self, type_id: int) -> Optional[_Type]:
        if not 0 < type_id < len(self._places):
            return None
        t = self._decoded.get(type_id)
        if t is None:
            pos = self._places[type_id]
            name_off, info, ref = struct.unpack_from("<III", self._blob, pos)
            kind = (info >> 24) & 0x1F
            t = _Type(self._name(name_off), kind, bool(info >> 31), ref)
            if kind in (KIND_STRUCT, KIND_UNION):
                for i in range(info & 0xFFFF):
                    m_name, m_type, m_off = struct.unpack_from("<III", self._blob,
                                                               pos + 12 + 12 * i)
                    bit_off = m_off & 0xFFFFFF if t.kind_flag else m_off
                    t.members.append((self._name(m_name), m_type, bit_off))
            self._decoded[type_id] = t
        return t

    def _named(self, name: str) -> Iterator[_Type]:
        """Every type called ``name`` (strings need not be deduplicated)."""
        wanted = set()
        needle = b"\0" + name.encode() + b"\0"
        at = self._strings.find(needle)
        while at >= 0:
            wanted.add(at + 1)
            at = self._strings.find(needle, at + 1)
        # Scanning the id index as bytes keeps this in C (array.index has no start
        # argument before Python 3.10); a hit must fall on an item's boundary.
        ids = self._name_offs.tobytes()
        for name_off in sorted(wanted):
            pattern = struct.pack("=I", name_off)
            at = ids.find(pattern)
            while at >= 0:
                if at % 4 == 0:
                    t = self._type(at // 4)
                    if t is not None:
                        yield t
                at = ids.find(pattern, at + 1)

    def _resolve(self, type_id: int) -> Optional[_Type]:
        for _ in range(32):
            t = self._type(type_id)
            if t is None or t.kind not in _MODIFIERS:
                return t
            type_id = t.ref
        return None

    def struct_named(self, name: str) -> _Type:
        for t in self._named(name):
            if t.kind == KIND_STRUCT and t.members:
                return t
        raise BtfError(f"struct {name} not in BTF")

    def has_function(self, name: str) -> bool:
        """Whether the kernel has a (not inlined) function of that name."""
        return any(t.kind == KIND_FUNC for t in self._named(name))

    def struct_size(self, struct_name: str) -> int:
        return self.struct_named(struct_name).ref

    def member_offset(self, struct_name: str, member: str) -> int:
        """Byte offset of ``member``, looking inside anonymous structs and unions."""
        found = self._find(self.struct_named(struct_name), member, 0)
        if found is None:
            raise BtfError(f"struct {struct_name} has no member {member}")
        if found % 8:
            raise BtfError(f"{struct_name}.{member} is a bit field")
        return found // 8

    def _find(self, t: _Type, member: str, base: int) -> Optional[int]:
        for name, _type_id, bit_off in t.members:
            if name == member:
                return base + bit_off
        for name, type_id, bit_off in t.members:
            inner = self._resolve(type_id) if not name else None
            if inner is not None and inner.kind in (KIND_STRUCT, KIND_UNION):
                hit = self._find(inner, member, base + bit_off)
                if hit is not None:
                    return hit
        return None


# What the BCC programs read, as -D macro -> (struct, member).
TASK_OFFSETS: Dict[str, Tuple[str, str]] = {
    "HT_OFF_REAL_PARENT": ("task_struct", "real_parent"),
    "HT_OFF_TGID": ("task_struct", "tgid"),
    "HT_OFF_MM": ("task_struct", "mm"),
    "HT_OFF_ARG_START": ("mm_struct", "arg_start"),
    "HT_OFF_ARG_END": ("mm_struct", "arg_end"),
}


# What open.c reads of an io_uring open request (struct io_open is in no header).
URING_OFFSETS: Dict[str, Tuple[str, str]] = {
    "HT_OFF_REQ_CMD": ("io_kiocb", "cmd"),
    "HT_OFF_OPEN_DFD": ("io_open", "dfd"),
    "HT_OFF_OPEN_SLOT": ("io_open", "file_slot"),
    "HT_OFF_OPEN_FILENAME": ("io_open", "filename"),
    "HT_OFF_FILENAME_NAME": ("filename", "name"),
    "HT_OFF_TASK_FLAGS": ("task_struct", "flags"),
}


# Where a task lives (common.c's origin reads): its mount namespace, and the struct
# pids of the task, its leader and its parent, level by level. mnt_namespace is in no
# header (fs/mount.h), so its member comes from BTF even with exact headers.
ORIGIN_OFFSETS: Dict[str, Tuple[str, str]] = {
    "HT_OFF_NSPROXY": ("task_struct", "nsproxy"),
    "HT_OFF_NSP_MNT": ("nsproxy", "mnt_ns"),
    "HT_OFF_MNT_NS_NS": ("mnt_namespace", "ns"),
    "HT_OFF_NS_INUM": ("ns_common", "inum"),
    "HT_OFF_THREAD_PID": ("task_struct", "thread_pid"),
    "HT_OFF_GROUP_LEADER": ("task_struct", "group_leader"),
    "HT_OFF_PID_LEVEL": ("pid", "level"),
    "HT_OFF_PID_NUMBERS": ("pid", "numbers"),
    "HT_OFF_UPID_NR": ("upid", "nr"),
    "HT_OFF_UPID_NS": ("upid", "ns"),
    "HT_OFF_PIDNS_NS": ("pid_namespace", "ns"),
}
ORIGIN_SIZES: Dict[str, str] = {"HT_SIZE_UPID": "upid"}


def offsets(btf_path: str, wanted: Dict[str, Tuple[str, str]]) -> Dict[str, int]:
    """The offsets ``wanted`` (macro -> struct, member), from the BTF file at ``btf_path``."""
    btf = read_btf(btf_path)
    return {macro: btf.member_offset(s, m) for macro, (s, m) in wanted.items()}


# io_uring_open_layout's keys: byte offsets from an io_uring request (struct io_kiocb)
# to its open's struct filename pointer and dfd, and of the name in struct filename.
LAYOUT_FILENAME = "filename"
LAYOUT_DFD = "dfd"
LAYOUT_NAME = "name"
LAYOUT_HANDLER = "handler"  # 1: the open handler is a function kprobes can reach
# 1: both open opcodes' preparation functions are functions kprobes can reach (their
# second argument is the SQE, whose path pointer is at the uapi offset SQE_ADDR).
LAYOUT_PREP = "prep"


def io_uring_open_layout(btf: Btf, handler: str,
                         preps: Sequence[str] = ()) -> Dict[str, int]:
    """Where an io_uring open request keeps what the kernel copied of its path.

    The request's per-opcode command is ``io_kiocb.cmd`` (6.0+) or the union member
    ``io_kiocb.open`` (5.6 to 5.19, and Debian's 5.10 with its 5.15 io_uring), which
    holds a ``struct io_open``. BtfError when the BTF describes neither."""
    try:
        cmd = btf.member_offset("io_kiocb", "cmd")
    except BtfError:
        cmd = btf.member_offset("io_kiocb", "open")
    return {
        LAYOUT_FILENAME: cmd + btf.member_offset("io_open", "filename"),
        LAYOUT_DFD: cmd + btf.member_offset("io_open", "dfd"),
        LAYOUT_NAME: btf.member_offset("filename", "name"),
        LAYOUT_HANDLER: int(btf.has_function(handler)),
        LAYOUT_PREP: int(bool(preps) and all(btf.has_function(f) for f in preps)),
    }


def read_btf(btf_path: str) -> Btf:
    """The BTF file at ``btf_path``, parsed (BtfError if unreadable)."""
    try:
        with open(btf_path, "rb") as f:
            return Btf(f.read())
    except OSError as exc:
        raise BtfError(f"cannot read {btf_path}: {exc.strerror}") from None


def origin_offsets(btf_path: str) -> Dict[str, int]:
    """The origin reads' offsets and sizes this BTF has (each one it lacks is left out:
    the reads that need it are then not made, and their fields are None)."""
    btf = read_btf(btf_path)
    found: Dict[str, int] = {}
    for macro, (name, member) in ORIGIN_OFFSETS.items():
        try:
            found[macro] = btf.member_offset(name, member)
        except BtfError:
            continue
    for macro, name in ORIGIN_SIZES.items():
        try:
            found[macro] = btf.struct_size(name)
        except BtfError:
            continue
    return found


def task_offsets(btf_path: str) -> Dict[str, int]:
    """The task_struct/mm_struct offsets the programs need, from the BTF file at ``btf_path``."""
    return offsets(btf_path, TASK_OFFSETS)
