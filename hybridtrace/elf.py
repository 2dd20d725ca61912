"""Minimal ELF reader: where a symbol's code sits in the file, and the build id.

uprobe_events takes ``PATH:OFFSET`` with a *file* offset, while the symbol
table gives a virtual address; the PT_LOAD program header that contains the
address converts one into the other (offset = value - p_vaddr + p_offset).
The dynamic symbol table is what a stripped distro libc keeps; the full one
comes from separate debug symbols, found by the GNU build id (debuginfo.py).

Not pyelftools, which reads the same tables: it took 0.31 s for libc's 3,044
dynamic symbols on the CI machine kind where this reader takes 0.025 s, and
every uprobe session start (and the debug file's tens of thousands of
symbols) would pay that.
"""

from __future__ import annotations

import struct
from typing import BinaryIO, Dict, Iterable, List, Optional, Tuple

import attrs

_PT_LOAD = 1
_PT_NOTE = 4
_NT_GNU_BUILD_ID = 3
_SHT_SYMTAB = 2
_SHT_DYNSYM = 11
_SHT_GNU_VERSYM = 0x6FFFFFFF
_STT_FUNC = 2
_STT_GNU_IFUNC = 10
_SHN_UNDEF = 0
_VERSYM_HIDDEN = 0x8000


class ElfError(Exception):
    """The file is not an ELF object this reader understands."""


@attrs.frozen(slots=True)
class Symbol:
    name: str
    value: int
    size: int
    bind: int
    type: int
    section: int
    hidden_version: bool


@attrs.frozen(slots=True)
class _Segment:
    vaddr: int
    offset: int
    filesz: int


@attrs.frozen(slots=True)
class _Section:
    type: int
    offset: int
    size: int
    link: int
    entsize: int


@attrs.frozen(slots=True)
class _Layout:
    """Struct formats for one ELF class and byte order."""

    endian: str
    is64: bool

    def _pick(self, elf64: str, elf32: str) -> str:
        return self.endian + (elf64 if self.is64 else elf32)

    @property
    def header(self) -> str:
        return self._pick("HHIQQQIHHHHHH", "HHIIIIIHHHHHH")

    @property
    def phdr(self) -> str:
        return self._pick("IIQQQQQQ", "IIIIIIII")

    @property
    def shdr(self) -> str:
        return self._pick("IIQQQQIIQQ", "IIIIIIIIII")

    @property
    def sym(self) -> str:
        return self._pick("IBBHQQ", "IIIBBH")


def _read_at(handle: BinaryIO, offset: int, size: int) -> bytes:
    handle.seek(offset)
    data = handle.read(size)
    if len(data) != size:
        raise ElfError("truncated ELF file")
    return data


def _layout(ident: bytes) -> _Layout:
    if len(ident) < 16 or ident[:4] != b"\x7fELF":
        raise ElfError("not an ELF file")
    if ident[4] not in (1, 2) or ident[5] not in (1, 2):
        raise ElfError("unknown ELF class or byte order")
    return _Layout("<" if ident[5] == 1 else ">", ident[4] == 2)


def _segments(handle: BinaryIO, lay: _Layout, phoff: int, phentsize: int,
              phnum: int, kind: int = _PT_LOAD) -> List[_Segment]:
    """The program headers of type ``kind`` (PT_LOAD: where code is loaded)."""
    out: List[_Segment] = []
    size = struct.calcsize(lay.phdr)
    for i in range(phnum):
        raw = struct.unpack(lay.phdr, _read_at(handle, phoff + i * phentsize, size))
        if lay.is64:
            p_type, _flags, p_offset, p_vaddr, _paddr, p_filesz = raw[:6]
        else:
            p_type, p_offset, p_vaddr, _paddr, p_filesz = raw[:5]
        if p_type == kind:
            out.append(_Segment(p_vaddr, p_offset, p_filesz))
    return out


def _sections(handle: BinaryIO, lay: _Layout, shoff: int, shentsize: int,
              shnum: int) -> List[_Section]:
    out: List[_Section] = []
    size = struct.calcsize(lay.shdr)
    for i in range(shnum):
        raw = struct.unpack(lay.shdr, _read_at(handle, shoff + i * shentsize, size))
        if lay.is64:
            _name, sh_type, _fl, _addr, sh_offset, sh_size, sh_link, _info, _al, entsize = raw
        else:
            _name, sh_type, _fl, _addr, sh_offset, sh_size, sh_link, _info, _al, entsize = raw
        out.append(_Section(sh_type, sh_offset, sh_size, sh_link, entsize))
    return out


def _symbols(handle: BinaryIO, lay: _Layout, sections: List[_Section],
             table: _Section, versym: Optional[_Section]) -> List[Symbol]:
    if table.link >= len(sections) or table.entsize == 0:
        return []
    strtab_sec = sections[table.link]
    strtab = _read_at(handle, strtab_sec.offset, strtab_sec.size)
    data = _read_at(handle, table.offset, table.size)
    count = table.size // table.entsize
    versions: Tuple[int, ...] = ()
    if versym is not None and versym.size >= 2 * count:
        versions = struct.unpack(f"{lay.endian}{count}H",
                                 _read_at(handle, versym.offset, 2 * count))
    fmt = lay.sym
    out: List[Symbol] = []
    for i in range(count):
        raw = struct.unpack_from(fmt, data, i * table.entsize)
        if lay.is64:
            st_name, st_info, _other, st_shndx, st_value, st_size = raw
        else:
            st_name, st_value, st_size, st_info, _other, st_shndx = raw
        end = strtab.find(b"\0", st_name)
        name = strtab[st_name:end if end >= 0 else len(strtab)].decode("utf-8", "replace")
        hidden = bool(versions) and bool(versions[i] & _VERSYM_HIDDEN)
        out.append(Symbol(name, st_value, st_size, st_info >> 4, st_info & 0xF, st_shndx,
                          hidden))
    return out


def _header(handle: BinaryIO) -> Tuple[_Layout, Tuple[int, ...]]:
    lay = _layout(_read_at(handle, 0, 16))
    head_size = struct.calcsize(lay.header)
    return lay, struct.unpack(lay.header, _read_at(handle, 16, head_size))


def _notes(data: bytes, endian: str) -> Iterable[Tuple[bytes, int, bytes]]:
    """(name, type, descriptor) of each note in a PT_NOTE segment."""
    pos = 0
    while pos + 12 <= len(data):
        namesz, descsz, ntype = struct.unpack_from(endian + "III", data, pos)
        name_start = pos + 12
        desc_start = name_start + ((namesz + 3) & ~3)
        yield data[name_start:name_start + namesz], ntype, data[desc_start:desc_start + descsz]
        pos = desc_start + ((descsz + 3) & ~3)


def build_id(path: str) -> Optional[str]:
    """The GNU build id of an ELF file as hex; None when it has none or is unreadable."""
    try:
        with open(path, "rb") as handle:
            lay, header = _header(handle)
            for note in _segments(handle, lay, header[4], header[8], header[9], _PT_NOTE):
                data = _read_at(handle, note.offset, note.filesz)
                for name, ntype, desc in _notes(data, lay.endian):
                    if ntype == _NT_GNU_BUILD_ID and name.rstrip(b"\0") == b"GNU":
                        return desc.hex()
    except (OSError, ElfError, struct.error):
        return None
    return None


def read_symbols(path: str, dynamic: bool = True) -> Tuple[List[Symbol], List[_Segment]]:
    """All symbols of the dynamic (or full) symbol table, and the PT_LOAD segments."""
    with open(path, "rb") as handle:
        lay, header = _header(handle)
        phoff, shoff = header[4], header[5]
        phentsize, phnum, shentsize, shnum = header[8], header[9], header[10], header[11]
        segments = _segments(handle, lay, phoff, phentsize, phnum)
        sections = _sections(handle, lay, shoff, shentsize, shnum) if shoff else []
        wanted = _SHT_DYNSYM if dynamic else _SHT_SYMTAB
        versym = next((s for s in sections if s.type == _SHT_GNU_VERSYM), None)
        symbols: List[Symbol] = []
        for sec in sections:
            if sec.type == wanted:
                symbols.extend(_symbols(handle, lay, sections, sec,
                                        versym if dynamic else None))
    return symbols, segments


def _file_offset(value: int, segments: Iterable[_Segment]) -> Optional[int]:
    for seg in segments:
        if seg.vaddr <= value < seg.vaddr + seg.filesz:
            return value - seg.vaddr + seg.offset
    return None


def find_symbols(path: str, names: Iterable[str]) -> Dict[str, int]:
    """File offsets of the defined functions among ``names`` (missing ones left out).

    A name defined twice (symbol versioning) resolves to its default version.
    GNU indirect functions are left out (a probe there would hit the resolver),
    also when an older version of the name is a plain function.
    Raises OSError if the file cannot be read and ElfError if it is not ELF.
    """
    wanted = set(names)
    symbols, segments = read_symbols(path)
    best: Dict[str, Symbol] = {}
    for sym in symbols:
        if sym.name not in wanted or sym.section == _SHN_UNDEF:
            continue
        if sym.type not in (_STT_FUNC, _STT_GNU_IFUNC):
            continue
        held = best.get(sym.name)
        if held is None or (held.hidden_version and not sym.hidden_version):
            best[sym.name] = sym
    out: Dict[str, int] = {}
    for name, sym in best.items():
        offset = _file_offset(sym.value, segments) if sym.type == _STT_FUNC else None
        if offset is not None:
            out[name] = offset
    return out

