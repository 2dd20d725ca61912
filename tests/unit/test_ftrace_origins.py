"""The C origin fill (_origins.c) against OriginFiller's own fill, its definition.

Two fillers over one change ledger, one with the C loop and one without, are
given the same batches of events (opens and execs of threads whose /proc
readings are cached, re-read, started after the record, in other pid
namespaces, in cgroups; losses; events with no thread), with changes,
migrations, exits, losses and gaps noted between batches and ``complete``
before, at and after the readings. Both must give the same events with the
same origin fields, in the same order, and keep the same ones waiting.
More rounds: HYBRIDTRACE_FUZZ_ROUNDS=100000.
"""

from __future__ import annotations

import os
import random
from typing import Any, Callable, Dict, List, Optional, Tuple

import attrs
import pytest

from hybridtrace.backends.ftrace import origin_proof
from hybridtrace.backends.ftrace.fd_ledger import INF
from hybridtrace.backends.ftrace.origin_proof import ChangeLedger, OriginFiller, TaskReading
from hybridtrace.backends.ftrace.threads import TICK_NS
from hybridtrace.backends.ftrace.trace_record import EXIT, FIELDS, TraceLine
from hybridtrace.cgroups import CgroupTree
from hybridtrace.events import Event, ExecEvent, LostEvent, OpenEvent
from tests.unit.c_modules import require_built

ROUNDS = int(os.environ.get("HYBRIDTRACE_FUZZ_ROUNDS", "1500")) // 3
BOOT = 5 * 10 ** 9  # CLOCK_BOOTTIME - CLOCK_MONOTONIC
MS = 10 ** 6


@pytest.fixture(autouse=True)
def _needs_c() -> None:
    require_built(origin_proof.ORIGINS is not None, "_origins")


class Ids(CgroupTree):
    def id_of(self, path: bytes) -> Optional[int]:
        return None if path.endswith(b"gone") else len(path)


def _reader(rng: random.Random, clock: List[int]) -> Callable[[int], Optional[TaskReading]]:
    """/proc/TID now: gone, or a task that started before (or after) the records, read at
    the test's clock, in the root pid namespace or a nested one, in a cgroup."""
    kinds = {tid: rng.choice(("root", "root", "nested", "late", "recent", "gone", "other pid"))
             for tid in range(1, 9)}
    cgroups = (b"/user.slice", b"/docker/" + b"a" * 64, b"/gone", None)

    def read(tid: int) -> Optional[TaskReading]:
        kind = kinds[tid]
        if kind == "gone":
            return None
        start = {"late": (clock[0] + BOOT) // TICK_NS,
                 "recent": (clock[0] + BOOT) // TICK_NS - 1 - tid % 2}.get(kind, 1)
        ids: Tuple[int, ...] = {"root": (tid,), "nested": (tid, 1), "late": (tid,),
                                "recent": (tid,), "other pid": (tid + 1, 3)}[kind]
        return TaskReading(start, clock[0], 4026531836 if kind == "root" else 99, 4026531840,
                           cgroups[tid % 4], ids, ids)

    return read


def _events(rng: random.Random, ts: int) -> List[Tuple[str, Dict[str, Any]]]:
    """Specs of a batch (built once per filler: filling writes into them)."""
    out: List[Tuple[str, Dict[str, Any]]] = []
    for _ in range(rng.randrange(0, 12)):
        ts += rng.choice((1, 1000, MS, 50 * MS, -3 * MS))  # back a little: any order
        tid = rng.randrange(1, 9)
        roll = rng.random()
        if roll < 0.75:
            out.append(("open", {"timestamp_ns": ts, "pid": rng.choice((tid, None, tid + 1)),
                                 "tid": tid if rng.random() > 0.03 else None}))
        elif roll < 0.9:
            out.append(("exec", {"timestamp_ns": ts, "pid": tid, "tid": tid,
                                 "ppid": rng.choice((0, None, rng.randrange(1, 9)))}))
        else:
            out.append(("lost", {"timestamp_ns": ts}))
    return out


def _build(spec: Tuple[str, Dict[str, Any]]) -> Event:
    kind, f = spec
    if kind == "open":
        return OpenEvent(f["timestamp_ns"], f["pid"], f["tid"], 0, b"x", b"/p", 0, 0, 3, None)
    if kind == "exec":
        return ExecEvent(f["timestamp_ns"], f["pid"], f["tid"], f["ppid"], 0, b"x", b"/b",
                         (b"b",), 0)
    return LostEvent(f["timestamp_ns"], 1, "test")


def _note(rng: random.Random, ledger: ChangeLedger, ts: int) -> None:
    """What happened to threads between two batches, as the ledger hears of it."""
    tid = rng.randrange(1, 9)
    at = ts - rng.choice((0, 1, MS, 20 * MS, 200 * MS))
    roll = rng.random()
    if roll < 0.3:
        ledger.feed(TraceLine(b"", tid, 0, at, "sys_setns", {"ret": 0}, b"", EXIT))
    elif roll < 0.5:
        ledger.feed(TraceLine(b"", 1, 0, at, "cgroup_attach_task", {"pid": tid}, b"", FIELDS))
    elif roll < 0.65:
        ledger.feed(TraceLine(b"", tid, 0, at, "sched_process_exit", {"pid": tid}, b"", FIELDS))
    elif roll < 0.8:
        ledger.gap(-INF, at)
    elif roll < 0.9:
        ledger.gap(at, at + rng.choice((1, 10 * MS)))
    else:
        for _ in range(origin_proof.MAX_CHANGES + 1):  # too many to keep: blurred
            ledger.feed(TraceLine(b"", tid, 0, at, "sys_unshare", {"ret": 0}, b"", EXIT))


def _shown(events: List[Event]) -> List[Any]:
    return [attrs.asdict(e, recurse=False) | {"type": type(e).__name__} for e in events]


def test_generated_batches_give_the_same_origins() -> None:
    rng = random.Random("origins")
    made = filled = 0
    for round_ in range(ROUNDS):
        ledger = ChangeLedger(migrations_seen=rng.random() < 0.8)
        clock = [BOOT]
        read = _reader(rng, clock)
        ok = rng.random() < 0.9
        py = OriginFiller(BOOT, ledger, ok, Ids(None), read=read)
        c = OriginFiller(BOOT, ledger, ok, Ids(None), read=read)
        py._fill_c = None
        assert c._fill_c is not None
        ts = 10 ** 9
        for _batch in range(rng.randrange(1, 8)):
            specs = _events(rng, ts)
            ts = max([ts] + [f["timestamp_ns"] for _k, f in specs]) + 1
            clock[0] = ts + rng.choice((0, 5 * MS))  # readings are made after the records
            complete = rng.choice((None, INF, ts, ts - 2 * MS, clock[0], clock[0] + 1))
            want = py.fill([_build(s) for s in specs], complete)
            got = c.fill([_build(s) for s in specs], complete)
            assert _shown(got) == _shown(want), f"round {round_}"
            assert _shown([q[0] for q in c.awaiting]) == _shown([q[0] for q in py.awaiting])
            assert [q[1:] for q in c.awaiting] == [q[1:] for q in py.awaiting]
            assert list(c._cache) == list(py._cache)
            made += len(got)
            filled += sum(1 for e in got if getattr(e, "pidns", None) is not None)
            if rng.random() < 0.5:
                _note(rng, ledger, ts)
        assert _shown(c.flush()) == _shown(py.flush())
    assert made > ROUNDS and filled > ROUNDS // 2  # batches were judged, most with origins


def test_without_a_clock_tie_nothing_is_filled_either_way() -> None:
    ledger = ChangeLedger()
    for filler in (OriginFiller(None, ledger, True), OriginFiller(None, ledger, True)):
        (ev,) = filler.fill([OpenEvent(5, 1, 1, 0, b"x", b"/p", 0, 0, 3, None)], INF)
        assert isinstance(ev, OpenEvent) and ev.pidns is None and ev.mntns is None
