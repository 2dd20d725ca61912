"""Which tracepoints the running kernel has, from its BTF, without tracefs.

Every tracepoint compiled into the kernel has a typedef ``btf_trace_<event>``
in the kernel's BTF (what tp_btf programs attach by). Its name is a string in
the BTF string section, and nothing else carries that name, so a look for the
NUL-delimited string answers without parsing the type section: a few
milliseconds for the whole blob.
"""

from __future__ import annotations

import struct
from typing import Dict, Sequence

VMLINUX_BTF = "/sys/kernel/btf/vmlinux"
_HEADER = struct.Struct("<HBBIIIII")  # magic, version, flags, hdr_len, type off/len, str off/len
_MAGIC = 0xEB9F


def btf_strings(blob: bytes) -> bytes:
    """The string section of a BTF blob (ValueError if it is not one)."""
    if len(blob) < _HEADER.size:
        raise ValueError("too short for a BTF header")
    magic, _version, _flags, hdr_len, _toff, _tlen, str_off, str_len = _HEADER.unpack_from(blob)
    if magic != _MAGIC:
        raise ValueError("not little-endian BTF")
    start = hdr_len + str_off
    return blob[start:start + str_len]


def has_tracepoints(blob: bytes, events: Sequence[str]) -> Dict[str, bool]:
    strings = btf_strings(blob)
    return {e: b"\0btf_trace_" + e.encode() + b"\0" in strings for e in events}


def btf_has_tracepoints(events: Sequence[str], path: str = VMLINUX_BTF) -> Dict[str, bool]:
    """Event name -> whether the kernel has that tracepoint; OSError/ValueError if the
    BTF cannot be read."""
    with open(path, "rb") as f:
        return has_tracepoints(f.read(), events)
