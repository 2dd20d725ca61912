"""Finding tracefs, and mounting it for the sessions that need it.

The ftrace backend lives in it and BCC's tracepoints take their ids from it, so
those mount it when it is missing (and say so). ebpf-core only looks: its
classic tracepoints need tracefs already mounted, its tp_btf mode none at all.
A lazily automounted debugfs may not show in mountinfo, so a location counts
when its events/ directory is there.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from typing import Optional, Tuple

CANDIDATES = ("sys/kernel/tracing", "sys/kernel/debug/tracing")


class TracefsUnavailable(Exception):
    pass


def find(root: str = "/") -> Optional[str]:
    """The first tracefs location (relative to root) whose events/ exists."""
    for rel in CANDIDATES:
        path = os.path.join(root, rel)
        if os.path.isdir(os.path.join(path, "events")):
            return path
    return None


def _mount_tracefs(target: str) -> None:
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    rc = libc.mount(b"nodev", target.encode(), b"tracefs", 0, None)
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), target)


def ensure_mounted() -> Tuple[str, bool]:
    """Return (path, mounted_by_us); mount tracefs at /sys/kernel/tracing if needed.

    The mount is left in place: it holds no tracing state, and other tools
    (and a concurrent session of ours) may already be using it.
    """
    path = find()
    if path is not None:
        return path, False
    target = "/" + CANDIDATES[0]
    try:
        _mount_tracefs(target)
    except OSError as exc:
        raise TracefsUnavailable(
            f"tracefs is not mounted and mounting it at {target} failed: {exc.strerror}"
            " (mount -t tracefs nodev /sys/kernel/tracing as root)"
        ) from exc
    if find() is None:
        raise TracefsUnavailable(f"tracefs mounted at {target} but events/ is missing")
    return target, True
