"""The binary layout of a tracefs ring-buffer page, as trace_pipe_raw hands it out.

Reading ``per_cpu/cpuN/trace_pipe_raw`` returns whole sub-buffer pages: a
header (``events/header_page``: a u64 timestamp, a ``local_t commit`` whose
low bits are the bytes of data and whose top bits flag missed events) and
then compressed entries (``events/header_event``): a u32 of ``type_len:5``
and ``time_delta:27``, then for type_len 1..28 a record of type_len*4 bytes;
for 0 a u32 length (itself counted) and the record; 29 padding (delta 0:
the rest of the page is empty), 30 a time extend (delta += array[0] << 27),
31 an absolute time stamp. Layout facts are read from the kernel's header
files where it states them, so a 32-bit ``local_t`` or a bigger sub-buffer
works too.
"""

from __future__ import annotations

import os
import re
import struct
import sys
from typing import List, Tuple

import attrs

PADDING = 29
TIME_EXTEND = 30
TIME_STAMP = 31
MAX_DATA_TYPE_LEN = 28
_MISSED_FLAGS = (1 << 31) | (1 << 30)  # RB_MISSED_EVENTS | RB_MISSED_STORED
_TS_MSB = 0xF8 << 56  # bits an absolute time stamp entry does not carry
_ENTRY = {"<": struct.Struct("<I"), ">": struct.Struct(">I")}
_FIELD_RE = re.compile(r"field:\s*(?P<type>[\w ]+?)\s+(?P<name>\w+);\s*offset:(?P<offset>\d+);"
                       r"\s*size:(?P<size>\d+);")


class PageFormatError(Exception):
    """header_page does not describe a layout this decoder knows."""


@attrs.frozen(slots=True)
class PageLayout:
    """Where the page header's parts sit; ``page_size`` is what one read returns."""

    commit_offset: int = 8
    commit_size: int = 8
    data_offset: int = 16
    page_size: int = 4096
    order: str = "<" if sys.byteorder == "little" else ">"  # struct byte order

    @property
    def header_struct(self) -> struct.Struct:
        """Unpacks (timestamp, commit) from the start of a page."""
        gap = self.commit_offset - 8
        return struct.Struct(self.order + "Q" + (f"{gap}x" if gap else "")
                             + ("Q" if self.commit_size == 8 else "I"))


def parse_header_page(text: str) -> PageLayout:
    """The layout from the text of events/header_page."""
    fields = {m.group("name"): (int(m.group("offset")), int(m.group("size")))
              for m in _FIELD_RE.finditer(text)}
    try:
        commit_off, commit_size = fields["commit"]
        data_off, data_size = fields["data"]
    except KeyError:
        raise PageFormatError("header_page has no commit or data field") from None
    if fields.get("timestamp", (0, 8)) != (0, 8) or commit_size not in (4, 8):
        raise PageFormatError(f"unexpected page header {sorted(fields.items())}")
    return PageLayout(commit_off, commit_size, data_off, data_off + data_size)


def read_page_layout(events_dir: str) -> PageLayout:
    """The layout of this kernel's pages (events/header_page of an instance or the top)."""
    try:
        with open(os.path.join(events_dir, "header_page"), encoding="ascii",
                  errors="replace") as handle:
            return parse_header_page(handle.read())
    except OSError as exc:
        raise PageFormatError(f"cannot read header_page: {exc.strerror}") from None


def page_records(page: bytes, layout: PageLayout,
                 out: List[Tuple[int, int, int]]) -> int:
    """Append (timestamp, start, end) of each data record of ``page`` to ``out``.

    Returns the page's ``missed`` flag bits (non-zero: the kernel dropped or
    overwrote events just before this page; the per-CPU stats count them).
    A damaged page (a commit past its end, a record running past the data)
    ends where the damage starts: nothing outside the page is ever read.
    """
    ts, commit = layout.header_struct.unpack_from(page, 0)
    start = layout.data_offset
    end = min(len(page), start + (commit & ~_MISSED_FLAGS & 0xFFFFFFFF))
    unpack = _ENTRY[layout.order].unpack_from
    pos = start
    append = out.append
    while pos + 4 <= end:
        word = unpack(page, pos)[0]
        type_len = word & 0x1F
        delta = word >> 5
        if 0 < type_len <= MAX_DATA_TYPE_LEN:
            nxt = pos + 4 + type_len * 4
            if nxt > end:
                break  # damaged: runs past the data
            ts += delta
            append((ts, pos + 4, nxt))
            pos = nxt
        elif type_len == 0:
            if pos + 8 > end:
                break
            nxt = pos + 4 + unpack(page, pos + 4)[0]
            if nxt <= pos + 8 or nxt > end:
                break  # damaged: empty, or runs past the data
            ts += delta
            append((ts, pos + 8, nxt))
            pos = nxt
        elif type_len == TIME_EXTEND:
            if pos + 8 > end:
                break
            ts += (unpack(page, pos + 4)[0] << 27) | delta
            pos += 8
        elif type_len == TIME_STAMP:
            if pos + 8 > end:
                break
            ts = ((unpack(page, pos + 4)[0] << 27) | delta) | (ts & _TS_MSB)
            pos += 8
        else:  # PADDING: a discarded record, or (delta 0) the end of the data
            if delta == 0 or pos + 8 > end:
                break
            pos += 4 + unpack(page, pos + 4)[0]
    return int(commit) & _MISSED_FLAGS


def read_page_files(pages_dir: str) -> Tuple[PageLayout, List[Tuple[int, bytes]]]:
    """Pages saved by tools/record_ftrace_stream.py: header_page and cpuN.bin files.

    Not used by sessions: it stays beside the page parser it feeds, so the
    recorded format and its reader change together (the unit tests and
    tools/bench replay recordings through it).

    Returns the layout and (cpu, page) pairs, each CPU's pages in read order.
    """
    with open(os.path.join(pages_dir, "header_page"), encoding="ascii") as handle:
        layout = parse_header_page(handle.read())
    pages: List[Tuple[int, bytes]] = []
    for name in sorted(os.listdir(pages_dir)):
        match = re.match(r"^cpu(\d+)\.bin$", name)
        if match is None:
            continue
        with open(os.path.join(pages_dir, name), "rb") as handle:
            data = handle.read()
        size = layout.page_size
        pages += [(int(match.group(1)), data[pos:pos + size]) for pos in range(0, len(data), size)]
    return layout, pages
