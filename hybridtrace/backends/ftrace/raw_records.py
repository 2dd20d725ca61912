"""Decoding binary trace records with the layouts the format files give.

Each enabled event gets one compiled decoder: a struct covering its pid
and every fixed-size field at the offsets the kernel states, plus the
post-processing of strings (``__data_loc``/``__rel_loc`` dynamic strings,
fixed ``char[N]`` arrays). A record decodes to the same names and kinds a
trace_pipe line gives (``sys_openat`` with style ENTER or EXIT, args by
field name) so the correlator is reader-agnostic; values are ints and bytes
instead of printed text. A dynamic string of length 0 is what the kernel
stores when a probe's fetch faulted, so it goes into ``faults`` exactly as
a printed ``(fault)`` does. Records carry no comm: the reader adds it.
"""

from __future__ import annotations

import struct
from typing import Any, Dict, FrozenSet, List, Optional, Sequence, Tuple

import attrs

from hybridtrace import compiled
from hybridtrace.backends.ftrace.format import EventFormat, Field
from hybridtrace.backends.ftrace.ring_page import PageLayout, page_records
from hybridtrace.backends.ftrace.trace_record import ENTER, EXIT, FIELDS, ArgValue

# The optional C loop (built by pip where a compiler is found)
_ringpage = compiled.load("hybridtrace.backends.ftrace._ringpage")


def c_loop() -> Optional[Any]:
    """The C module when it is built and not switched off, else None."""
    return _ringpage

# (timestamp, cpu, tid, event, style, args, faults): sortable by its first item.
RawRecord = Tuple[int, int, int, str, str, Dict[str, ArgValue], FrozenSet[str]]

_INT_CODES = {(1, False): "B", (1, True): "b", (2, False): "H", (2, True): "h",
              (4, False): "I", (4, True): "i", (8, False): "Q", (8, True): "q"}
_SKIPPED = ("common_type", "common_flags", "common_preempt_count", "__syscall_nr", "nr")
_NO_FAULTS: FrozenSet[str] = frozenset()
_INT, _DYN, _REL, _CHARS = range(4)


@attrs.frozen(slots=True)
class _Decoder:
    event: str
    style: str
    unpack: struct.Struct  # the event's own fields, from the record's start
    min_size: int
    names: Tuple[str, ...]  # of the unpacked values, in order
    strings: Tuple[Tuple[str, int, int], ...]  # (name, kind, field offset) to finish
    fields: Tuple[Tuple[str, str, int, int], ...]  # (name, struct code, offset, size)


def _names(fmt: EventFormat) -> Tuple[str, str]:
    """The event name and style trace_pipe prints for this event."""
    if fmt.system in ("syscalls", "raw_syscalls") or fmt.name.startswith("sys_"):
        for side, style in (("sys_enter_", ENTER), ("sys_exit_", EXIT)):
            if fmt.name.startswith(side):
                return "sys_" + fmt.name[len(side):], style
    return fmt.name, FIELDS


def _kind(fld: Field) -> Optional[int]:
    if fld.data_loc:
        return _REL if fld.rel_loc else _DYN
    if fld.is_string and fld.array_len is not None:
        return _CHARS
    if "[" in fld.ctype or (fld.size, fld.signed) not in _INT_CODES:
        return None  # other arrays: nothing we read is one
    return _INT


def _header(fmt: EventFormat) -> None:
    """Our records' common fields sit where every kernel since 4.x puts them."""
    where = {f.name: (f.offset, f.size) for f in fmt.common_fields}
    if where.get("common_type") != (0, 2) or where.get("common_pid") != (4, 4):
        raise ValueError(f"event {fmt.system}/{fmt.name}: unexpected common fields {where}")


def compile_decoder(fmt: EventFormat, order: str = "<") -> _Decoder:
    """One event's decoder (``order``: struct byte order of the traced kernel)."""
    _header(fmt)
    event, style = _names(fmt)
    parts: List[str] = []
    pos = 0
    names: List[str] = []
    strings: List[Tuple[str, int, int]] = []
    fields: List[Tuple[str, str, int, int]] = []
    for fld in sorted(fmt.own_fields, key=lambda f: f.offset):
        if fld.name in _SKIPPED:
            continue
        kind = _kind(fld)
        if kind is None or fld.offset < pos:
            continue
        parts.append(f"{fld.offset - pos}x" if fld.offset > pos else "")
        if kind == _CHARS:
            code, size = "s", fld.size
        elif kind in (_DYN, _REL):
            code, size = "I", 4
        else:
            code, size = _INT_CODES[(fld.size, fld.signed)], fld.size
        parts.append(f"{size}s" if code == "s" else code)
        pos = fld.offset + size
        name = "ret" if style == EXIT else fld.name
        names.append(name)
        fields.append((name, code, fld.offset, size))
        if kind != _INT:
            strings.append((name, kind, fld.offset))
    unpack = struct.Struct(order + "".join(parts))
    return _Decoder(event, style, unpack, max(8, unpack.size), tuple(names), tuple(strings),
                    tuple(fields))


def _compiled(decoders: Dict[int, _Decoder], layout: PageLayout) -> Optional[Any]:
    """The C decoder for these events, or None (not built, or a layout it does not take)."""
    module = c_loop()
    if module is None or any(len(set(d.names)) != len(d.names) for d in decoders.values()):
        return None  # the C loop assumes one value per name (every format we read has that)
    table = [(event_id, d.event, d.style, d.min_size, d.fields, d.strings)
             for event_id, d in decoders.items()]
    try:
        return module.Decoder(layout.order == ">", layout.commit_offset, layout.commit_size,
                                 layout.data_offset, table, _NO_FAULTS)
    except ValueError:
        return None


class RecordDecoder:
    """Decodes the pages of one instance's buffers into RawRecords."""

    def __init__(self, formats: Sequence[EventFormat], layout: PageLayout,
                 use_c: bool = True) -> None:
        order = layout.order
        self.layout = layout
        self._head = struct.Struct(order + "H2xi")  # common_type, common_pid
        self._decoders: Dict[int, _Decoder] = {f.id: compile_decoder(f, order) for f in formats}
        self.unknown = 0  # records of events we did not enable (should stay 0)
        self.short = 0  # records shorter than their format (should stay 0)
        self._header_size = layout.header_struct.size
        self._c = _compiled(self._decoders, layout) if use_c else None

    @property
    def compiled(self) -> bool:
        """Whether pages go through the C decoder (_ringpage.c)."""
        return self._c is not None

    def decode_page(self, page: bytes, cpu: int, out: List[RawRecord]) -> int:
        """Append the page's records to ``out``; returns its missed-events flags.

        A read shorter than the page header holds nothing: counted as short.
        """
        if len(page) < self._header_size:
            self.short += 1
            return 0
        if self._c is not None and type(page) is bytes:  # a bytearray's slices differ
            missed, unknown, short = self._c.decode_page(page, cpu, out)
            self.unknown += unknown
            self.short += short
            return int(missed)
        return self._decode_page_py(page, cpu, out)

    def _decode_page_py(self, page: bytes, cpu: int, out: List[RawRecord]) -> int:
        spans: List[Tuple[int, int, int]] = []
        missed = page_records(page, self.layout, spans)
        decoders = self._decoders
        head = self._head.unpack_from
        append = out.append
        for ts, start, end in spans:
            if end - start < 8:  # not even the common fields: a damaged page
                self.short += 1
                continue
            event_id, tid = head(page, start)
            dec = decoders.get(event_id)
            if dec is None:
                self.unknown += 1
                continue
            if end - start < dec.min_size:
                self.short += 1
                continue
            args: Dict[str, ArgValue] = dict(zip(dec.names, dec.unpack.unpack_from(page, start)))
            faults = _NO_FAULTS
            for name, kind, offset in dec.strings:
                value: Any = args[name]  # bytes for _CHARS, the u32 location otherwise
                if kind == _CHARS:
                    nul = value.find(b"\0")
                    if nul >= 0:
                        args[name] = value[:nul]
                    continue
                length = value >> 16
                if length == 0:
                    faults = faults | {name}
                    del args[name]
                    continue
                first = start + (value & 0xFFFF) + (offset + 4 if kind == _REL else 0)
                text = page[first:min(first + length, end)]
                args[name] = text[:-1] if text.endswith(b"\0") else text
            append((ts, cpu, tid, dec.event, dec.style, args, faults))
        return missed
