"""Hostile strings never reach the terminal raw; JSON keeps exact bytes."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import jsonschema
import pytest

from hybridtrace.events import ExecEvent, LostEvent, OpenEvent, Source
from hybridtrace.output.columns import ExecFormat, OpenFormat
from hybridtrace.output.escape import escape_bytes, quote_arg
from hybridtrace.output.jsonl import decode_bytes, encode_bytes, event_to_dict, event_to_json

SCHEMA = json.loads(
    (Path(__file__).parents[2] / "hybridtrace/schemas/event.schema.json").read_text()
)

HOSTILE = [
    b"\x1b[2J\x1b]0;pwned\x07",  # clear screen, set title
    b"line1\nline2\r\n",
    b"\xff\xfe invalid utf-8 \xc3",
    b"tab\there \\ backslash",
    "bidi \u202e override, zero width \u200b, C1 \u009b".encode(),
    b"A" * 100_000,
]


def _unescape(text: str) -> bytes:
    """Reverse of escape_bytes, to prove the mapping loses nothing."""
    out = bytearray()
    i = 0
    while i < len(text):
        ch = text[i]
        if ch != "\\":
            out += ch.encode()
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "x":
            out.append(int(text[i + 2 : i + 4], 16))
            i += 4
        else:
            out += {"n": b"\n", "t": b"\t", "r": b"\r", "\\": b"\\"}[nxt]
            i += 2
    return bytes(out)


@pytest.mark.parametrize("data", HOSTILE)
def test_escape_is_printable_single_line_and_reversible(data: bytes) -> None:
    text = escape_bytes(data)
    assert text.isprintable()
    assert "\n" not in text and "\x1b" not in text
    assert _unescape(text) == data


def test_escape_keeps_plain_text_and_valid_unicode() -> None:
    assert escape_bytes(b"/usr/bin/ls -la") == "/usr/bin/ls -la"
    assert escape_bytes("caf\u00e9 \u65e5\u672c".encode()) == "caf\u00e9 \u65e5\u672c"
    assert escape_bytes(b"a\nb") == "a\\nb"  # newline shown as \n, like BCC


def test_quote_arg_escapes_quotes() -> None:
    assert quote_arg(b'say "hi" now') == '"say \\"hi\\" now"'


@pytest.mark.parametrize("data", [*HOSTILE, b"", b"plain"])
def test_json_bytes_round_trip(data: bytes) -> None:
    encoded = json.loads(json.dumps(encode_bytes(data)))
    assert decode_bytes(encoded) == data


def _exec(argv: tuple, **kw: object) -> ExecEvent:
    base = dict(timestamp_ns=time.monotonic_ns(), pid=10, tid=10, ppid=1, uid=0,
                comm=HOSTILE[0][:15], filename=b"/bin/x", argv=argv, retval=0,
                argv_source=Source.NEW_IMAGE)
    base.update(kw)
    return ExecEvent(**base)  # type: ignore[arg-type]


def test_json_events_validate_against_schema() -> None:
    events = [
        _exec(tuple(HOSTILE)),
        _exec(None, retval=-2),  # argv unknown stays null
        _exec(None, retval=-2, pid=None, ppid=None),  # a failed exec's unproven process
        OpenEvent(timestamp_ns=1, pid=1, tid=2, uid=None, comm=b"x", path=HOSTILE[2],
                  flags=os.O_RDONLY, mode=0, fd=3, errno=None, path_source=Source.LIBC_PROBE),
        LostEvent(timestamp_ns=5, count=7, where="ring buffer full", cpu=1),
    ]
    for event in events:
        line = event_to_json(event)
        assert "\n" not in line and line.isascii()
        record = json.loads(line)
        jsonschema.validate(record, SCHEMA)
        assert record == event_to_dict(event)
    record = json.loads(event_to_json(events[0]))
    assert [decode_bytes(a) for a in record["argv"]] == HOSTILE
    assert json.loads(event_to_json(events[1]))["argv"] is None


def test_exec_columns_escape_and_say_when_argv_is_missing() -> None:
    fmt = ExecFormat(show_uid=True)
    assert fmt.header().split() == ["UID", "PCOMM", "PID", "PPID", "RET", "ARGS"]
    line = fmt.line(_exec((b"sh", b"-c", b"echo\n\x1b[31m")))
    assert "\n" not in line and "\x1b" not in line
    assert line.endswith("/bin/x -c echo\\n\\x1b[31m")  # the path, then argv[1:]
    missing = fmt.line(_exec(None, retval=-2))
    assert missing.endswith("/bin/x [argv unavailable]") and " -2 " in missing
    # A process not proven is "?", as a ppid or uid not known is; never the tid.
    unknown = fmt.line(_exec(None, retval=-2, pid=None, ppid=None)).split()
    assert unknown[2:5] == ["?", "?", "-2"]
    assert fmt.line(_exec((b"a",), argv_truncated=True)).endswith("/bin/x ...")


def test_open_columns() -> None:
    fmt = OpenFormat(extended=True)
    assert fmt.header().split() == ["PID", "COMM", "FD", "ERR", "FLAGS", "PATH"]
    ev = OpenEvent(timestamp_ns=1, pid=42, tid=42, uid=0, comm=b"cat", path=b"/nope",
                   flags=os.O_WRONLY | os.O_CREAT, mode=0o644, fd=None, errno=2)
    cols = fmt.line(ev, ev.path).split()
    assert cols == ["42", "cat", "-1", "2", f"{os.O_WRONLY | os.O_CREAT:08o}", "/nope"]


def test_open_via_column_and_an_sqpoll_submission() -> None:
    """--via: an io_uring open says so; one the SQPOLL thread submitted has no thread,
    comm or uid, and its unknown flags and path say so too."""
    fmt = OpenFormat(show_uid=True, extended=True, show_via=True)
    assert fmt.header() == "UID   PID    COMM               FD ERR FLAGS    VIA      PATH"
    syscall = OpenEvent(timestamp_ns=1, pid=42, tid=42, uid=0, comm=b"cat", path=b"/a",
                        flags=0, mode=None, fd=3, errno=None, syscall="openat")
    assert fmt.line(syscall, syscall.path) == (
        "0     42     cat                 3   0 00000000 syscall  /a")
    sqpoll = OpenEvent(timestamp_ns=1, pid=42, tid=None, uid=None, comm=None, path=None,
                       flags=None, mode=None, fd=5, errno=None, syscall=None, via="io_uring")
    assert fmt.line(sqpoll, None) == (
        "?     42     ?                   5   0 ???????? io_uring [path unavailable]")
    assert OpenFormat(show_tid=True).line(sqpoll, None).startswith("?      ?  ")
