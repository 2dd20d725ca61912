"""The fast output paths give exactly the bytes of the per-character / json.dumps definitions."""

# ruff: noqa: UP031  (printf-style on purpose: the reference tools' own format strings)
from __future__ import annotations

import contextlib
import io
import json
import random
import time
import unicodedata
from typing import Any, Callable, Dict, List, Optional

import attrs
import pytest

from hybridtrace.cli.common import write_batch
from hybridtrace.events import Event, ExecEvent, LostEvent, OpenEvent, Source
from hybridtrace.output import jsonl
from hybridtrace.output.columns import ExecFormat, OpenFormat, WallClock
from hybridtrace.output.escape import escape_bytes, escape_bytes_slow, quote_arg
from hybridtrace.output.jsonl import event_to_json, event_to_json_slow
from tests.unit.c_modules import require_built

Writers = Dict[type, Callable[[Any], Optional[str]]]

# Characters that each take a different branch: printable ASCII, controls, DEL,
# backslash, quote, C1, NBSP (Zs: safe but not isprintable), bidi override and
# zero-width (Cf), line/paragraph separators, private use, unassigned, BOM, CJK, emoji.
CHARS = ("a Z~/-._\"'\\\t\n\r\x00\x07\x1b\x7f\x80\x9b\xa0\xe9\u00ad\u0378\u2028\u2029"
         "\u202e\u200b\ue000\ufeff\u65e5\u3000\U0001f600\U000e0001")
UNSAFE = ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")
RAW = [b"\xff", b"\xfe", b"\xc3", b"\xe2\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\xaf"]


def _hostile(rng: random.Random, size: int) -> bytes:
    out = bytearray()
    while len(out) < size:
        pick = rng.random()
        if pick < 0.5:
            out += rng.choice(CHARS).encode("utf-8")
        elif pick < 0.7:
            out += rng.choice(RAW)
        elif pick < 0.85:
            out.append(rng.randrange(256))
        else:
            out += chr(rng.randrange(0x110000)).encode("utf-8", "surrogatepass")
    return bytes(out)


def _samples() -> List[bytes]:
    rng = random.Random(5)
    out = [b"", b"/usr/lib/libc.so.6", b"back\\slash", b"\x1b[2J", b"nbsp\xc2\xa0here"]
    out += [bytes([b]) for b in range(256)]
    out += [_hostile(rng, rng.randrange(1, 64)) for _ in range(3000)]
    out += [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40))) for _ in range(1000)]
    out += [b"A" * 1_000_000, b"A" * 500_000 + b"\n", "\u65e5" .encode() * 100_000 + b"\xff",
            "\u00e9".encode() * 200_000 + "\u202e".encode(), _hostile(rng, 200_000)]
    return out


SAMPLES = _samples()


def test_escape_fast_path_equals_definition() -> None:
    for data in SAMPLES:
        fast = escape_bytes(data)
        assert fast == escape_bytes_slow(data), data[:80]
        unsafe = {ch for ch in set(fast) if unicodedata.category(ch) in UNSAFE}
        assert not unsafe, data[:80]


def test_escape_takes_the_fast_path_only_when_nothing_needs_escaping() -> None:
    assert escape_bytes(b"plain/path") == "plain/path"
    assert escape_bytes(b"a\\b\tc\x7f") == "a\\\\b\\tc\\x7f"  # ASCII translate path
    assert escape_bytes("\u00a0".encode()) == "\u00a0"  # Zs kept, though not isprintable
    assert escape_bytes("x\u202e".encode()) == "x\\xe2\\x80\\xae"
    assert quote_arg(b'"\n"') == '"\\"\\n\\""'


def _rand_int(rng: random.Random, nullable: bool = True) -> Optional[int]:
    pick = rng.random()
    if nullable and pick < 0.2:
        return None
    if pick < 0.3:
        return -rng.randrange(1 << 40)
    if pick < 0.35:
        return 1 << rng.randrange(60, 130)  # beyond 64 bits: still exact
    return rng.randrange(100_000)


def _rand_bytes(rng: random.Random) -> Optional[bytes]:
    return None if rng.random() < 0.1 else rng.choice(SAMPLES[:4000])


def _rand_source(rng: random.Random) -> Optional[Source]:
    return None if rng.random() < 0.3 else rng.choice(list(Source))


def _origin(rng: random.Random) -> Dict[str, Any]:
    """Where an event came from: sometimes unknown, sometimes hostile."""
    if rng.random() < 0.3:
        return {}
    return {"cgroup_id": _rand_int(rng), "cgroup": _rand_bytes(rng),
            "container_id": rng.choice([None, "ab" * 32, "s\u00e9\n\"\x1b"]),
            "mntns": _rand_int(rng), "pidns": _rand_int(rng), "ns_pid": _rand_int(rng),
            "ns_tid": _rand_int(rng)}


def _open(rng: random.Random) -> OpenEvent:
    return OpenEvent(**_origin(rng),
        timestamp_ns=rng.randrange(1 << 63),
        pid=None if rng.random() < 0.1 else rng.randrange(1 << 22),
        tid=_rand_int(rng), uid=_rand_int(rng), comm=_rand_bytes(rng),
        path=_rand_bytes(rng), flags=_rand_int(rng), mode=_rand_int(rng), fd=_rand_int(rng),
        errno=_rand_int(rng), path_source=_rand_source(rng),
        syscall=rng.choice(["openat", "openat2", "open", "creat", "s\u00e9\n\"", None]),
        dfd=_rand_int(rng), path_truncated=rng.random() < 0.5,
        via=rng.choice(["syscall", "io_uring"]))


def _exec(rng: random.Random) -> ExecEvent:
    argv = None if rng.random() < 0.2 else tuple(
        rng.choice(SAMPLES[:4000]) for _ in range(rng.randrange(0, 6)))
    return ExecEvent(
        timestamp_ns=rng.randrange(1 << 63),
        pid=None if rng.random() < 0.1 else rng.randrange(1 << 22),
        tid=rng.randrange(1 << 22), ppid=_rand_int(rng), uid=_rand_int(rng),
        comm=_rand_bytes(rng), filename=_rand_bytes(rng), argv=argv, retval=_rand_int(rng),
        argv_truncated=rng.random() < 0.5, filename_source=_rand_source(rng),
        argv_source=_rand_source(rng), syscall=rng.choice(["execve", "execveat"]),
        ns_ppid=_rand_int(rng), **_origin(rng))


def _c_writers() -> Writers:
    require_built(jsonl.FAST_C is not None, "_jsonline")
    assert jsonl.FAST_C is not None
    return jsonl.FAST_C


@pytest.fixture(params=["python", "c"])
def writers(request: Any) -> Writers:
    """Each fast writer in turn: the Python one and the C module's."""
    return jsonl.FAST_PYTHON if request.param == "python" else _c_writers()


def _written(writers: Writers, event: Event) -> Optional[str]:
    return writers[type(event)](event)


def test_json_fast_path_equals_json_dumps(writers: Writers) -> None:
    rng = random.Random(7)
    events: List[Event] = [_open(rng) for _ in range(3000)]
    events += [_exec(rng) for _ in range(2000)]
    for event in events:
        line = _written(writers, event)
        assert line == event_to_json_slow(event)
        assert line.isascii() and "\n" not in line
        json.loads(line)
    lost = LostEvent(timestamp_ns=3, count=9, where="ring\nbuffer \u202e", cpu=None)
    assert event_to_json(lost) == event_to_json_slow(lost)


def test_event_to_json_uses_the_c_writer_where_built() -> None:
    assert jsonl._FAST is _c_writers()


@pytest.mark.parametrize("change", [
    {"pid": True},  # bool is an int, but JSON says true
    {"uid": False},
    {"flags": 1.5},
    {"path_truncated": 1},
    {"syscall": None},
    {"via": None},
    {"tid": True},
    {"path_source": None, "comm": bytearray(b"x\xff")},
])
def test_json_unexpected_types_match_json_dumps(change: Any, writers: Writers) -> None:
    base = OpenEvent(timestamp_ns=1, pid=2, tid=2, uid=0, comm=b"c", path=b"/p", flags=0,
                     mode=0, fd=3, errno=None, path_source=Source.TRACEPOINT)
    fields = {**{f: getattr(base, f) for f in base.__slots__ if not f.startswith("__")},
              **change}
    _same_as_definition(writers, OpenEvent(**fields))


@pytest.mark.parametrize("change", [
    {"argv": [b"a", b"\xff"]},  # a list, not a tuple
    {"argv": (b"a", "text")},
    {"syscall": None},
    {"ns_ppid": True},
    {"cgroup": "text"},
    {"container_id": b"bytes"},
    {"timestamp_ns": None},
    {"argv_source": "argv"},  # the value, not the Source
])
def test_exec_json_unexpected_types_match_json_dumps(change: Any, writers: Writers) -> None:
    _same_as_definition(writers, attrs.evolve(
        ExecEvent(timestamp_ns=1, pid=2, tid=2, ppid=1, uid=0, comm=b"c", filename=b"/x",
                  argv=(b"a",), retval=0), **change))


def _same_as_definition(writers: Writers, event: Event) -> None:
    """A writer gives the definition's text, or None (the definition then writes it), or
    fails as the definition does (a str where bytes belong)."""
    try:
        slow = event_to_json_slow(event)
    except (AttributeError, TypeError) as exc:
        with pytest.raises(type(exc)):
            event_to_json(event)
        with contextlib.suppress(type(exc)):
            assert _written(writers, event) is None
        return
    assert _written(writers, event) in (None, slow)
    assert event_to_json(event) == slow


def test_json_big_and_negative_ints_and_long_strings(writers: Writers) -> None:
    for value in (-1, -(1 << 63), (1 << 63) - 1, 1 << 63, -(1 << 64) - 5, 10**40):
        event = OpenEvent(timestamp_ns=value, pid=value, tid=None, uid=None, comm=None,
                          path=b"p" * 70_000 + b"\x01", flags=None, mode=None, fd=value,
                          errno=None, cgroup_id=value, cgroup=b"/" * 5000)
        assert _written(writers, event) == event_to_json_slow(event)


# The column formats as BCC's printf-style strings (tests/reference_formats.py), with
# every string escaped and "?" for what was not captured: the definition.
def _t(value: Optional[bytes], missing: str = "?") -> str:
    return missing if value is None else escape_bytes_slow(value)


def _cell(value: Optional[int], spec: str) -> str:
    return spec.replace("d", "s") % "?" if value is None else spec % value


def _ref_open(fmt: OpenFormat, ev: OpenEvent, path: Optional[bytes], first_us: int) -> str:
    out = ""
    if fmt.elapsed:
        out += "%-14.9f" % (float(ev.timestamp_ns // 1000 - first_us) / 1000000)
    if fmt.show_uid:
        out += _cell(ev.uid, "%-6d")
    if ev.fd is None and ev.errno is None:
        fd, err = "   ?", "  ?"
    else:
        fd = "%4d" % (-1 if ev.fd is None else ev.fd)
        err = "%3d" % (0 if ev.errno is None else ev.errno)
    out += "%s %-16s %s %s " % (_cell(ev.tid if fmt.show_tid else ev.pid, "%-6d"),
                                 _t(ev.comm), fd, err)
    if fmt.extended:
        out += ("?" * 8 if ev.flags is None else "%08o" % ev.flags) + " "
    if fmt.show_via:
        out += "%-8s " % ev.via
    return out + _t(path, "[path unavailable]")


def _ref_exec(fmt: ExecFormat, ev: ExecEvent) -> str:
    out = ""
    if fmt.wall:
        wall = (ev.timestamp_ns + fmt.clock.wall_offset_ns) / 1e9
        out += "%-9s" % time.strftime("%H:%M:%S", time.localtime(wall))
    if fmt.elapsed:
        out += "%-8.3f" % ((ev.timestamp_ns - fmt.start_ns) / 1e9)
    if fmt.show_uid:
        out += _cell(ev.uid, "%-6d")
    render: Callable[[bytes], str] = (
        (lambda a: '"' + escape_bytes_slow(a).replace('"', '\\"') + '"') if fmt.quote
        else escape_bytes_slow)
    path = "?" if ev.filename is None else render(ev.filename)
    if ev.argv is None:
        args = f"{path} [argv unavailable]"
    else:
        words = [path] + [render(a) for a in ev.argv[1:]]
        if ev.argv_truncated:
            words.append('"..."' if fmt.quote else "...")
        args = " ".join(words)
    return out + "%-16s %s %s %s %s" % (_t(ev.comm), _cell(ev.pid, "%-7d"),
                                        _cell(ev.ppid, "%-7d"), _cell(ev.retval, "%3d"), args)


def _exec_formats() -> List[ExecFormat]:
    base = 1_700_000_000 * 10**9
    out = []
    for wall in (False, True):
        for elapsed in (False, True):
            for uid in (False, True):
                for quote in (False, True):
                    out.append(ExecFormat(wall=wall, elapsed=elapsed, show_uid=uid, quote=quote,
                                          start_ns=5 * 10**9,
                                          clock=WallClock(base + 999_999_999 * quote)))
    return out


@pytest.mark.parametrize("fmt", _exec_formats(), ids=lambda f: "-".join(
    n for n, on in (("T", f.wall), ("t", f.elapsed), ("U", f.show_uid), ("q", f.quote))
    if on) or "plain")
def test_exec_columns_equal_the_cell_by_cell_definition(fmt: ExecFormat) -> None:
    rng = random.Random(11)
    # Timestamps crossing second boundaries, to exercise the wall-clock second cache.
    stamps = [s * 10**9 + d for s in range(5, 9) for d in (0, 1, 999_999_999, 500_000_000)]
    for i in range(400):
        ev = _exec(rng)
        ev = ExecEvent(**{**{f: getattr(ev, f) for f in ev.__slots__ if not f.startswith("__")},
                          "timestamp_ns": stamps[-1 - i % len(stamps)]})
        assert fmt.line(ev) == _ref_exec(fmt, ev)


@pytest.mark.parametrize("elapsed", [False, True])
@pytest.mark.parametrize("uid", [False, True])
@pytest.mark.parametrize("extended", [False, True])
@pytest.mark.parametrize("tid", [False, True])
@pytest.mark.parametrize("via", [False, True])
def test_open_columns_equal_the_cell_by_cell_definition(elapsed: bool, uid: bool,
                                                        extended: bool, tid: bool,
                                                        via: bool) -> None:
    rng = random.Random(11)
    stamps = [s * 10**9 + d for s in range(5, 9) for d in (0, 1, 999_999_999, 500_000_000)]
    fmt = OpenFormat(elapsed=elapsed, show_uid=uid, extended=extended, show_tid=tid,
                     show_via=via)
    first_us = stamps[0] // 1000
    for i in range(400):
        ev = _open(rng)
        ev = OpenEvent(**{**{f: getattr(ev, f) for f in ev.__slots__ if not f.startswith("__")},
                          "timestamp_ns": stamps[i % len(stamps)]})
        assert fmt.line(ev, ev.path) == _ref_open(fmt, ev, ev.path, first_us)


class _Recorder(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0
        self.flushes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)

    def flush(self) -> None:
        self.flushes += 1


def test_write_batch_one_write_and_flush_per_batch(capsys: pytest.CaptureFixture[str]) -> None:
    rng = random.Random(3)
    events = [_open(rng) for _ in range(50)]
    lost = LostEvent(timestamp_ns=1, count=4, where="ring buffer reserve", cpu=1)
    batch: List[Event] = [*events[:20], lost, *events[20:]]
    fmt = OpenFormat()

    def keep(event: Event) -> bool:
        return isinstance(event, OpenEvent) and (event.tid or 0) % 2 == 0

    def render(event: Event) -> str:
        assert isinstance(event, OpenEvent)
        return fmt.line(event, event.path)

    kept = [e for e in events if keep(e)]
    assert 0 < len(kept) < len(events)
    for as_json in (False, True):
        out = _Recorder()
        shown = write_batch(out, as_json, batch, keep, render)
        assert shown == len(kept)
        assert (out.writes, out.flushes) == (1, 1)
        expected = [event_to_json_slow(e) for e in batch if e in kept or e is lost] if as_json \
            else [_ref_open(fmt, e, e.path, 0) for e in kept]
        assert out.getvalue() == "".join(line + "\n" for line in expected)
    assert capsys.readouterr().err == "LOST 4 events (ring buffer reserve on cpu 1)\n"
    empty = _Recorder()
    assert write_batch(empty, True, [], keep, render) == 0
    assert (empty.writes, empty.flushes, empty.getvalue()) == (0, 0, "")
