"""Pids as the tracer's own pid namespace numbers them.

The kernel knows a task by its host (initial namespace) pid. A tracer in a pid
namespace of its own (a container without --pid=host) is used by people who
know processes by that namespace's pids: so there, events show, and -p/-t/--ppid
take, those pids. The eBPF programs number each task in the tracer's namespace
(given its inode, bpf/common.h ht_view_of), found level by level in the task's
struct pid: a process of that namespace or of one nested below it has its pid
there; a process of any other namespace, including the host, has none the tracer
can name: pid, tid and ppid are None (text output: ``?``), as is a ppid whose
parent is outside. Its host pids are nowhere in the event: they would name other
processes here. The backends that read /proc by host pid refuse to run there
(requirements_common).
"""

from __future__ import annotations

import os
from typing import Optional

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
