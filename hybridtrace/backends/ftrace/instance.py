"""A private tracefs instance: our own ring buffer, events and filters.

Working in ``instances/hybridtrace_<pid>_<n>`` (never the global buffer)
means another tool's settings are untouched and two sessions each get every
event once. The instance is removed with rmdir, which the kernel refuses
while a reader holds its trace_pipe open, so readers close first.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from typing import List, Optional

from hybridtrace import tracefs
from hybridtrace.backends.base import BackendError
from hybridtrace.vocabulary import owned_name

DEFAULT_BUFFER_KB = 8192  # per CPU: bursts of tens of thousands of records fit
_counter = itertools.count()


def session_name() -> str:
    """A name that carries our pid, unique within this process."""
    return owned_name(str(next(_counter)))


# Kept under these names for the ftrace modules; one implementation in tracefs.py.
write_file = tracefs.write
read_file = tracefs.read


class Instance:
    """One tracefs instance directory we created and must remove."""

    def __init__(self, tracefs_path: str, name: str) -> None:
        self.name = name
        self.tracefs_path = tracefs_path
        self.path = os.path.join(tracefs_path, "instances", name)
        self.enabled: List[str] = []  # "system/event" in enable order
        try:
            os.mkdir(self.path)
        except OSError as exc:
            raise BackendError(
                f"cannot create tracefs instance {self.path}: {exc.strerror}") from None

    def events_dir(self) -> str:
        return os.path.join(self.path, "events")

    def has_event(self, system: str, event: str) -> bool:
        return os.path.isdir(os.path.join(self.events_dir(), system, event))

    def set_option(self, name: str, value: str) -> bool:
        """Set a file of the instance; False when the kernel lacks it."""
        try:
            write_file(os.path.join(self.path, name), value)
        except OSError:
            return False
        return True

    def configure(self, buffer_kb: int, clock: Optional[str]) -> None:
        if not self.set_option("buffer_size_kb", str(buffer_kb)):
            raise BackendError(f"cannot set buffer_size_kb={buffer_kb} in {self.path}")
        if clock is not None:
            self.set_option("trace_clock", clock)
        self.set_option("buffer_percent", "0")  # wake readers on any data
        self.set_option("options/overwrite", "1")  # losses show as overrun

    def set_filter(self, system: str, event: str, expr: str) -> None:
        path = os.path.join(self.events_dir(), system, event, "filter")
        try:
            write_file(path, expr)
        except OSError as exc:
            raise BackendError(f"kernel rejected filter {expr!r} on {system}/{event}:"
                               f" {exc.strerror}") from None

    def enable(self, system: str, event: str) -> None:
        path = os.path.join(self.events_dir(), system, event, "enable")
        try:
            write_file(path, "1")
        except OSError as exc:
            raise BackendError(f"cannot enable {system}/{event}: {exc.strerror}") from None
        if f"{system}/{event}" not in self.enabled:  # shared events come once per probe
            self.enabled.append(f"{system}/{event}")

    def disable_all(self) -> None:
        """Stop recording: tracing_on off first, then each event we enabled."""
        self.set_option("tracing_on", "0")
        for name in reversed(self.enabled):
            with contextlib.suppress(OSError):
                write_file(os.path.join(self.events_dir(), name, "enable"), "0")
        self.enabled = []

    def remove(self) -> None:
        """rmdir the instance (tracefs.remove_instance waits while a closing reader lets go)."""
        tracefs.remove_instance(self.path)
