"""Removing what sessions of dead processes left in tracefs.

A session killed with SIGKILL cannot clean up after itself. Its instance
(``instances/hybridtrace_<pid>_<n>``) and probe group (same name) say which
process owned them; when that process is gone they are removed: the instance
first (rmdir disables its events), then each probe, after disabling it in the
top-level events too in case someone enabled it there. What is ours is read
by hybridtrace.kernel_state, which tests and tools use to find leftovers.
"""

from __future__ import annotations

import contextlib
import os
from typing import List, Optional

from hybridtrace import kernel_state, procfs, tracefs
from hybridtrace.backends.ftrace.instance import write_file
from hybridtrace.backends.ftrace.probes import remove_one
from hybridtrace.vocabulary import owner_of


def _dead_owner(name: str) -> bool:
    owner = owner_of(name)
    return owner is not None and not procfs.alive(owner)


def remove_stale(path: Optional[str] = None, owner: Optional[int] = None) -> List[str]:
    """Remove dead sessions' instances and probes under tracefs ``path``.

    With ``owner``, that session's, whether or not its process is still there
    (the reaper knows it died). Returns one line per removed item. Raises
    PermissionError when tracefs is not writable by us.
    """
    path = path or tracefs.find()
    if path is None:
        return []
    removed: List[str] = []

    def gone(name: str) -> bool:
        return owner_of(name) == owner if owner is not None else _dead_owner(name)

    for name in filter(gone, kernel_state.instances(path)):
        try:
            tracefs.remove_instance(os.path.join(path, "instances", name))
        except PermissionError:
            raise
        except OSError:
            # gone already, or busy: its owner lives in another pid namespace
            continue
        removed.append(f"instance {name}")
    for file, group, event in kernel_state.probes(path):
        if not gone(group):
            continue
        enable = os.path.join(path, "events", group, event, "enable")
        with contextlib.suppress(OSError):
            write_file(enable, "0")
        if remove_one(path, file, group, event):
            removed.append(f"probe {group}/{event}")
    return removed
