"""Finding tracefs, and mounting it for the sessions that need it.

The ftrace backend lives in it and BCC's tracepoints take their ids from it, so
those mount it when it is missing (and say so). ebpf-core only looks: its
classic tracepoints need tracefs already mounted, its tp_btf mode none at all.
A lazily automounted debugfs may not show in mountinfo, so a location counts
when its events/ directory is there.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import time
from typing import Callable, Optional, Tuple

from hybridtrace.errors import BackendError

CANDIDATES = ("sys/kernel/tracing", "sys/kernel/debug/tracing")


class TracefsUnavailable(BackendError):
    """tracefs is not there and could not be mounted: one line for the user."""


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


# -- control files and removal: one policy for every caller ---------------------

def write(path: str, text: str, append: bool = False) -> None:
    """Write a control file in one write() call (tracefs parses per write)."""
    flags = os.O_WRONLY | (os.O_APPEND if append else os.O_TRUNC)
    fd = os.open(path, flags)
    try:
        os.write(fd, text.encode("utf-8", "surrogateescape"))
    finally:
        os.close(fd)


def read(path: str) -> str:
    with open(path, encoding="utf-8", errors="surrogateescape") as handle:
        return handle.read()


# The kernel refuses to remove an instance or a probe with EBUSY for a moment
# after its last reader closed or its last event was disabled (an in-flight
# probe hit holds a reference): yield at first, then sleep, for at most this long.
BUSY_WAIT_S = 0.5
_BUSY_YIELDS = 50


def _while_busy(attempt: Callable[[], bool]) -> bool:
    """Run ``attempt`` until it returns True or the object stays busy too long."""
    deadline = time.monotonic() + BUSY_WAIT_S
    tries = 0
    while True:
        try:
            return attempt()
        except OSError as exc:
            if exc.errno != errno.EBUSY or time.monotonic() >= deadline:
                raise
        tries += 1
        if tries < _BUSY_YIELDS:
            os.sched_yield()
        else:
            time.sleep(0.01)


def remove_instance(path: str) -> None:
    """rmdir an instance (which disables its events); gone already is fine.

    Raises OSError when it cannot be removed (still busy after BUSY_WAIT_S,
    or not ours to remove)."""

    def attempt() -> bool:
        with contextlib.suppress(FileNotFoundError):
            os.rmdir(path)
        return True

    _while_busy(attempt)


def remove_probe(tracefs_path: str, file: str, group: str, name: str) -> bool:
    """Delete one dynamic event (disabled everywhere first); True when it is gone."""

    def attempt() -> bool:
        try:
            write(os.path.join(tracefs_path, file), f"-:{group}/{name}\n", append=True)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                return True  # not there (any more)
            raise
        return True

    try:
        return _while_busy(attempt)
    except OSError:
        return False
