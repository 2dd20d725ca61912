"""A process and its descendants now, from /proc: the seed of --descendants-of.

The kernel follows every fork from the moment the seed is in place; this finds
the tree as it already is. A fork between reading /proc and seeding is caught
by reading again until nothing new appears (a child forked after its parent
was seeded is the kernel's to add).
"""

from __future__ import annotations

import os
from typing import Dict, List, Set

from hybridtrace import procfs

PROC = "/proc"


def _children() -> Dict[int, List[int]]:
    """ppid -> pids of every process now."""
    out: Dict[int, List[int]] = {}
    try:
        names = os.listdir(PROC)
    except OSError:
        return out
    for name in names:
        if not name.isdigit():
            continue
        pid = int(name)
        ppid = procfs.ppid(pid)
        if ppid is not None:
            out.setdefault(ppid, []).append(pid)
    return out


def processes(root: int) -> Set[int]:
    """``root`` and every process descended from it (by parent links now)."""
    children = _children()
    found, todo = {root}, [root]
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def threads(pids: Set[int]) -> Set[int]:
    """Every thread id of these processes (a process that is gone has none)."""
    out: Set[int] = set()
    for pid in pids:
        try:
            out.update(int(t) for t in os.listdir(f"{PROC}/{pid}/task") if t.isdigit())
        except OSError:
            continue
    return out


def tree_threads(root: int) -> Set[int]:
    return threads(processes(root))
