"""Parsing the text of a tracefs ``trace_pipe`` into records.

A record starts with a header (comm, pid, optional ``(tgid)``, cpu, optional
irq-flags column, timestamp, event name) followed by one of three bodies:

* ``name: field=value ...``: tracepoints and probe events (style FIELDS);
* ``sys_openat(dfd: 0x..., filename: 0x...)``: syscall entry (ENTER);
* ``sys_openat -> 0x3``: syscall exit (EXIT); ``args`` is ``{"ret": ...}``.

What the kernel prints (measured on 6.18, tests/fixtures/trace_pipe/): strings
from traced processes are printed raw, nothing escaped: quotes, ``=``, spaces,
escape bytes, invalid UTF-8 and newlines appear as they are, so one record
may span lines. A line that does not start a record continues the previous
one, and while a record is open (its quotes or fields unfinished) every line
is held as part of it until it completes, even lines that look like headers:
strings can hide whole fake records after newlines. Residual ambiguity, as
the text itself is ambiguous: a string with a quote right before a newline
can end its record early where the record is already complete there (what
follows is then parsed as records of its own, flagged ``complete=False``
unless it matches its event's format fully), and a quoted value holding
``" label=`` of the next field is split at the earliest place that matches
the whole print format. Treat probe strings as attacker-controlled. Leading
spaces of a comm are lost (the kernel pads comm on the left).

``(fault)`` (a probe could not read user memory) is not a value: the field
goes into ``faults``. An argv slot after the NULL terminator reads as
``(fault)``, and slots after that may hold garbage, so argv ends at the
first fault. kprobes and eprobes (recorded on 5.10, 6.1 and 6.12) print an
empty user string as ``(fault)`` too (its fetch stores length 0), and 6.12 eprobes
fault on every ``+0($field):ustring`` of a syscall's ``const char *`` field;
the bytes hold no value then, so none is invented (tests/fixtures/trace_pipe/
README.md). A uprobe record holds at most about one page of strings: longer
ones arrive cut short and later slots fault; a kprobe or eprobe record that
large is not written at all. Probes print their location as
``(0x7f...)``, ``(sym+0x0/0x80)`` or ``(ret <- func)``, not as their format
says: it is kept whole in ``args["__probe_ip"]``.

A read() of trace_pipe returns whole records: the kernel formats whole
records into its trace_seq buffer (a page; 8 KB on 6.18) and hands out at most
that size - 1, so at most the final newline of a full buffer comes in the next
read (parsed as harmless). Every recorded read ended at a record boundary.
A reader with a buffer of 64 KB therefore calls ``feed(chunk)`` and
``flush()`` after every read; smaller reads must not flush. Overruns in overwrite mode show as
``CPU:n [LOST k EVENTS]`` records (style LOST); drops with overwrite off
show only in per_cpu stats (see buffer_stats).
"""

from __future__ import annotations

import re
from typing import Dict, FrozenSet, Iterable, List, Optional, Pattern, Tuple

import attrs

from hybridtrace.backends.ftrace.format import EventFormat
from hybridtrace.backends.ftrace.trace_record import (
    ENTER,
    EXIT,
    FIELDS,
    LOST,
    LOST_EVENT,
    TraceLine,
)

_MAX_RECORD = 1 << 20  # a record longer than this is cut off (flagged incomplete)
_NO_FAULTS: FrozenSet[str] = frozenset()
# Only a line with one of these can complete an open record (closing quote,
# a following field, the end of a syscall's argument list).
_MAY_CLOSE_RE = re.compile(rb'["=)]')
_FAULT_PREFIX = "ht__fault"  # regex group names of "(fault)" alternatives

# comm is right-aligned in 16 columns and at most 15 bytes (16 tolerated), so
# the greedy bound finds the real "-PID [CPU]" even when comm contains one.
_HEADER_RE = re.compile(
    rb"^ *(?P<comm>.{0,16})-(?P<pid>\d+) +(?:\( *(?P<tgid>[-\d]+)\) +)?\[(?P<cpu>\d+)\] +"
    rb"(?:(?P<flags>[^ \[\]]{3,8}) +)?(?P<sec>\d+)(?:\.(?P<frac>\d+))?: "
    rb"(?P<event>[\w.]+)(?:(?P<sep>: ?| -> |\()(?P<body>.*))?\Z",
    re.S,
)
_LOST_RE = re.compile(rb"^CPU:(?P<cpu>\d+) \[LOST (?P<count>\d+) EVENTS\]\Z")

# Generic bodies, used when no format is known for an event.
_PROBE_IP_RE = re.compile(rb"\((?P<ip>[^)]*)\)(?: |\Z)")
_LOCATION_RE = re.compile(rb"\((?P<ip>[^)]*)\)")
_GENERIC_PAIR_RE = re.compile(
    rb"(?P<key>\w+)=(?:\"(?P<q>.*?)\"|(?P<fault>\(fault\))|(?P<v>(?!\")[^ ]*(?: (?!\w+=)[^ ]*)*))"
    rb"(?: (?=\w+=)|\Z)",
    re.S,
)
_GENERIC_SYSCALL_RE = re.compile(rb"(?P<key>\w+): (?P<v>.*?)(?:, (?=\w+: )|\)\Z)", re.S)

_SPEC_RE = re.compile(
    r"%(?:%|[-+ #0]*(?:\d+|\*)?(?:\.(?:\d+|\*))?(?:hh|h|ll|l|z|j|t|L)?"
    r"(?:p[A-Za-z]\w*|[diouxXcspeEfgG]))"
)
_PROBE_PREFIX_RE = re.compile(r"\(%l?[xu](?: <- %l?[xu])?\)")
_ARG_FIELD_RE = re.compile(r"REC->(\w+)|__get_(?:str|dynamic_array|bitmask|rel_str)\((\w+)\)")


@attrs.frozen(slots=True)
class _Body:
    """Compiled body pattern of one event. Group names are the field names;
    ``fault_groups`` pairs the group matching ``(fault)`` with its field."""

    regex: Pattern[bytes]
    fault_groups: Tuple[Tuple[str, str], ...]
    bare: bool = False  # the print fmt has no probe location in front
    # Unquoted strings printed side by side ("oldcomm=%s newcomm=%s"): (first, second,
    # the text between). Where either value holds that text, the split is a guess.
    adjacent: Tuple[Tuple[str, str, bytes], ...] = ()


def _split_args(text: str) -> List[str]:
    """Split C argument text on top-level commas."""
    parts: List[str] = []
    depth = 0
    quote = False
    start = 0
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == '"':
                quote = False
        elif ch == '"':
            quote = True
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
        i += 1
    tail = text[start:].strip()
    if tail:
        parts.append(tail)
    return parts


def _arg_name(expr: str, index: int, used: Dict[str, int]) -> str:
    match = _ARG_FIELD_RE.search(expr)
    name = (match.group(1) or match.group(2)) if match else f"arg{index}"
    if name in used:
        used[name] += 1
        name = f"{name}_{used[name]}"
    else:
        used[name] = 0
    return name


def _fields_body(fmt: EventFormat) -> Optional[_Body]:
    """A regex for ``name: ...`` bodies built from the event's print fmt."""
    text, arg_text = fmt.print_parts
    args = _split_args(arg_text)
    pieces: List[str] = []
    faults: List[Tuple[str, str]] = []
    adjacent: List[Tuple[str, str, bytes]] = []
    bare_string: Optional[str] = None  # the last conversion, if an unquoted string
    between = ""  # the text printed since the last conversion
    used: Dict[str, int] = {}
    arg_index = 0
    pos = 0
    prefix = _PROBE_PREFIX_RE.match(text)
    if prefix is not None:
        # Probes print their location their own way, not as their print fmt says:
        # (0x7f...), (sym+0x0/0x80), (ret <- func) for return probes, (system.event)
        # for eprobes. The text in parentheses is kept whole as "__probe_ip".
        pieces.append(r"\((?P<__probe_ip>[^)]*)\)")
        used["__probe_ip"] = 0
        arg_index, pos = prefix.group(0).count("%"), prefix.end()

    for spec in _SPEC_RE.finditer(text, pos):
        literal = text[pos : spec.start()]
        conv = spec.group(0)
        pos = spec.end()
        if conv == "%%":
            pieces.append(re.escape(literal + "%"))
            between += literal + "%"
            continue
        between, literal_run = "", between + literal
        if arg_index >= len(args):
            return None
        arg_index += conv.count("*")  # width/precision arguments
        if arg_index >= len(args):
            return None
        group = _arg_name(args[arg_index], arg_index, used)
        arg_index += 1
        if conv.endswith("s") and literal.endswith('"') and text[pos : pos + 1] == '"':
            pieces.append(re.escape(literal[:-1]))
            fault = f"{_FAULT_PREFIX}{len(faults)}"
            faults.append((fault, group))
            pieces.append(rf'(?:"(?P<{group}>.*?)"|(?P<{fault}>\(fault\)))')
            pos += 1
        elif conv.endswith("s"):
            pieces.append(re.escape(literal) + rf"(?P<{group}>.*?)")
            if bare_string is not None and literal_run:
                adjacent.append((bare_string, group,
                                 literal_run.encode("utf-8", "surrogateescape")))
            bare_string = group
            continue
        else:
            # A "0x" before the number stays in the value: values are what follows "=".
            lead = "0x" if literal.endswith("0x") else ""
            literal = literal[: len(literal) - len(lead)]
            pieces.append(re.escape(literal) + rf"(?P<{group}>{lead}[^ ]*?)")
        bare_string = None
    pieces.append(re.escape(text[pos:]))
    pattern = "".join(pieces).encode("utf-8", "surrogateescape")
    if any(name.startswith(_FAULT_PREFIX) for name in used):
        return None
    return _Body(re.compile(pattern + rb"\Z", re.S), tuple(faults), prefix is None,
                 tuple(adjacent))


def _enter_body(fmt: EventFormat) -> _Body:
    """A regex for ``sys_x(a: 1, b: 2)`` bodies from the syscall's own fields."""
    fields = [f.name for f in fmt.own_fields if f.name not in ("__syscall_nr", "nr")]
    parts = [f"{name}: (?P<{name}>.*?)" for name in fields]
    pattern = ", ".join(parts) + r"\)"
    return _Body(re.compile(pattern.encode() + rb"\Z", re.S), ())


def _body_key(fmt: EventFormat) -> Tuple[bytes, str]:
    """(printed event name, style) under which an event's records appear."""
    if fmt.system == "syscalls" and fmt.name.startswith("sys_enter_"):
        return ("sys_" + fmt.name[len("sys_enter_") :]).encode(), ENTER
    if fmt.system == "syscalls" and fmt.name.startswith("sys_exit_"):
        return ("sys_" + fmt.name[len("sys_exit_") :]).encode(), EXIT
    return fmt.name.encode(), FIELDS


_FRACTION_SCALE = tuple(10 ** (9 - n) for n in range(10))


class PipeParser:
    """Turns trace_pipe bytes into TraceLine records.

    ``formats`` (optional) are the formats of the events being traced; with
    them, bodies are split by the known field order (exact even when strings
    contain `` name=``); without, a generic split is used. Records are held
    until the next record starts or ``flush()`` is called: the kernel never
    splits a record across read() calls of trace_pipe, so a reader calls
    ``feed(chunk)`` and then ``flush()`` after each read.
    """

    def __init__(self, formats: Iterable[EventFormat] = ()) -> None:
        self._enter: Dict[bytes, _Body] = {}
        self._fields: Dict[bytes, _Body] = {}
        self._names: Dict[bytes, str] = {}
        for fmt in formats:
            self.add_format(fmt)
        self._partial = b""
        self._pending: Optional[bytes] = None
        self._pending_rec: Optional[TraceLine] = None
        self._held: List[bytes] = []  # lines after an open record, not yet placed
        self._held_size = 0
        self.orphan_lines = 0  # lines that continued no record (start of stream)

    def add_format(self, fmt: EventFormat) -> None:
        """Use ``fmt`` to split the bodies of its event's records."""
        key, style = _body_key(fmt)
        if style == ENTER:
            self._enter[key] = _enter_body(fmt)
        elif style == FIELDS:
            body = _fields_body(fmt)
            if body is not None:
                self._fields[key] = body

    def parse_line(self, line: bytes) -> Optional[TraceLine]:
        """Parse one record (without its final newline); None if it is no record."""
        head = _HEADER_RE.match(line)
        if head is None:
            lost = _LOST_RE.match(line)
            if lost is None:
                return None
            return TraceLine(b"", 0, int(lost.group("cpu")), 0, LOST_EVENT,
                             {"count": lost.group("count")}, line, LOST)
        comm, pid, tgid, cpu, flags, sec, frac, event_b, sep, body = head.groups()
        event = self._names.get(event_b)
        if event is None:
            event = self._names[event_b] = event_b.decode("ascii")
        if frac is None:
            stamp = int(sec)  # a counter clock: no fraction, not nanoseconds
        elif len(frac) <= 9:
            stamp = int(sec) * 1_000_000_000 + int(frac) * _FRACTION_SCALE[len(frac)]
        else:
            stamp = int(sec) * 1_000_000_000 + int(frac[:9])
        faults: FrozenSet[str] = _NO_FAULTS
        if sep == b"(":
            style = ENTER
            args, complete = self._enter_args(event_b, body)
        elif sep == b" -> ":
            style = EXIT
            args, complete = {"ret": body}, b"\n" not in body
        else:
            style = FIELDS
            args, faults, complete = self._fields_args(event_b, body or b"")
        return TraceLine(comm.lstrip(b" "), int(pid), int(cpu), stamp, event, args, line,
                         style, faults, flags, complete,
                         int(tgid) if tgid is not None and tgid.isdigit() else None)

    def _enter_args(self, event: bytes, body: bytes) -> Tuple[Dict[str, bytes], bool]:
        spec = self._enter.get(event)
        if spec is not None:
            match = spec.regex.match(body)
            if match is not None:
                return match.groupdict(), True
        if body == b")":
            return {}, spec is None or spec.regex.pattern == rb"\)\Z"
        args: Dict[str, bytes] = {}
        end = 0
        for match in _GENERIC_SYSCALL_RE.finditer(body):
            if match.start() != end:
                break
            args[match.group("key").decode("ascii")] = match.group("v")
            end = match.end()
        return args, end == len(body) and spec is None

    def _fields_args(
        self, event: bytes, body: bytes
    ) -> Tuple[Dict[str, bytes], FrozenSet[str], bool]:
        spec = self._fields.get(event)
        if spec is not None:
            match = spec.regex.match(body)
            location = None
            if match is None and spec.bare and body[:1] == b"(":
                # eprobes print "(system.event) " before what their print fmt says.
                location = _LOCATION_RE.match(body)
                if location is not None:
                    end = location.end()
                    match = spec.regex.match(body, end) or spec.regex.match(body, end + 1)
            if match is not None:
                groups = match.groupdict()
                if location is not None:
                    groups = {"__probe_ip": location.group("ip"), **groups}
                if spec.adjacent:
                    guessed = _guessed_split(groups, spec.adjacent)
                    if guessed:
                        return groups, guessed, True
                if not spec.fault_groups:
                    return groups, _NO_FAULTS, True
                faults = frozenset(f for g, f in spec.fault_groups if groups.pop(g) is not None)
                if faults:
                    for name in faults:
                        del groups[name]
                return groups, faults, True
        args, fault_set, complete = _generic_fields(body)
        return args, fault_set, complete and spec is None

    def feed(self, data: bytes) -> List[TraceLine]:
        """Parse a chunk of trace_pipe; returns the records it completed."""
        out: List[TraceLine] = []
        buf = self._partial + data if self._partial else data
        lines = buf.split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            self._line(line, out)
        return out

    def flush(self) -> List[TraceLine]:
        """Records still held (call after each read, and at the end of the stream)."""
        out: List[TraceLine] = []
        if self._partial:
            self._line(self._partial, out)
            self._partial = b""
        if self._held:
            self._resolve(out)
        if self._pending_rec is not None:
            out.append(self._pending_rec)
        self._pending = None
        self._pending_rec = None
        return out

    def _line(self, line: bytes, out: List[TraceLine]) -> None:
        prev = self._pending_rec
        if prev is not None and not prev.complete:
            # An open record (its string has not ended): every line is held, even
            # one that looks like a header, until the record completes or the
            # read ends; a string may contain whole fake records after newlines.
            held = self._held
            held.append(line)
            self._held_size += len(line) + 1
            if _MAY_CLOSE_RE.search(line) is not None:
                joined = b"\n".join([self._pending or b"", *held])
                rec = self.parse_line(joined)
                if rec is not None and rec.complete:
                    self._pending, self._pending_rec = joined, rec
                    self._held, self._held_size = [], 0
                    return
            if self._held_size > _MAX_RECORD:
                self._resolve(out)
            return
        self._split_line(line, out)

    def _resolve(self, out: List[TraceLine]) -> None:
        """The open record never completed: split the held lines at headers."""
        held, self._held, self._held_size = self._held, [], 0
        for line in held:
            self._split_line(line, out)

    def _split_line(self, line: bytes, out: List[TraceLine]) -> None:
        """A header line starts a record; any other line continues the last one."""
        pending = self._pending
        prev = self._pending_rec
        rec = self.parse_line(line)
        if rec is None:
            if pending is None:
                if line:  # an empty line: the newline of a record cut by a read
                    self.orphan_lines += 1
                return
            joined = pending + b"\n" + line
            if len(joined) <= _MAX_RECORD:  # beyond: keep the cut-off record, incomplete
                joined_rec = self.parse_line(joined)
                if joined_rec is not None:
                    self._pending, self._pending_rec = joined, joined_rec
            return
        if prev is not None:
            out.append(prev)
        self._pending, self._pending_rec = line, rec


def _guessed_split(groups: Dict[str, bytes],
                   adjacent: Tuple[Tuple[str, str, bytes], ...]) -> FrozenSet[str]:
    """Unquoted strings side by side whose split is a guess: ``oldcomm=a newcomm=b
    newcomm=c`` is "a" and "b newcomm=c" or "a newcomm=b" and "c". Neither value is
    known then: both are removed from ``groups`` and returned, as faults are."""
    guessed = {name for first, second, between in adjacent
               if between in groups[first] or between in groups[second]
               for name in (first, second)}
    for name in guessed:
        del groups[name]
    return frozenset(guessed)


def _generic_fields(body: bytes) -> Tuple[Dict[str, bytes], FrozenSet[str], bool]:
    """Split ``(ip) a=1 b="x"`` without knowing the fields: best effort."""
    args: Dict[str, bytes] = {}
    faults: List[str] = []
    pos = 0
    ip = _PROBE_IP_RE.match(body)
    if ip is not None:
        args["__probe_ip"] = ip.group("ip")
        pos = ip.end()
    for match in _GENERIC_PAIR_RE.finditer(body, pos):
        if match.start() != pos:
            break
        key = match.group("key").decode("ascii")
        if match.group("fault") is not None:
            faults.append(key)
        else:
            value = match.group("q")
            args[key] = value if value is not None else match.group("v")
        pos = match.end()
    return args, frozenset(faults), pos == len(body)
