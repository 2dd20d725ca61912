"""Parsers of the bench, on output recorded from real runs (tests/fixtures/bench).

The fixtures were saved by ``python -m tools.bench --record-fixtures`` and
``python -m tools.bench.record_lost``; each .json says what the workload did.
"""

from __future__ import annotations

import glob
import json
import os
import re
from typing import Any, Dict, List, Tuple

import pytest

from tools.bench.parse_jsonl import parse_jsonl, summary_lost
from tools.bench.parse_text import count_lost, parse_exec_line, parse_open_line, parse_text

FIXTURES = os.path.join(os.path.dirname(__file__), os.pardir, "fixtures", "bench")


def runs(family: str) -> List[Tuple[str, Dict[str, Any]]]:
    found = []
    for path in sorted(glob.glob(os.path.join(FIXTURES, "*.*-loop.json"))):
        if os.path.basename(path).startswith("cannot."):
            continue
        with open(path) as f:
            meta = json.load(f)
        if meta["family"] == family:
            found.append((path[: -len(".json")], meta))
    return found


def lines(base: str, ext: str) -> List[bytes]:
    with open(f"{base}.{ext}", "rb") as f:
        return f.read().splitlines()


def marked(base: str, meta: Dict[str, Any]) -> List[bytes]:
    """Lines of the workload's own events, found by plain byte search."""
    out = lines(base, "stdout")
    if meta["kind"] == "open":
        return [ln for ln in out if f"O-{meta['token']}-".encode() in ln]
    comm = f"hx{meta['token']}".encode()  # the child's comm; the loop's own line has it in argv
    return [ln for ln in out if ln.startswith(comm + b" ") or b'"comm":"%s"' % comm in ln]


LIBBPF = runs("libbpf-tools")
OURS = runs("hybridtrace")


def test_fixtures_present() -> None:
    kinds = {(m["workload"]) for _, m in LIBBPF}
    assert kinds == {"open-loop", "exec-loop", "shell-loop"}
    assert any(m["tracer"] == "hybridtrace ebpf-core" for _, m in OURS)


@pytest.mark.parametrize("base,meta", LIBBPF, ids=[m["workload"] for _, m in LIBBPF])
def test_libbpf_tools_lines(base: str, meta: Dict[str, Any]) -> None:
    got = marked(base, meta)
    assert got, "fixture holds workload lines"
    header = lines(base, "stdout")[0]
    parse = parse_exec_line if meta["kind"] == "exec" else parse_open_line
    assert parse(header) is None  # "PCOMM PID ..." / "PID COMM ..."
    expect = meta["expect"]
    for line in got:
        ev = parse(line)
        assert ev is not None, line
        assert ev.pid is not None and ev.pid > 0
        if meta["kind"] == "open":
            assert ev.pid == meta["pid"]
            assert ev.comm == b"openloop"
            tail = (ev.path or b"")[len(expect["prefix"]):]
            assert ev.path is not None and ev.path.startswith(expect["prefix"].encode())
            assert tail.isdigit()
        else:
            assert ev.comm == f"hx{meta['token']}".encode()
            full = (expect["child"].encode(), meta["token"].encode())
            if meta["workload"] == "exec-loop":
                # Recorded fact (bcc#3343): argv pages not present at syscall
                # entry, so libbpf-tools prints only the filename.
                assert ev.argv == (expect["child"].encode(),)
            else:
                assert ev.argv is not None and ev.argv[:2] == full
                assert ev.argv[3] == expect["pad"].encode() and ev.argv[2].isdigit()


def test_parse_text_counts_every_workload_line() -> None:
    for base, meta in LIBBPF:
        err = lines(base, "stderr")
        parsed = parse_text(meta["kind"], lines(base, "stdout"), err)
        reported = [int(ln.split()[1]) for ln in err if ln.startswith(b"Lost ")]
        assert (parsed.lost, parsed.lost_reports) == (sum(reported), len(reported))
        if meta["kind"] == "exec":
            ours = [e for e in parsed.events if e.comm == f"hx{meta['token']}".encode()]
        else:
            tag = f"O-{meta['token']}-".encode()
            ours = [e for e in parsed.events if e.pid == meta["pid"] and tag in (e.path or b"")]
            # the loop's other opens are ld.so's, and they succeeded
            assert all(e.ok for e in parsed.events if e.pid == meta["pid"] and e not in ours)
        assert len(ours) == len(marked(base, meta))
        assert parsed.unparsed_lines >= 1  # the header


def test_libbpf_tools_lost_report() -> None:
    err = lines(os.path.join(FIXTURES, "lost.libbpf-tools-opensnoop"), "stderr")
    numbers = [int(ln.split()[1]) for ln in err if ln.startswith(b"Lost ")]
    assert numbers, "the recording forced a loss"
    total, reports = count_lost(err)
    assert (total, reports) == (sum(numbers), len(numbers))


def test_hybridtrace_lost_records_and_summary() -> None:
    base = os.path.join(FIXTURES, "lost.hybridtrace-ebpf-core-opensnoop")
    out, err = lines(base, "stdout"), lines(base, "stderr")
    records = [json.loads(ln) for ln in out if b'"type":"lost"' in ln]
    in_records = sum(r["count"] for r in records)
    m = re.search(rb"(\d+) lost", b"\n".join(err))
    assert m is not None and records
    assert summary_lost(err) == int(m.group(1))
    parsed = parse_jsonl(out, err)
    assert parsed.lost == max(in_records, int(m.group(1)))
    assert parsed.lost_reports == len(records)


@pytest.mark.parametrize("base,meta", OURS, ids=[f"{m['tracer']}-{m['workload']}" for _, m in OURS])
def test_hybridtrace_json(base: str, meta: Dict[str, Any]) -> None:
    out = lines(base, "stdout")
    parsed = parse_jsonl(out, lines(base, "stderr"))
    typed = [json.loads(ln)["type"] for ln in out]
    assert len(parsed.events) == sum(t in ("exec", "open") for t in typed)
    assert parsed.unparsed_lines == 0
    for line in marked(base, meta):
        record = json.loads(line)
        if record["type"] != meta["kind"]:
            continue
        ev = next(e for e in parsed.events if e.pid == record["pid"] and e.kind == meta["kind"])
        assert ev.comm == record["comm"].encode()
        if meta["kind"] == "exec" and record["argv"] is not None:
            assert ev.argv == tuple(a.encode() for a in record["argv"])


def test_prefilter_keeps_every_line_the_accounting_uses() -> None:
    from tools.bench.session import relevant

    for base, meta in LIBBPF + OURS:
        out = lines(base, "stdout")
        token, pid = meta["token"].encode(), meta["pid"]
        kept = [ln for ln in out if relevant(ln, token, pid)]
        assert set(marked(base, meta)) <= set(kept)
        dropped = [ln for ln in out if ln not in kept]
        assert all(token not in ln and b'"type":"lost"' not in ln for ln in dropped)


def test_why_not_picks_the_diagnostic_of_tools_that_could_not_start() -> None:
    from tools.bench.session import why_not

    found = sorted(glob.glob(os.path.join(FIXTURES, "cannot.*.json")))
    assert found
    for path in found:
        base = path[: -len(".json")]
        with open(path) as f:
            meta = json.load(f)
        reason = why_not(f"{base}.stdout", f"{base}.stderr")
        assert reason == meta["reason"]
        assert "Traceback" not in reason and "File \"" not in reason and "\n" not in reason
        err = b"\n".join(lines(base, "stderr") + lines(base, "stdout"))
        first = reason.split(" / ")[0]
        assert first.encode() in err  # taken from what the tool printed
