"""The user-space pass every session applies last: each filter means the same whatever
the backend let through, and losses always reach the caller."""

from __future__ import annotations

from typing import List, Optional, Sequence

import pytest

from hybridtrace.events import Event, ExecEvent, LostEvent, OpenEvent
from hybridtrace.filtering import keeps_all, matches
from hybridtrace.request import Filters, Kind, TraceRequest
from tests.unit.fake_streams import Replay, fake_session


def _exec(pid: int, tid: int, ppid: Optional[int], uid: Optional[int], comm: bytes,
          retval: int = 0) -> ExecEvent:
    return ExecEvent(1, pid, tid, ppid, uid, comm, b"/bin/x", (b"x",), retval)


def _open(pid: Optional[int], tid: int, uid: Optional[int], comm: bytes,
          errno: Optional[int] = None) -> OpenEvent:
    return OpenEvent(1, pid, tid, uid, comm, b"/p", 0, 0, None if errno else 3, errno)


EXECS = [_exec(10, 10, 1, 0, b"a"), _exec(11, 12, 10, 1000, b"b", -2),
         _exec(12, 12, None, None, b"a")]
OPENS = [_open(10, 10, 0, b"a"), _open(None, 13, 0, b"a"), _open(11, 12, 1000, b"b", 2)]
LOST = LostEvent(2, 5, "ring buffer reserve")


def _through(kind: Kind, events: Sequence[Event], **filters: object) -> List[Event]:
    session = fake_session(Replay(events), TraceRequest(kind, Filters(**filters)))  # type: ignore[arg-type]
    with session:
        return session.poll(0)


@pytest.mark.parametrize("filters,want", [
    ({}, [0, 1, 2]),
    ({"pid": 11}, [1]),
    ({"tid": 12}, [1, 2]),
    ({"uid": 1000}, [1]),           # an unknown uid (None) never matches
    ({"comm": b"a"}, [0, 2]),
    ({"failed_only": True}, [1]),
    ({"ppid": 10}, [1]),            # an unknown ppid (None) never matches
])
def test_exec_filters(filters: dict, want: List[int]) -> None:  # type: ignore[type-arg]
    out = _through(Kind.EXEC, [*EXECS, LOST], **filters)
    assert out == [EXECS[i] for i in want] + [LOST]  # losses always pass


@pytest.mark.parametrize("filters,want", [
    ({"pid": 10}, [0]),             # an unproven process (pid None) never matches a pid
    ({"tid": 13}, [1]),
    ({"failed_only": True}, [2]),
    ({"uid": 0, "comm": "a"}, [0, 1]),
])
def test_open_filters(filters: dict, want: List[int]) -> None:  # type: ignore[type-arg]
    out = _through(Kind.OPEN, [LOST, *OPENS], **filters)
    assert out == [LOST] + [OPENS[i] for i in want]


@pytest.mark.parametrize("filters", [
    {"pid": 11}, {"tid": 12}, {"uid": 0}, {"comm": b"a"}, {"failed_only": True},
    {"ppid": 10}, {"mntns": 7},
])
def test_keeps_all_only_when_no_filter_could_drop_an_event(filters: dict) -> None:  # type: ignore[type-arg]
    assert keeps_all(Filters())
    assert not keeps_all(Filters(**filters))
    # Some event of each kind is dropped by that filter, so skipping it would be wrong.
    dropped = [e for e in [*EXECS, *OPENS] if not matches(e, Filters(**filters))]
    assert dropped
    # A filter the kernel applied exactly is not asked again (and keeps nothing back).
    assert keeps_all(Filters(mntns=7), skip=frozenset({"mntns"}))


def test_session_counts_what_it_delivers_and_what_was_lost() -> None:
    session = fake_session(Replay([*OPENS, LOST]), TraceRequest(Kind.OPEN, Filters(uid=0)))
    with session:
        session.poll(0)
        stats = session.stats
    assert stats.captured == 2 and stats.lost == 5 and stats.lost_exact
