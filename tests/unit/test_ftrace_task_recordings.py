"""comm, uid and process on recordings of both readers (no root needed).

tests/fixtures/ftrace_tasks/<kernel>[-raw]/ were recorded by
``tools/record_ftrace_stream.py --workload tasks`` (children in
tools/ftrace_task_workload.py): the stream's own records, trace_pipe text
or binary pages, with what each child really was. Each situation is one the
trace_pipe reader once got wrong in the ground-truth run (issue 13); the
readers only decode, so both must give the same values here, except where
the text itself cannot say (then None). /proc knows only the recorder.
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Tuple

import attrs
import pytest

from hybridtrace.backends.ftrace.correlate import Correlator, ProcLookup
from hybridtrace.backends.ftrace.fd_ledger import INF
from hybridtrace.backends.ftrace.probes import Role
from hybridtrace.events import Event, ExecEvent, OpenEvent, Source
from hybridtrace.request import Kind
from tests.unit.test_ftrace_correlate import LONG_AGO, correlate, load_stream, only_recorder

ROOT = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures", "ftrace_tasks")


def recordings() -> List[str]:
    return sorted(os.listdir(ROOT)) if os.path.isdir(ROOT) else []


def _hex(value: str) -> bytes:
    return bytes.fromhex(value)


def recorder_alive(recorder: int) -> ProcLookup:
    """/proc as the replay sees it: the recorder (root, a process of its own) only."""
    def identity(tid: int) -> Optional[Tuple[int, int]]:
        return (0, recorder) if tid == recorder else None

    return attrs.evolve(only_recorder(recorder), thread_identity=identity)


def replay(name: str, kind: str) -> Tuple[Dict[str, Any], List[Event]]:
    meta, lines = load_stream(name, kind, ROOT)
    roles = {n: Role(what, index) for n, (what, index) in meta["roles"].items()}
    source = None if meta["probe_source"] is None else Source(meta["probe_source"])
    return meta, correlate(Kind(kind), lines, roles, source, meta["max_args"],
                           recorder_alive(meta["recorder_pid"]))


def test_recordings_of_both_readers_exist() -> None:
    names = recordings()
    assert any(n.endswith("-raw") for n in names) and any(not n.endswith("-raw") for n in names)


@pytest.mark.parametrize("name", recordings())
def test_opens_get_the_comm_and_uid_their_process_had_then(name: str) -> None:
    # Ground truth: trace_pipe printed these opens with the comm of the image the
    # process exec'd later ("cat" here), and /proc gave the uid set after the first.
    meta, events = replay(name, "open")
    opens = [e for e in events if isinstance(e, OpenEvent) and e.pid == meta["pid"]]
    for want in meta["opens"]:
        path = _hex(want["path"])
        (ev,) = [e for e in opens if e.path == path]
        comm = _hex(want["comm"])
        assert ev.uid == want["uid"] and ev.tid == meta["pid"]
        if meta["reader"] == "text" and path.endswith((b"/renamed-hostile", b"/renamed-again")):
            # Those renames print as "oldcomm=python newcomm=x newcomm=y" and "oldcomm=x
            # newcomm=y newcomm=z": each reads two ways, and nothing decides which, so the
            # name stays unknown until a rename that reads one way (exec's, to "cat").
            assert ev.comm is None
        else:
            assert ev.comm == comm


@pytest.mark.parametrize("name", recordings())
def test_a_threads_failed_exec_names_its_process(name: str) -> None:
    meta, events = replay(name, "exec")
    want = meta["thread_exec"]
    (ev,) = [e for e in events if isinstance(e, ExecEvent) and e.tid == want["tid"]]
    assert ev.retval == want["retval"] and want["pid"] != want["tid"]
    assert ev.pid == want["pid"]  # from the thread's task_newtask, never the tid
    assert ev.ppid == meta["recorder_pid"]


@pytest.mark.parametrize("name", recordings())
def test_fexecve_comm_is_the_files_name(name: str) -> None:
    meta, events = replay(name, "exec")
    want = meta["fexec"]
    got = [e for e in events if isinstance(e, ExecEvent) and e.pid == want["pid"]]
    assert got[-1].filename is not None and got[-1].filename.startswith(b"/dev/fd/")
    assert got[-1].comm == _hex(want["comm"])
    assert [e.uid for e in got] == [0] * len(got)


@pytest.mark.parametrize("name", recordings())
def test_argv_read_after_a_second_exec_is_not_the_firsts(name: str) -> None:
    # Ground truth (tracepoint tier): an exec got the argv of the same process's next
    # exec of the same file, read from /proc after both. Replayed as the reader saw it:
    # the first exec correlated before the second was read, /proc read as recorded.
    meta, lines = load_stream(name, "exec", ROOT)
    want = meta["double_exec"]
    proc = want["proc"]
    reading = (_hex(proc["exe"]), _hex(proc["cwd"]), tuple(map(_hex, proc["cmdline"])),
               int(proc["read_ns"]))

    def image_read(pid: int) -> Tuple[Optional[bytes], Optional[bytes],
                                       Optional[Tuple[bytes, ...]], int]:
        return reading if pid == want["pid"] else (None, None, None, reading[3])

    lookup = attrs.evolve(recorder_alive(meta["recorder_pid"]), image_read=image_read)
    corr = Correlator(Kind.EXEC, {}, None, meta["max_args"], lookup, LONG_AGO)
    execs = [i for i, line in enumerate(lines) if line.event == "sched_process_exec"
             and line.pid == want["pid"]]
    assert len(execs) == 2
    cut = execs[0] + 1
    out = corr.feed_all(lines[:cut], complete=lines[execs[0]].timestamp_ns)
    out += corr.feed_all(lines[cut:], complete=INF) + corr.flush()
    got = [e for e in out if isinstance(e, ExecEvent) and e.pid == want["pid"]]
    assert [e.argv for e in got] == [None, tuple(map(_hex, want["second"]))]
    assert tuple(map(_hex, want["first"])) != tuple(map(_hex, want["second"]))


@pytest.mark.parametrize("name", [n for n in recordings() if not n.endswith("-raw")])
def test_renames_whose_text_reads_two_ways_name_nothing(name: str) -> None:
    _meta, lines = load_stream(name, "open", ROOT)
    renames = {line.raw.split(b"task_rename: ", 1)[1]: line for line in lines
               if line.event == "task_rename"}
    for body, line in renames.items():
        if b"newcomm=y" in body:  # "oldcomm=python newcomm=x newcomm=y", "oldcomm=x newcomm=y
            assert line.faults == {"oldcomm", "newcomm"}  # newcomm=z": both split twice
            assert "newcomm" not in line.args and line.complete
    clear = [line for body, line in renames.items() if b"newcomm=cat " in body]
    assert clear and all(line.args["newcomm"] == b"cat" and not line.faults for line in clear)
    assert sum(b"newcomm=y" in body for body in renames) == 2
