"""One trace record as every ftrace reader hands it to the correlator.

The layer below both readers (trace_pipe text: pipe.py and text_reader.py; the
per-CPU binary pages: raw_records.py and raw_reader.py) and what consumes them
(correlate.py, origin_proof.py, uring.py): the record type, its styles, the
names of the events they are told apart by, and what a reader tells the
correlator about results it read ahead (Later).
"""

from __future__ import annotations

from typing import FrozenSet, Mapping, Optional, Tuple, Union

import attrs

from hybridtrace import vocabulary

FIELDS = "fields"
ENTER = "enter"
EXIT = "exit"
LOST = "lost"
# Event name of the record the kernel inserts when a CPU buffer overran:
# "CPU:1 [LOST 42 EVENTS]"; its args are {"count": b"42"}.
LOST_EVENT = "<lost>"
# A field's value: the bytes printed (trace_pipe) or the decoded int or string (raw).
ArgValue = Union[bytes, int]

# The printed names of the records the correlator keys on.
EXEC_SYSCALLS = tuple(vocabulary.printed(s) for s in vocabulary.EXEC_SYSCALLS)
OPEN_SYSCALLS = tuple(vocabulary.printed(s) for s in vocabulary.OPEN_SYSCALLS)
EXEC_DONE = vocabulary.event_name(vocabulary.SCHED_EXEC)  # the authority that an exec succeeded
TASK_EXIT = "sched_process_exit"


@attrs.define(slots=True)  # not frozen: built per record, and frozen init costs 3x
class TraceLine:
    """One trace_pipe record (or binary record); treat as read-only.

    ``event`` is the name as printed: ``sched_process_exec``, a probe's name
    (``openat``), or ``sys_openat`` for both syscall entry and exit; ``style``
    tells them apart (FIELDS, ENTER, EXIT, or LOST for ``LOST_EVENT``).
    ``args`` maps field names (syscall argument names, or ``ret`` on exit) to
    the exact bytes printed, quotes removed (or, from the binary reader, to
    ints and the strings' bytes). ``complete`` is False when the
    record did not match its event's format (cut short or malformed); ``raw``
    holds the whole record, embedded newlines included.

    ``pid`` is the kernel's pid of the task, i.e. the thread id; ``tgid`` (the
    process id) is only printed with the record-tgid option. ``comm`` comes
    from the kernel's saved-cmdlines cache as it was when the text was
    formatted: it can be ``<...>``, stale, or a later image's name, so nothing
    takes it as a value (tasks.py tracks comm from the task records).
    ``timestamp_ns`` is in nanoseconds (microsecond resolution), or the raw
    count for clocks printed without a fraction (counter, x86-tsc).
    """

    comm: bytes
    pid: int
    cpu: int
    timestamp_ns: int
    event: str
    args: Mapping[str, ArgValue]
    raw: bytes
    style: str = FIELDS
    faults: FrozenSet[str] = frozenset()
    flags: Optional[bytes] = None
    complete: bool = True
    tgid: Optional[int] = None

    @property
    def is_exit(self) -> bool:
        return self.style == EXIT


@attrs.frozen
class Later:
    """Results read but not yet correlated: (tid, fd) of successful opens, exec'd tids."""

    fds: FrozenSet[Tuple[int, int]] = frozenset()
    execs: FrozenSet[int] = frozenset()
