"""Pids as the tracer's own pid namespace numbers them.

The kernel's records carry the host's (initial namespace's) pids. A tracer in a
pid namespace of its own (a container without --pid=host) is used by people who
know processes by that namespace's pids: so there, events show, and -p/-t/--ppid
take, those pids. A process of the same namespace has them in the event already
(``ns_pid``/``ns_tid``/``ns_ppid``: its pids in its own namespace, the tracer's).
A process of any other namespace, including the host, has no pid the tracer can
name: pid, tid and ppid are None (text output: ``?``), as is a ppid whose parent is
outside (the kernel's own answer there, getppid() = 0). Its host pids are nowhere
in the event: they would name other processes here.
"""

from __future__ import annotations

import os
from typing import Optional, Union

import attrs

from hybridtrace.events import ExecEvent, OpenEvent
from hybridtrace.vocabulary import INIT_PIDNS_INODE


def own_pidns(path: str = "/proc/self/ns/pid") -> Optional[int]:
    """This process's pid namespace inode; None when /proc cannot say."""
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def nested(pidns: Optional[int]) -> bool:
    """Whether ``pidns`` is known and not the host's."""
    return pidns is not None and pidns != INIT_PIDNS_INODE


def in_view(event: Union[ExecEvent, OpenEvent], pidns: int) -> Union[ExecEvent, OpenEvent]:
    """``event`` with pid, tid (and an exec's ppid) in namespace ``pidns``'s numbers."""
    inside = event.pidns == pidns
    pid = event.ns_pid if inside and event.pid is not None else None
    tid = event.ns_tid if inside and event.tid is not None else None
    if isinstance(event, ExecEvent):
        ppid = event.ns_ppid if inside and event.ppid is not None else None
        return attrs.evolve(event, pid=pid, tid=tid, ppid=ppid or None)
    return attrs.evolve(event, pid=pid, tid=tid)
