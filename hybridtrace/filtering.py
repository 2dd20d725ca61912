"""User-space filtering: the final word on what a session yields.

Backends filter in the kernel where they can; this pass makes every backend
honour every filter identically (ftrace cannot express uid, for example).
A filter a stream applied exactly in the kernel can be skipped here
(``kernel_filters``): where the kernel proved a task was in a cgroup, a
cgroup since removed (its path now unknown) must not make user space drop
the event. ``descendants_of`` exists only in the backends (in the kernel, or
tracefs' set_event_pid): nothing in an event shows it after the fact.
"""

from __future__ import annotations

from typing import AbstractSet, Optional

from hybridtrace.events import Event, ExecEvent, LostEvent
from hybridtrace.request import Filters
from hybridtrace.scope import CGROUP_SLOT, Scope

NONE: AbstractSet[str] = frozenset()


def keeps_all(filters: Filters, scope: Optional[Scope] = None,
              skip: AbstractSet[str] = NONE) -> bool:
    """Would ``matches`` keep every event? (No filter it checks is set: then a session
    need not ask per event, which at 100k events/s is a few percent of a core.)"""
    return (filters.pid is None and filters.tid is None and filters.uid is None
            and filters.comm is None and not filters.failed_only
            and (filters.mntns is None or "mntns" in skip)
            and (scope is None or not scope.roots) and filters.ppid is None)


def matches(event: Event, filters: Filters, scope: Optional[Scope] = None,
            skip: AbstractSet[str] = NONE) -> bool:
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
    if filters.mntns is not None and "mntns" not in skip and event.mntns != filters.mntns:
        return False
    if scope is not None and scope.roots:
        for root in scope.roots:
            name = "cgroup" if root.slot == CGROUP_SLOT else "container"
            if name not in skip and not root.holds(event.cgroup):
                return False
    return not (
        filters.ppid is not None
        and isinstance(event, ExecEvent)
        and event.ppid != filters.ppid
    )
