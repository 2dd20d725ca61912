"""Internal C library functions, found through separate debug symbols.

Some opens never pass an exported symbol: the dynamic loader opens
ld.so.cache and every shared library through its own ``__open64_nocancel``,
and glibc's opendir uses the hidden ``__openat64_nocancel``. When the
distribution's debug symbols are installed (Debian: libc6-dbg, found by the
library's GNU build id under /usr/lib/debug/.build-id/), their full symbol
table locates those functions, so uprobes can read those paths too.
"""

from __future__ import annotations

import glob
import os
import re
import struct
from typing import Dict, Iterable, List, Optional, Tuple

from hybridtrace.elf import ElfError, read_symbols

DEBUG_ROOT = "/usr/lib/debug"
_PT_NOTE = 4
_NT_GNU_BUILD_ID = 3
_STT_FUNC = 2


def _notes(data: bytes, endian: str) -> Iterable[Tuple[bytes, int, bytes]]:
    pos = 0
    while pos + 12 <= len(data):
        namesz, descsz, ntype = struct.unpack_from(endian + "III", data, pos)
        name_start = pos + 12
        desc_start = name_start + ((namesz + 3) & ~3)
        yield data[name_start:name_start + namesz], ntype, data[desc_start:desc_start + descsz]
        pos = desc_start + ((descsz + 3) & ~3)


def build_id(path: str) -> Optional[str]:
    """The GNU build id of an ELF file as hex, or None."""
    try:
        with open(path, "rb") as handle:
            ident = handle.read(64)
            if len(ident) < 64 or ident[:4] != b"\x7fELF" or ident[4] != 2:
                return None  # 64-bit objects only
            endian = "<" if ident[5] == 1 else ">"
            phoff, = struct.unpack_from(endian + "Q", ident, 32)
            phentsize, phnum = struct.unpack_from(endian + "HH", ident, 54)
            for i in range(phnum):
                handle.seek(phoff + i * phentsize)
                p_type, _flags, p_offset, _vaddr, _paddr, p_filesz = struct.unpack(
                    endian + "IIQQQQ", handle.read(40))
                if p_type != _PT_NOTE:
                    continue
                handle.seek(p_offset)
                for name, ntype, desc in _notes(handle.read(p_filesz), endian):
                    if ntype == _NT_GNU_BUILD_ID and name.rstrip(b"\0") == b"GNU":
                        return str(desc.hex())
    except (OSError, struct.error):
        return None
    return None


def debug_file(path: str, root: str = DEBUG_ROOT) -> Optional[str]:
    bid = build_id(path)
    if bid is None or len(bid) < 3:
        return None
    candidate = os.path.join(root, ".build-id", bid[:2], bid[2:] + ".debug")
    return candidate if os.path.isfile(candidate) else None


def internal_functions(path: str, names: Iterable[str], root: str = DEBUG_ROOT) -> Dict[str, int]:
    """File offsets in ``path`` of functions named in its separate debug symbols.

    The debug file keeps symbol addresses but not the code, so addresses are
    turned into file offsets with the program headers of ``path`` itself.
    """
    debug = debug_file(path, root)
    if debug is None:
        return {}
    wanted = set(names)
    try:
        symbols, _ = read_symbols(debug, dynamic=False)
        _, segments = read_symbols(path)
    except (OSError, ElfError):
        return {}
    out: Dict[str, int] = {}
    for sym in symbols:
        if sym.name not in wanted or sym.type != _STT_FUNC or sym.section == 0:
            continue
        for seg in segments:
            if seg.vaddr <= sym.value < seg.vaddr + seg.filesz:
                out[sym.name] = sym.value - seg.vaddr + seg.offset
                break
    return out


def dynamic_loaders(libc_paths: Iterable[str]) -> List[str]:
    """glibc's dynamic loader(s) next to each libc.so.6 (real paths, no duplicates)."""
    out: List[str] = []
    for lib in libc_paths:
        if not re.match(r"libc[.-]", os.path.basename(lib)):
            continue  # musl's loader is its libc: nothing more to add
        for cand in sorted(glob.glob(os.path.join(os.path.dirname(lib), "ld-linux*.so.*"))):
            real = os.path.realpath(cand)
            if real not in out:
                out.append(real)
    return out
