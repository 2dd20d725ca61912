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
import os
import threading
from typing import Optional

import attrs

from hybridtrace import tracefs
from hybridtrace.vocabulary import owned_name

SOURCE = "syscalls.sys_enter_openat"


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


def eprobe_reads_strings(tracefs_path: str) -> Optional[bool]:
    """True/False from the kernel; None when the test could not run."""
    test = run(tracefs_path)
    return None if test is None else test.reads_strings


def run(tracefs_path: str) -> Optional[SelfTest]:
    """Run the test; None when it could not (no eprobes, no openat event, denied)."""
    pid = os.getpid()
    group, name = owned_name("doctor"), "ht_selftest"
    instance = os.path.join(tracefs_path, "instances", owned_name("selftest"))
    marker = f"/nonexistent/hybridtrace-eprobe-selftest-{pid}"
    try:
        tracefs.write(os.path.join(tracefs_path, "dynamic_events"),
                      f"e:{group}/{name} {SOURCE} path=+0($filename):ustring\n", append=True)
    except OSError:
        return None
    root_fd = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.mkdir(instance)
        event = os.path.join(instance, "events", group, name)
        tracefs.write(os.path.join(event, "filter"), f"common_pid == {threading.get_native_id()}\n")
        tracefs.write(os.path.join(event, "enable"), "1\n")
        try:
            # dir_fd: openat(2) whatever the C library's open() calls; it fails, as meant
            with contextlib.suppress(OSError):
                os.close(os.open(marker, os.O_RDONLY, dir_fd=root_fd))
        finally:
            tracefs.write(os.path.join(event, "enable"), "0\n")
        return SelfTest(name, marker, tracefs.read(os.path.join(instance, "trace")))
    except OSError:
        return None
    finally:
        os.close(root_fd)
        with contextlib.suppress(OSError):  # gone already, or never made: returns at once
            tracefs.remove_instance(instance)
        tracefs.remove_probe(tracefs_path, "dynamic_events", group, name)
