"""Parse the text columns of libbpf-tools and BCC execsnoop/opensnoop.

Both print ``PCOMM PID PPID RET ARGS`` and ``PID COMM FD ERR PATH`` with
fixed-width, space-padded columns (libbpf-tools 0.26 formats them as
``%-16s %-6d %-6d %3d `` and ``%-6d %-16s %3d %3d ``). A comm may hold spaces,
so the patterns anchor on the numeric columns instead of splitting on
whitespace. ARGS are argv joined by single spaces (with a trailing one), so
an argument containing a space cannot be told apart; the bench's arguments
contain none.
"""

from __future__ import annotations

import re
from typing import Iterable, Optional, Tuple

from tools.bench.observed import Observed, Parsed

_EXEC_RE = re.compile(rb"^(?P<comm>.{1,16}?) +(?P<pid>\d+) +(?P<ppid>\d+) +(?P<ret>-?\d+) "
                      rb"(?P<args>.*)$")
_OPEN_RE = re.compile(rb"^(?P<pid>\d+) +(?P<comm>.{1,16}?) +(?P<fd>-?\d+) +(?P<err>-?\d+) "
                      rb"(?P<path>.*)$")
# libbpf-tools: "Lost %llu events on CPU #%d!"; BCC's perf reader: "Possibly lost %d samples".
_LOST_RE = re.compile(rb"(?:Lost (\d+) events on CPU #\d+|Possibly lost (\d+) samples)")


def split_args(text: bytes) -> Optional[Tuple[bytes, ...]]:
    """ARGS column -> argv; None when the tool printed no argument at all."""
    if text.endswith(b" "):
        text = text[:-1]
    if not text:
        return None
    return tuple(text.split(b" "))


def parse_exec_line(line: bytes) -> Optional[Observed]:
    m = _EXEC_RE.match(line.rstrip(b"\n"))
    if m is None:
        return None
    ret = int(m.group("ret"))
    return Observed(kind="exec", pid=int(m.group("pid")), comm=m.group("comm").rstrip(b" "),
                    path=None, argv=split_args(m.group("args")), ok=ret == 0)


def parse_open_line(line: bytes) -> Optional[Observed]:
    m = _OPEN_RE.match(line.rstrip(b"\n"))
    if m is None:
        return None
    return Observed(kind="open", pid=int(m.group("pid")), comm=m.group("comm").rstrip(b" "),
                    path=m.group("path"), ok=int(m.group("err")) == 0)


def count_lost(lines: Iterable[bytes]) -> Tuple[int, int]:
    """(events reported lost, number of loss reports) in a tool's stderr or stdout."""
    total = reports = 0
    for line in lines:
        for m in _LOST_RE.finditer(line):
            total += int(m.group(1) or m.group(2))
            reports += 1
    return total, reports


def parse_text(kind: str, stdout: Iterable[bytes], stderr: Iterable[bytes]) -> Parsed:
    """A whole run of a text tool; the header and odd lines count as unparsed."""
    parse = parse_exec_line if kind == "exec" else parse_open_line
    events = []
    unparsed = 0
    out_lines = list(stdout)
    for line in out_lines:
        event = parse(line)
        if event is None:
            unparsed += 1
        else:
            events.append(event)
    lost_out, reports_out = count_lost(out_lines)
    lost_err, reports_err = count_lost(stderr)
    return Parsed(events=events, lost=lost_out + lost_err, lost_reports=reports_out + reports_err,
                  unparsed_lines=unparsed)
