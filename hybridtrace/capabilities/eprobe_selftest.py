"""Can an eprobe read a syscall tracepoint's string argument on this kernel?

Listing eprobes in the README is not enough: on Debian's 6.12 every
``+0($filename):ustring`` on syscalls/sys_enter_openat reads a fault (the
kernel hands an eprobe the first byte of a ``const char *`` field, not the
pointer), while 6.1 reads the path. No version boundary is known, so the
kernel is asked: a throwaway eprobe, enabled in a throwaway instance and
filtered to this thread, watches us open a path that does not exist.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
from typing import Optional

import attrs

from hybridtrace.vocabulary import owned_name

SOURCE = "syscalls.sys_enter_openat"


def _write(path: str, text: str, append: bool = False) -> None:
    fd = os.open(path, os.O_WRONLY | (os.O_APPEND if append else os.O_TRUNC))
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _read(path: str) -> str:
    with open(path, "rb") as f:
        return f.read().decode("utf-8", "replace")


def _remove_probe(tracefs: str, group: str, name: str) -> None:
    for _ in range(50):  # busy (EBUSY) for a moment after its last disable
        try:
            _write(os.path.join(tracefs, "dynamic_events"), f"-:{group}/{name}\n", append=True)
            return
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.EINVAL):
                return
            os.sched_yield()


def remove_instance(path: str) -> None:
    """rmdir a throwaway instance, retrying while the kernel still holds it busy."""
    for _ in range(50):
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError:
            os.sched_yield()


def verdict(trace_text: str, name: str, marker: str) -> Optional[bool]:
    """True: the probe recorded the marker; False: it fired but read no string; None: silent."""
    fired = [line for line in trace_text.splitlines() if f" {name}:" in line]
    if not fired:
        return None
    return any(marker in line for line in fired)


@attrs.frozen(slots=True)
class SelfTest:
    """What the kernel wrote, kept so a recorded tree can replay the judgement."""

    name: str
    marker: str
    trace: str

    @property
    def reads_strings(self) -> Optional[bool]:
        return verdict(self.trace, self.name, self.marker)


def eprobe_reads_strings(tracefs: str) -> Optional[bool]:
    """True/False from the kernel; None when the test could not run."""
    test = run(tracefs)
    return None if test is None else test.reads_strings


def run(tracefs: str) -> Optional[SelfTest]:
    """Run the test; None when it could not (no eprobes, no openat event, denied)."""
    pid = os.getpid()
    group, name = owned_name("doctor"), "ht_selftest"
    instance = os.path.join(tracefs, "instances", owned_name("selftest"))
    marker = f"/nonexistent/hybridtrace-eprobe-selftest-{pid}"
    try:
        _write(os.path.join(tracefs, "dynamic_events"),
               f"e:{group}/{name} {SOURCE} path=+0($filename):ustring\n", append=True)
    except OSError:
        return None
    root_fd = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.mkdir(instance)
        event = os.path.join(instance, "events", group, name)
        _write(os.path.join(event, "filter"), f"common_pid == {threading.get_native_id()}\n")
        _write(os.path.join(event, "enable"), "1\n")
        try:
            # dir_fd: openat(2) whatever the C library's open() calls; it fails, as meant
            with contextlib.suppress(OSError):
                os.close(os.open(marker, os.O_RDONLY, dir_fd=root_fd))
        finally:
            _write(os.path.join(event, "enable"), "0\n")
        return SelfTest(name, marker, _read(os.path.join(instance, "trace")))
    except OSError:
        return None
    finally:
        os.close(root_fd)
        remove_instance(instance)  # gone already, or never made: returns at once
        _remove_probe(tracefs, group, name)
