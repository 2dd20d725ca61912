"""User-space filtering: the final word on what a session yields.

Backends filter in the kernel where they can; this pass makes every backend
honour every filter identically (ftrace cannot express uid, for example).
"""

from __future__ import annotations

from hybridtrace.events import Event, ExecEvent, LostEvent
from hybridtrace.request import Filters


def matches(event: Event, filters: Filters) -> bool:
    if isinstance(event, LostEvent):
        return True
    if filters.pid is not None and event.pid != filters.pid:
        return False
    if filters.tid is not None and event.tid != filters.tid:
        return False
    if filters.uid is not None and event.uid != filters.uid:
        return False
    if filters.comm is not None and event.comm != filters.comm:
        return False
    if filters.failed_only and not event.failed:
        return False
    return not (
        filters.ppid is not None
        and isinstance(event, ExecEvent)
        and event.ppid != filters.ppid
    )
