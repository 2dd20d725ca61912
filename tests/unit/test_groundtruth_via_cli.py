"""The ground truth through the CLI (tools/groundtruth/via_cli.py): the command it runs
asks for what the API's session gets, and its line checker takes every line a writer
makes and refuses what a broken one would."""

from __future__ import annotations

import json
import sys
from typing import Any, Dict, Optional

import pytest

from hybridtrace.cli.main import build_parser
from hybridtrace.events import Event
from hybridtrace.output import jsonl
from hybridtrace.output.jsonl import RecordError
from hybridtrace.request import DEFAULT_MAX_ARGS
from tests.unit.test_output_read import EVENTS, changed
from tools.groundtruth import check, via_cli
from tools.groundtruth.via_cli import LineChecker


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: type(e).__name__)
def test_every_line_a_writer_makes_is_taken(event: Event) -> None:
    for line in (jsonl.event_to_json(event), jsonl.event_to_json_slow(event)):
        assert LineChecker().event(line.encode() + b"\n") == event


def _line(record: Dict[str, Any]) -> bytes:
    return json.dumps(record, separators=(",", ":")).encode() + b"\n"


def test_line_checker_refuses_what_the_reader_alone_would_take() -> None:
    checker = LineChecker()
    good = jsonl.event_to_json(EVENTS[2]).encode()
    cases = {
        "no newline": good,
        "not ascii": good.replace(b'"gt"', '"g\u00e9"'.encode()) + b"\n",
        "spaces": json.dumps(jsonl.event_to_dict(EVENTS[2])).encode() + b"\n",
        "keys reordered": _line(dict(sorted(jsonl.event_to_dict(EVENTS[2]).items()))),
        "schema: syscall": _line(changed(lambda r: r.update(syscall="execve"), 2)),
        "schema: lost count 0": _line(changed(lambda r: r.update(count=0), 4)),
        "schema: container id": _line(changed(lambda r: r.update(container_id="abc"), 0)),
    }
    for why, line in cases.items():
        with pytest.raises(RecordError):
            checker.event(line)
            pytest.fail(f"accepted: {why}")


def test_line_checker_keeps_one_verdict_per_shape_not_per_value() -> None:
    """The cache is keyed by what the schema checks: a valid line of the same shape
    does not let an invalid value through."""
    checker = LineChecker()
    assert checker.event(_line(jsonl.event_to_dict(EVENTS[2])))
    assert checker.event(_line(changed(lambda r: r.update(pid=99, path="other"), 2)))
    with pytest.raises(RecordError):
        checker.event(_line(changed(lambda r: r.update(via="carrier pigeon"), 2)))
    assert "via" in checker._value_keys and "pid" not in checker._value_keys


@pytest.mark.parametrize("target", check.TARGETS, ids=lambda t: t.label)
@pytest.mark.parametrize("pages", [None, 1])
def test_the_cli_is_asked_for_what_the_api_session_gets(target: check.Target,
                                                        pages: Optional[int]) -> None:
    """The command line via_cli runs parses to Target.open's trace() arguments, no
    filter, and execsnoop keeps failed execs (-x)."""
    for kind in ("exec", "open"):
        argv = via_cli.command(target, kind, pages)
        assert argv[:3] == [sys.executable, "-m", "hybridtrace"]
        args = build_parser().parse_args(argv[3:])
        assert args.json and not args.quiet
        assert args.backend == target.backend and args.buffer_pages == pages
        if target.backend == "ebpf-core":
            assert (args.ebpf_attach, args.tier, args.ftrace_reader) == (target.mode, None, None)
        elif target.backend == "ftrace":
            assert (args.tier, args.ftrace_reader) == (target.mode, target.reader or "raw")
        assert (args.uid, args.cgroup, args.container, args.mntns, args.descendants_of,
                args.cgroupmap, args.mntnsmap, args.name) == (None,) * 8
        if kind == "exec":
            assert args.fails and args.ppid is None and args.line is None
            assert args.max_args == DEFAULT_MAX_ARGS
        else:
            assert (args.pid, args.tid, args.failed, args.flag_filter) == (None, None, False, [])
