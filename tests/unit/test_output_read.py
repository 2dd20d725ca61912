"""Reading JSON lines back into events (jsonl.event_from_dict): exact for every line a
writer makes, and strict enough to catch the writer that gets one wrong."""

from __future__ import annotations

from typing import Any, Callable, Dict, List

import attrs
import pytest

from hybridtrace.events import Event, ExecEvent, LostEvent, OpenEvent, Source
from hybridtrace.output import jsonl
from hybridtrace.output.jsonl import RecordError, event_from_dict, event_from_json
from tests.unit.test_output import HOSTILE

EVENTS: List[Event] = [
    ExecEvent(timestamp_ns=1, pid=10, tid=11, ppid=1, uid=0, comm=HOSTILE[0][:15],
              filename=HOSTILE[2], argv=tuple(HOSTILE), retval=0, argv_truncated=True,
              filename_source=Source.KERNEL_COPY, argv_source=Source.NEW_IMAGE,
              syscall="execveat", cgroup_id=7, cgroup=b"/user.slice/\xff", container_id="a" * 64,
              mntns=4026531841, pidns=4026531836, ns_pid=1, ns_tid=2, ns_ppid=0),
    ExecEvent(timestamp_ns=2, pid=None, tid=3, ppid=None, uid=None, comm=None, filename=None,
              argv=None, retval=None, syscall=None),
    OpenEvent(timestamp_ns=3, pid=5, tid=6, uid=65534, comm=b"gt", path=b"tab\t\\ \"q\"\n",
              flags=0o101, mode=0o644, fd=3, errno=None, path_source=Source.LIBC_PROBE,
              syscall="openat2", dfd=-100, path_truncated=True, via="io_uring"),
    OpenEvent(timestamp_ns=4, pid=5, tid=None, uid=None, comm=b"", path=b"\xc3", flags=None,
              mode=None, fd=None, errno=2, syscall=None),
    LostEvent(timestamp_ns=5, count=7, where="ring buffer reserve", cpu=1, exact=False),
    LostEvent(timestamp_ns=6, count=None, where="gap"),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: type(e).__name__)
def test_every_event_reads_back_as_itself(event: Event) -> None:
    for line in (jsonl.event_to_json(event), jsonl.event_to_json_slow(event)):
        assert event_from_json(line) == event


def test_the_reader_knows_every_field_the_writer_writes() -> None:
    """A field added to an event class is read back, or this says it is not."""
    for event in EVENTS:
        record = jsonl.event_to_dict(event)
        assert set(record) == {"schema", "type", *(f.name for f in attrs.fields(type(event)))}


def changed(change: Callable[[Dict[str, Any]], None], index: int = 0) -> Dict[str, Any]:
    record = jsonl.event_to_dict(EVENTS[index])
    change(record)
    return record


BAD = {
    "bool as int": lambda r: r.update(pid=True),
    "int as string": lambda r: r.update(tid="11"),
    "float": lambda r: r.update(uid=0.0),
    "null timestamp": lambda r: r.update(timestamp_ns=None),
    "key dropped": lambda r: r.pop("ns_ppid"),
    "key added": lambda r: r.update(extra=1),
    "utf-8 sent as base64": lambda r: r.update(filename={"base64": "Zg=="}),
    "bad base64": lambda r: r.update(filename={"base64": "Zg="}),
    "base64 with more keys": lambda r: r.update(cgroup={"base64": "/w==", "x": 1}),
    "lone surrogate": lambda r: r.update(comm="\ud800"),
    "argv not a list": lambda r: r.update(argv="x"),
    "unknown source": lambda r: r.update(argv_source="guess"),
    "bool as string": lambda r: r.update(argv_truncated="true"),
    "other schema": lambda r: r.update(schema="hybridtrace.event/5"),
    "unknown type": lambda r: r.update(type="fork"),
}


@pytest.mark.parametrize("change", list(BAD.values()), ids=list(BAD))
def test_a_record_no_writer_should_make_is_refused(change: Callable[[Dict[str, Any]], None]
                                                   ) -> None:
    with pytest.raises(RecordError):
        event_from_dict(changed(change))


def test_not_json_and_not_an_object_are_refused_in_one_line() -> None:
    for line in ("{", "[1]", "null"):
        with pytest.raises(RecordError) as err:
            event_from_json(line)
        assert "\n" not in str(err.value)
