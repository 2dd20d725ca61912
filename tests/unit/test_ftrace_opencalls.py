"""The C loop over open calls' records (_opencalls.c) against Correlator.feed, its definition.

Two correlators, one with the C loop (and fill's shortcut, _settle_batch) and
one without either, are fed the same
batches: every session recorded from real kernels (raw pages and trace_pipe
text, read by a /proc that knows nothing and by one that answers as for live
threads), and generated sessions of open calls interleaved with every record
kind that touches them (probe strings, new tasks and exits, setuid, closes,
losses, exits with no entry, entries with no exit, text-reader values).
Both must give the same events, in the same order, and leave the same state.
More rounds: HYBRIDTRACE_FUZZ_ROUNDS=100000.
"""

from __future__ import annotations

import os
import random
from typing import Any, Dict, List, Optional, Tuple

import attrs
import pytest

from hybridtrace.backends.ftrace import correlate
from hybridtrace.backends.ftrace.correlate import Correlator, ProcLookup
from hybridtrace.backends.ftrace.fd_ledger import INF
from hybridtrace.backends.ftrace.probes import PATH, Role
from hybridtrace.backends.ftrace.tasks import TaskTracker
from hybridtrace.backends.ftrace.threads import TICK_NS
from hybridtrace.backends.ftrace.trace_record import ENTER, EXIT, FIELDS, LOST, TraceLine
from hybridtrace.events import Event, OpenEvent, Source
from hybridtrace.request import Kind
from tests.unit.c_modules import require_built
from tests.unit.ftrace_fixtures import workload_params
from tests.unit.test_ftrace_correlate import load_stream, stream_recordings

ROUNDS = int(os.environ.get("HYBRIDTRACE_FUZZ_ROUNDS", "1500")) // 3
BOOT = 100 * TICK_NS  # every start tick below is long before every record
CALLS = ("sys_openat", "sys_open", "sys_creat", "sys_openat2")
PATH_PROBE = "hybridtrace_open_path"


@pytest.fixture(autouse=True)
def _needs_c() -> None:
    require_built(correlate.OPEN_CALLS is not None, "_opencalls")


def _none(*_args: object) -> None:
    return None


def _proc(live: bool, seed: int = 0) -> ProcLookup:
    """/proc that knows nothing, or one where most threads answer (comm, uid, pid, fds)."""
    if not live:
        return ProcLookup(*([_none] * 8))  # type: ignore[arg-type]
    rng = random.Random(seed)
    gone = {tid for tid in range(1, 64) if rng.random() < 0.2}

    def task_state(tid: int) -> Optional[Tuple[int, bytes, Optional[int]]]:
        return None if tid in gone else (0, b"t%d" % tid, tid % 3)

    def identity(tid: int) -> Optional[Tuple[int, int]]:
        return None if tid in gone else (0, tid - tid % 2)  # odd threads: a leader's

    def fd_read(tid: int, fd: int) -> Tuple[Optional[bytes], Optional[int], int]:
        return (None if tid in gone else b"/fd/%d" % fd), os.O_RDONLY, 10 ** 12

    return ProcLookup(_none, _none, _none, _none, _none, _none, task_state,  # type: ignore
                      identity, fd_read)


def _pair(proc: ProcLookup, roles: Dict[str, Role], source: Optional[Source],
          fd_proof: bool) -> Tuple[Correlator, Correlator]:
    made = []
    for use_c in (False, True):
        corr = Correlator(Kind.OPEN, roles, source, 20, proc, BOOT, fd_proof=fd_proof)
        corr.tasks = TaskTracker(proc.task_state, BOOT, clock=lambda: 5 * 10 ** 11)
        if not use_c:  # the definition: feed for each record, and fill's general way
            corr._feed_c = None
            corr._settle_batch = (  # type: ignore[method-assign]
                lambda events, complete, corr=corr: corr._hold(events, None, complete))
        made.append(corr)
    assert made[1]._feed_c is not None
    return made[0], made[1]


def _state(corr: Correlator) -> Dict[str, Any]:
    """What a later batch depends on (readings by what they say, not by identity)."""
    def task(t: Any) -> Tuple[Any, ...]:
        return (t.comm, t.uid, t.comm_from is None, t.uid_from is None)

    return {
        "records": corr.records, "orphans": corr.orphans,
        "pending": [(tid, p.syscall, p.timestamp_ns, task(p.task), p.key, p.dfd, p.flags,
                     p.mode, p.entered) for tid, p in corr.pending.items()],
        "probes": {tid: sorted(d) for tid, d in corr.probes.items()},
        "tasks": [(tid, task(t)) for tid, t in corr.tasks._tasks.items()],
        "threads": list(corr.threads._known.items()),
        "ledger": (corr.ledger.size, sorted(corr.ledger._single.items(), key=repr),
                   sorted(corr.ledger._ranges.items(), key=repr)),
        "awaiting": len(corr.awaiting),
    }


Batch = Tuple[List[TraceLine], Optional[int], Optional[Tuple[int, int]]]


def _same(py: Correlator, c: Correlator, batches: List[Batch]) -> int:
    """Feed both; assert equal events and state after every batch; the events made."""
    made = 0
    for lines, complete, gap in batches:
        if gap is not None:
            py.gap(*gap)
            c.gap(*gap)
        want: List[Event] = py.feed_all(lines, complete=complete)
        got: List[Event] = c.feed_all(lines, complete=complete)
        assert got == want
        assert [type(e) for e in got] == [type(e) for e in want]
        assert _state(c) == _state(py)
        made += len(got)
    want, got = py.flush(), c.flush()
    assert got == want and _state(c) == _state(py)
    return made + len(got)


def _split(lines: List[TraceLine], rng: random.Random) -> List[Batch]:
    batches: List[Batch] = []
    pos = 0
    while pos < len(lines):
        size = rng.choice((1, 2, 7, 64, 1000))
        batches.append((lines[pos:pos + size], rng.choice((INF, INF, None)), None))
        pos += size
    return batches


@pytest.mark.parametrize("live", (False, True), ids=("gone", "live"))
@pytest.mark.parametrize("name,kind", [p for p in stream_recordings() if p[1] == "open"])
def test_recorded_sessions_give_the_same_events(name: str, kind: str, live: bool) -> None:
    meta, lines = load_stream(name, kind)
    roles = {n: Role(what, index) for n, (what, index) in meta["roles"].items()}
    source = None if meta["probe_source"] is None else Source(meta["probe_source"])
    py, c = _pair(_proc(live), roles, source, fd_proof=live)
    assert _same(py, c, _split(lines, random.Random(name))) > 0


@pytest.mark.parametrize("rec,phase", workload_params(), ids=lambda p: getattr(p, "name", p))
def test_recorded_trace_pipe_text_gives_the_same_events(rec: Any, phase: str) -> None:
    py, c = _pair(_proc(True), {}, None, fd_proof=True)
    assert _same(py, c, _split(rec.parse(phase), random.Random(phase))) > 0


def _record(rng: random.Random, ts: int, tid: int) -> List[TraceLine]:
    """One record (or a few) of the kinds open sessions read, some of them odd."""
    def line(event: str, style: str = FIELDS, args: Optional[Dict[str, Any]] = None,
             who: int = tid) -> TraceLine:
        return TraceLine(b"", who, 0, ts, event, args or {}, b"", style)

    def num(bits: int = 32) -> Any:
        value = rng.choice((0, 3, -100, -1, 0o644, 0x8000, 1 << (bits - 1), (1 << bits) - 1,
                            1 << 40, rng.getrandbits(bits)))
        if rng.random() < 0.03:
            return b"%x" % (value & ((1 << 64) - 1))  # as the text reader gives it
        return None if rng.random() < 0.02 else value

    call = rng.choice(CALLS)
    roll = rng.random()
    if roll < 0.35:
        args = {"dfd": num(), "filename": num(64), "flags": num(), "mode": num()}
        if rng.random() < 0.05:
            args["pathname"] = args.pop("filename")
        if rng.random() < 0.1:  # a field the format lacked: the pointer, often
            args.pop(rng.choice(sorted(args) + ["filename", "pathname"] * 2), None)
        return [line(call, ENTER, args)]
    if roll < 0.7:
        ret = rng.choice((3, 4, 5, 0, -2, -13, -24, (1 << 64) - 2, rng.getrandbits(64)))
        args = {"ret": ret if rng.random() > 0.03 else b"%x" % (ret & ((1 << 64) - 1))}
        return [line(call, EXIT, args if rng.random() > 0.02 else {})]
    if roll < 0.8:
        value = rng.choice((b"/etc/passwd", b"", None))
        probe = line(PATH_PROBE, rng.choice((FIELDS,) * 9 + (LOST,)),
                     {"k": rng.choice((num(64), 3, 0o644)), "s": value})
        if rng.random() < 0.1:  # the string could not be read
            probe = attrs.evolve(probe, faults=frozenset({"s"}))
        return [probe]
    if roll < 0.84:
        return [line("task_newtask", FIELDS, {"pid": rng.randrange(1, 12), "comm": b"new",
                                              "clone_flags": rng.choice((0x11, 0x3d0f00))})]
    if roll < 0.87:
        return [line("sched_process_exit", FIELDS, {"pid": tid})]
    if roll < 0.9:
        return [line("sys_setuid", ENTER, {"uid": rng.randrange(3)}),
                line("sys_setuid", EXIT, {"ret": rng.choice((0, -1))})]
    if roll < 0.94:
        return [line("sys_close", ENTER, {"fd": rng.randrange(8)}),
                line("sys_close", EXIT, {"ret": 0})]
    if roll < 0.96:
        return [line("task_rename", FIELDS, {"pid": tid, "oldcomm": b"a", "newcomm": b"b"})]
    if roll < 0.98:
        return [line(call, LOST)]
    return [line(call, "odd", {"ret": 0})]


def _session(rng: random.Random) -> List[Batch]:
    lines: List[TraceLine] = []
    ts = 1000
    tids = rng.sample(range(1, 12), rng.randrange(1, 5))
    for _ in range(rng.randrange(1, 120)):
        ts += rng.choice((1, 500, 2000, 10 ** 6))
        lines += _record(rng, ts, rng.choice(tids))
    batches = _split(lines, rng)
    seen: List[int] = []
    for i, (chunk, complete, _gap) in enumerate(batches):
        if chunk and seen and rng.random() < 0.15:  # a loss counted before this batch, or a stop
            # at and around SLACK_NS (1000) after a record already fed: an entry there
            # may or may not be proven
            at = rng.choice(seen) + rng.choice((-1001, -1000, -999, -1, 0, 1, 1000, 3000))
            batches[i] = (chunk, complete, rng.choice(((-INF, at), (-INF, at), (at, INF))))
        elif chunk and rng.random() < 0.3:
            batches[i] = (chunk, chunk[-1].timestamp_ns - rng.choice((0, 1500)), None)
        seen += [line.timestamp_ns for line in chunk]
    return batches


@pytest.mark.parametrize("live,fd_proof", ((False, False), (True, False), (True, True)))
def test_generated_sessions_give_the_same_events(live: bool, fd_proof: bool) -> None:
    rng = random.Random(f"opencalls {live} {fd_proof}")
    made = 0
    for round_ in range(ROUNDS):
        roles = {PATH_PROBE: Role(PATH)} if rng.random() < 0.7 else {}
        source = Source.SYSCALL_ENTRY if roles else None
        py, c = _pair(_proc(live, round_), roles, source, fd_proof)
        try:
            made += _same(py, c, _session(rng))
        except AssertionError as exc:
            raise AssertionError(f"round {round_}: {exc}") from None
    assert made > ROUNDS  # the sessions made events, not just state


@pytest.mark.parametrize("bound", (3999, 4000, 4001, 5000))
def test_an_entry_at_the_edge_of_a_loss_is_judged_the_same(bound: int) -> None:
    """Records before ``bound`` may be missing: an entry at 5000 is believed only when
    more than SLACK_NS (1000) after it (3999), else its exit goes as an orphan's."""
    entry = TraceLine(b"", 7, 0, 5000, "sys_openat", {"filename": 9, "flags": 1}, b"", ENTER)
    done = TraceLine(b"", 7, 0, 9000, "sys_openat", {"ret": 4}, b"", EXIT)
    for corr in _pair(_proc(False), {}, None, fd_proof=False):
        assert corr.feed_all([entry], complete=INF) == []
        corr.gap(-INF, bound)
        (event,) = corr.feed_all([done], complete=INF)
        assert isinstance(event, OpenEvent) and event.fd == 4
        assert event.flags == (1 if bound < 4000 else None)


def test_a_full_table_of_pending_calls_ages_the_same_way() -> None:
    entries = [TraceLine(b"", tid, 0, 1000 + tid, "sys_openat", {"filename": tid}, b"", ENTER)
               for tid in range(1, correlate.MAX_THREADS + 40)]
    exits = [TraceLine(b"", tid, 0, 10 ** 7 + tid, "sys_openat", {"ret": 3}, b"", EXIT)
             for tid in range(1, correlate.MAX_THREADS + 40, 97)]
    probes = [TraceLine(b"", tid, 0, 500 + tid, PATH_PROBE, {"k": tid, "s": b"/p"}, b"",
                        FIELDS) for tid in range(1, correlate.MAX_THREADS + 40)]
    py, c = _pair(_proc(False), {PATH_PROBE: Role(PATH)}, Source.SYSCALL_ENTRY, fd_proof=False)
    assert _same(py, c, [(probes, INF, None), (entries[:100], INF, None),
                         (entries[100:], INF, None), (exits, INF, None)]) >= len(entries)


def test_a_correlator_of_execs_keeps_the_python_loop() -> None:
    corr = Correlator(Kind.EXEC, {}, None, 20)
    assert corr._feed_c is None
