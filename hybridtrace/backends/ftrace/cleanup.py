"""Removing what sessions of dead processes left in tracefs.

A session killed with SIGKILL cannot clean up after itself. Its instance
(``instances/hybridtrace_<pid>_<n>``) and probe group (same name) say which
process owned them; when that process is gone they are removed: the instance
first (rmdir disables its events), then each probe, after disabling it in the
top-level events too in case someone enabled it there.
"""

from __future__ import annotations

import contextlib
import os
import re
from typing import List, Optional, Tuple

from hybridtrace import procfs, tracefs
from hybridtrace.backends.ftrace.instance import write_file
from hybridtrace.backends.ftrace.probes import remove_one

OWNED = re.compile(r"^hybridtrace_(\d+)_\w+$")
PROBE_FILES = ("uprobe_events", "kprobe_events", "dynamic_events")
# "p:GROUP/EVENT ...", "r10:GROUP/EVENT ...", "e:GROUP/EVENT ..."
_PROBE_LINE = re.compile(r"^[a-z]\w*:(?P<group>[^/\s]+)/(?P<event>\S+)")


def _dead_owner(name: str) -> bool:
    match = OWNED.match(name)
    return match is not None and not procfs.alive(int(match.group(1)))


def _stale_probes(path: str) -> List[Tuple[str, str, str]]:
    found: List[Tuple[str, str, str]] = []
    for file in PROBE_FILES:
        try:
            with open(os.path.join(path, file), encoding="utf-8",
                      errors="surrogateescape") as handle:
                lines = handle.read().splitlines()
        except OSError:
            continue
        for line in lines:
            match = _PROBE_LINE.match(line)
            if match and _dead_owner(match.group("group")):
                group, event = match.group("group"), match.group("event")
                if not any(g == group and e == event for _f, g, e in found):
                    found.append((file, group, event))
    return found


def remove_stale(path: Optional[str] = None) -> List[str]:
    """Remove dead sessions' instances and probes under tracefs ``path``.

    Returns one line per removed item. Raises PermissionError when tracefs
    is not writable by us.
    """
    path = path or tracefs.find()
    if path is None:
        return []
    removed: List[str] = []
    inst_dir = os.path.join(path, "instances")
    try:
        names = sorted(os.listdir(inst_dir))
    except OSError:
        names = []
    for name in names:
        if _dead_owner(name):
            try:
                os.rmdir(os.path.join(inst_dir, name))
            except PermissionError:
                raise
            except OSError:
                # gone already, or busy: its owner lives in another pid namespace
                continue
            removed.append(f"instance {name}")
    for file, group, event in _stale_probes(path):
        enable = os.path.join(path, "events", group, event, "enable")
        with contextlib.suppress(OSError):
            write_file(enable, "0")
        if remove_one(path, file, group, event):
            removed.append(f"probe {group}/{event}")
    return removed
