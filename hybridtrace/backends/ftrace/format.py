"""Parsing the ``format`` file of a tracefs event.

Field names, types and offsets differ between kernels (``__syscall_nr`` vs
``nr``, ``char comm[16]`` vs ``__data_loc char[] comm``), so decoding must be
driven by what the running kernel says rather than by hard-coded layouts.
"""

from __future__ import annotations

import os
import re
from typing import Dict, List, Optional, Tuple

import attrs

_FIELD_RE = re.compile(
    r"^\s*field:(?P<decl>[^;]*);\s*offset:(?P<offset>\d+);\s*size:(?P<size>\d+);"
    r"(?:\s*signed:(?P<signed>-?\d+);)?"
)
# The declared name is the last identifier, optionally followed by "[N]".
_DECL_RE = re.compile(r"^(?P<type>.*?)\s*\b(?P<name>[A-Za-z_]\w*)\s*(?P<array>\[[^\]]*\])?\s*$")
# "label=%s" / "label: 0x%08lx" pairs in a print fmt, in order.
_LABEL_RE = re.compile(r'(?:^|[\s,(])(?P<label>[A-Za-z_]\w*)(?P<sep>=|: )(?:0x|")?%')


class FormatError(Exception):
    """A format file is missing or not in the expected shape."""


@attrs.frozen(slots=True)
class Field:
    """One field of an event record as the kernel describes it."""

    name: str
    ctype: str
    offset: int
    size: int
    signed: bool

    @property
    def data_loc(self) -> bool:
        """True for a dynamic field: the record holds (length << 16 | offset)."""
        return self.ctype.startswith("__data_loc") or self.ctype.startswith("__rel_loc")

    @property
    def rel_loc(self) -> bool:
        """True for ``__rel_loc``: the offset is relative to the end of the field."""
        return self.ctype.startswith("__rel_loc")

    @property
    def array_len(self) -> Optional[int]:
        """Element count of a fixed array (``char comm[16]`` -> 16), else None."""
        match = re.search(r"\[(\d+)\]$", self.ctype)
        return int(match.group(1)) if match else None

    @property
    def is_string(self) -> bool:
        """True when the field holds characters (a dynamic or fixed char array)."""
        base = self.ctype.split("[", 1)[0].split()
        if not base or "[" not in self.ctype:
            return False
        return base[-1] in ("char", "u8") or self.ctype.startswith("__data_loc char")

    @property
    def is_pointer(self) -> bool:
        return "*" in self.ctype

    @property
    def is_common(self) -> bool:
        return self.name.startswith("common_")


@attrs.frozen(slots=True)
class EventFormat:
    """An event's id, fields (common ones first) and print format."""

    system: str
    name: str
    id: int
    fields: Tuple[Field, ...]
    print_fmt: str

    def field(self, name: str) -> Optional[Field]:
        for fld in self.fields:
            if fld.name == name:
                return fld
        return None

    @property
    def common_fields(self) -> Tuple[Field, ...]:
        return tuple(f for f in self.fields if f.is_common)

    @property
    def own_fields(self) -> Tuple[Field, ...]:
        return tuple(f for f in self.fields if not f.is_common)

    @property
    def field_names(self) -> Tuple[str, ...]:
        """Names of the event's own fields, in record order."""
        return tuple(f.name for f in self.own_fields)

    @property
    def syscall_nr_field(self) -> Optional[Field]:
        """The syscall number field: ``__syscall_nr`` on new kernels, ``nr`` on old."""
        return self.field("__syscall_nr") or self.field("nr")

    @property
    def print_parts(self) -> Tuple[str, str]:
        """The print fmt split into its unescaped format string and argument text."""
        return split_print_fmt(self.print_fmt)

    @property
    def print_labels(self) -> Tuple[str, ...]:
        """Labels the print format puts before values, in order.

        They are not always field names (sched_process_fork prints its
        ``parent_comm`` field as ``comm=``), so a text parser splits on these.
        """
        return tuple(m.group("label") for m in _LABEL_RE.finditer(self.print_parts[0]))

    @property
    def print_separator(self) -> str:
        """``=`` for ``name=value`` events, ``: `` for syscall-style ``name: value``."""
        match = _LABEL_RE.search(self.print_parts[0])
        return match.group("sep") if match else "="


def split_print_fmt(fmt: str) -> Tuple[str, str]:
    """Split ``"fmt", args`` into the unescaped C string and the argument text."""
    if not fmt.startswith('"'):
        return fmt, ""
    out: List[str] = []
    i = 1
    while i < len(fmt):
        ch = fmt[i]
        if ch == "\\" and i + 1 < len(fmt):
            nxt = fmt[i + 1]
            out.append({"n": "\n", "t": "\t"}.get(nxt, nxt))
            i += 2
            continue
        if ch == '"':
            return "".join(out), fmt[i + 1 :].lstrip().lstrip(",").strip()
        out.append(ch)
        i += 1
    return "".join(out), ""


def _parse_field(line: str) -> Optional[Field]:
    match = _FIELD_RE.match(line)
    if match is None:
        return None
    decl = _DECL_RE.match(match.group("decl").strip())
    if decl is None:
        raise FormatError(f"cannot parse field declaration {match.group('decl')!r}")
    ctype = decl.group("type").strip() + (decl.group("array") or "")
    signed_text = match.group("signed")
    return Field(
        name=decl.group("name"),
        ctype=ctype,
        offset=int(match.group("offset")),
        size=int(match.group("size")),
        signed=signed_text is not None and int(signed_text) != 0,
    )


def parse_format(text: str, system: str) -> EventFormat:
    """Parse the text of events/<system>/<name>/format."""
    name: Optional[str] = None
    event_id: Optional[int] = None
    fields: List[Field] = []
    print_fmt = ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("name:") and name is None:
            name = stripped[len("name:"):].strip()
        elif stripped.startswith("ID:"):
            try:
                event_id = int(stripped[len("ID:"):].strip())
            except ValueError as exc:
                raise FormatError(f"bad ID line {stripped!r}") from exc
        elif stripped.startswith("field:"):
            fld = _parse_field(stripped)
            if fld is None:
                raise FormatError(f"cannot parse field line {stripped!r}")
            fields.append(fld)
        elif stripped.startswith("print fmt:"):
            print_fmt = stripped[len("print fmt:"):].strip()
    if name is None or event_id is None:
        raise FormatError(f"format of a {system} event has no name or ID line")
    return EventFormat(system, name, event_id, tuple(fields), print_fmt)


def read_format(events_dir: str, system: str, name: str) -> EventFormat:
    """Read and parse events_dir/<system>/<name>/format."""
    path = os.path.join(events_dir, system, name, "format")
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as handle:
            text = handle.read()
    except FileNotFoundError as exc:
        raise FormatError(f"event {system}/{name} does not exist ({path} missing)") from exc
    except OSError as exc:
        raise FormatError(f"cannot read {path}: {exc.strerror}") from exc
    return parse_format(text, system)


def read_formats(events_dir: str, names: Dict[str, str]) -> Dict[str, EventFormat]:
    """Read several formats: {event name: system} -> {event name: EventFormat}."""
    return {name: read_format(events_dir, system, name) for name, system in names.items()}
