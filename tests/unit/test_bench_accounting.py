"""Accounting of the bench: what counts as captured, correct, lost, unaccounted."""

from __future__ import annotations

import json
import os
from typing import List

from tools.bench.accounting import (
    ExecExpectation,
    OpenExpectation,
    Tally,
    tally_exec,
    tally_open,
)
from tools.bench.observed import Observed
from tools.bench.parse_jsonl import parse_jsonl
from tools.bench.parse_text import parse_text

FIXTURES = os.path.join(os.path.dirname(__file__), os.pardir, "fixtures", "bench")
CHILD = b"/tmp/b/hxabc123"
WANT_EXEC = ExecExpectation(child=CHILD, token=b"abc123", pad=b"PAD", produced=5)
WANT_OPEN = OpenExpectation(prefix=b"/tmp/b/O-abc123-", produced=4, pid=77)


def ex(argv: object, comm: bytes = b"hxabc123", ok: bool = True) -> Observed:
    return Observed(kind="exec", pid=1, comm=comm, path=None, argv=argv, ok=ok)  # type: ignore[arg-type]


def op(path: object, pid: int = 77, ok: bool = False) -> Observed:
    return Observed(kind="open", pid=pid, comm=b"openloop", path=path, ok=ok)  # type: ignore[arg-type]


def test_tally_derived_numbers() -> None:
    t = Tally(produced=100, captured=90, correct=80, duplicates=0, lost=4)
    assert (t.missed, t.unaccounted) == (10, 6)
    assert t.correct_share == 80 / 90 and t.captured_share == 0.9
    # Losses are machine-wide: more lost than missed never makes "unaccounted" negative.
    assert Tally(produced=10, captured=10, correct=10, duplicates=0, lost=50).unaccounted == 0
    assert Tally(produced=0, captured=0, correct=0, duplicates=0, lost=0).captured_share is None


def test_exec_marker_argv_correct_and_duplicates() -> None:
    events: List[Observed] = [
        ex((CHILD, b"abc123", b"0", b"PAD")),
        ex((CHILD, b"abc123", b"0", b"PAD")),  # duplicate
        ex((CHILD, b"abc123", b"1", b"WRONG")),  # captured, argv wrong
        ex((CHILD, b"abc123", b"2", b"PAD"), ok=False),  # failed exec: not the workload's
        ex((CHILD, b"other", b"3", b"PAD"), comm=b"sh"),  # another run's marker
    ]
    t = tally_exec(events, WANT_EXEC, lost=0)
    assert (t.captured, t.correct, t.duplicates, t.unaccounted) == (2, 1, 1, 3)


def test_exec_without_argv_counts_by_child_name_capped() -> None:
    events = [ex(None)] * 7 + [ex((CHILD, b"abc123", b"4", b"PAD"))]
    t = tally_exec(events, WANT_EXEC, lost=0)
    assert (t.captured, t.correct) == (5, 1)  # never more than produced
    assert tally_exec([ex(None, comm=b"bash")], WANT_EXEC, lost=0).captured == 0


def test_open_paths() -> None:
    events = [
        op(b"/etc/ld.so.cache", ok=True),  # the loop's ld.so opens are not workload events
        op(None, ok=True),  # nor when the tracer lost their path (they succeeded)
        op(b"/tmp/b/O-abc123-0"),
        op(b"/tmp/b/O-abc123-1", pid=5),  # marker decides, not the pid
        op(b"/tmp/b/O-abc1"),  # mangled path of the loop: captured, not correct
        op(None),  # path not captured
        op(b"/tmp/b/O-abc123-9"),  # beyond what was produced: not ours
    ]
    t = tally_open(events, WANT_OPEN, lost=1)
    assert (t.captured, t.correct, t.missed, t.unaccounted) == (4, 2, 0, 0)


def _meta(name: str) -> dict:  # type: ignore[type-arg]
    with open(os.path.join(FIXTURES, name + ".json")) as f:
        return json.load(f)  # type: ignore[no-any-return]


def _read(name: str, ext: str) -> List[bytes]:
    with open(os.path.join(FIXTURES, f"{name}.{ext}"), "rb") as f:
        return f.read().splitlines()


def test_recorded_libbpf_tools_exec_loop_has_no_correct_argv() -> None:
    name = "libbpf-tools.exec-loop"
    meta = _meta(name)
    parsed = parse_text("exec", _read(name, "stdout"), _read(name, "stderr"))
    want = ExecExpectation(child=meta["expect"]["child"].encode(), token=meta["token"].encode(),
                           pad=meta["expect"]["pad"].encode(), produced=meta["produced"])
    t = tally_exec(parsed.events, want, parsed.lost)
    children = [ln for ln in _read(name, "stdout") if ln.startswith(f"hx{meta['token']} ".encode())]
    assert t.captured == len(children) > 0
    assert t.correct == 0


def test_recorded_ebpf_core_exec_loop_argv_complete() -> None:
    name = "hybridtrace-ebpf-core.exec-loop"
    meta = _meta(name)
    out = _read(name, "stdout")
    parsed = parse_jsonl(out, _read(name, "stderr"))
    want = ExecExpectation(child=meta["expect"]["child"].encode(), token=meta["token"].encode(),
                           pad=meta["expect"]["pad"].encode(), produced=meta["produced"])
    t = tally_exec(parsed.events, want, parsed.lost)
    records = [json.loads(ln) for ln in out]
    full = [r for r in records if r["type"] == "exec" and r["argv"] is not None
            and r["argv"][1:2] == [meta["token"]]]
    assert t.captured == t.correct == len(full) > 0


def test_recorded_tracepoint_open_loop_counts_pathless_failed_opens() -> None:
    name = "hybridtrace-ftrace-tracepoint.open-loop"
    meta = _meta(name)
    out = _read(name, "stdout")
    parsed = parse_jsonl(out, _read(name, "stderr"))
    loop = [r for r in map(json.loads, out) if r["type"] == "open" and r["pid"] == meta["pid"]]
    failed = [r for r in loop if r["errno"] is not None]
    assert loop and all(r["path"] is None for r in loop)  # this tier has no strings
    assert len(failed) < len(loop)  # ld.so's successful opens are in the sample too
    want = OpenExpectation(prefix=meta["expect"]["prefix"].encode(), produced=meta["produced"],
                           pid=meta["pid"])
    t = tally_open(parsed.events, want, parsed.lost)
    assert (t.captured, t.correct) == (len(failed), 0)
