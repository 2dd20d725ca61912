"""The checks that need syscalls or the running process, behind one seam.

``probe`` asks a ``Live`` for these; tests pass a ``RecordedLive`` loaded from
a kernel tree's live.json, so recorded trees reproduce the machine they came
from. ``SystemLive`` asks the running kernel (bpf_probes) and this process's
library search (engines).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import subprocess
import sys
from functools import lru_cache
from typing import Any, Callable, Dict, Optional, Protocol

from hybridtrace import tracefs
from hybridtrace.btf_offsets import BtfError, io_uring_open_layout, read_btf
from hybridtrace.capabilities.bpf_probes import (
    create_ringbuf,
    load_kernel_read_prog,
    load_trivial_prog,
)
from hybridtrace.capabilities.btf_names import VMLINUX_BTF, btf_has_tracepoints
from hybridtrace.capabilities.engines import find_bcc, load_libbpf
from hybridtrace.capabilities.eprobe_selftest import eprobe_reads_strings
from hybridtrace.capabilities.model import Bcc, Library
from hybridtrace.vocabulary import (
    IO_URING_EVENTS,
    IO_URING_OPEN_HANDLER,
    IO_URING_OPEN_PREPS,
    owned_name,
)


class Live(Protocol):
    """Results only the running system can give."""

    def euid(self) -> int: ...

    def uname_machine(self) -> str: ...

    def bpf_prog_load_errno(self) -> int: ...

    def ringbuf_errno(self) -> int: ...

    def kernel_read_errno(self) -> int: ...

    def libbpf(self) -> Optional[Library]: ...

    def bcc(self) -> Bcc: ...

    def tracefs_writable(self, path: str) -> bool: ...

    def eprobe_strings(self, path: str) -> Optional[bool]: ...

    def tracefs_mount_errno(self) -> Optional[int]: ...

    def io_uring_tracepoints(self) -> Dict[str, bool]: ...

    def io_uring_layout(self) -> Optional[Dict[str, int]]: ...


# Run in a child process: mount tracefs in a private mount namespace of its own, so the
# answer comes from the kernel (a container's seccomp or LSM, a user namespace) and the
# user's mounts are never touched. unshare(2) and mount(2) through ctypes: no util-linux.
_MOUNT_TRIAL = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
def fail():
    os._exit(ctypes.get_errno() or 255)
if libc.unshare(0x20000):  # CLONE_NEWNS
    fail()
if libc.mount(b"none", b"/", None, (1 << 14) | (1 << 18), None):  # MS_REC | MS_PRIVATE
    fail()
if libc.mount(b"nodev", sys.argv[1].encode(), b"tracefs", 0, None):
    fail()
os._exit(0)
"""
TRACEFS_TARGET = "/sys/kernel/tracing"


def tracefs_mount_trial() -> Optional[int]:
    """0 when tracefs mounts here, else the errno; None when the trial itself could not run."""
    if not os.path.isdir(TRACEFS_TARGET):
        return errno.ENOENT
    try:
        done = subprocess.run([sys.executable, "-c", _MOUNT_TRIAL, TRACEFS_TARGET],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.returncode if 0 <= done.returncode < 255 else None


class SystemLive:
    """The running kernel and process."""

    def euid(self) -> int:
        return os.geteuid()

    def uname_machine(self) -> str:
        return os.uname().machine

    def bpf_prog_load_errno(self) -> int:
        return load_trivial_prog(self.uname_machine())

    def ringbuf_errno(self) -> int:
        return create_ringbuf(self.uname_machine())

    def kernel_read_errno(self) -> int:
        return load_kernel_read_prog(self.uname_machine())

    def libbpf(self) -> Optional[Library]:
        return load_libbpf()

    def bcc(self) -> Bcc:
        return find_bcc()

    def tracefs_writable(self, path: str) -> bool:
        """Can we create instances and probes there (mode bits, read-only mounts)?"""
        targets = [path] + [os.path.join(path, n) for n in ("instances", "uprobe_events")
                            if os.path.exists(os.path.join(path, n))]
        if not all(os.access(t, os.W_OK) for t in targets):
            return False
        return instance_files_writable(path)

    def eprobe_strings(self, path: str) -> Optional[bool]:
        return eprobe_reads_strings(path)

    def tracefs_mount_errno(self) -> Optional[int]:
        return tracefs_mount_trial()

    def io_uring_tracepoints(self) -> Dict[str, bool]:
        return btf_has_tracepoints(IO_URING_EVENTS)

    def io_uring_layout(self) -> Optional[Dict[str, int]]:
        layout = _kernel_io_uring_layout(VMLINUX_BTF)
        return None if layout is None else dict(layout)


@lru_cache(maxsize=4)
def _kernel_io_uring_layout(path: str) -> Optional[Dict[str, int]]:
    """None: no BTF, or one that does not describe an io_uring open request. Indexing
    the kernel's BTF takes ~0.07 s: once per process (it does not change)."""
    try:
        return io_uring_open_layout(read_btf(path), IO_URING_OPEN_HANDLER,
                                    IO_URING_OPEN_PREPS)
    except BtfError:
        return None


def instance_files_writable(path: str) -> bool:
    """Make a throwaway instance and open its settings for writing, then remove it.

    Mode bits on instances/ are not enough: a user who may create an instance
    (tracefs mounted with a gid) gets files inside it only root may write.
    """
    instances = os.path.join(path, "instances")
    if not os.path.isdir(instances):
        return True  # nothing to try; opening a session will tell
    trial = os.path.join(instances, owned_name("doctor"))
    try:
        os.mkdir(trial)
    except FileExistsError:
        pass
    except OSError:
        return False
    try:
        fd = os.open(os.path.join(trial, "buffer_size_kb"), os.O_WRONLY)
        os.close(fd)
        return True
    except OSError:
        return False
    finally:
        with contextlib.suppress(OSError):
            tracefs.remove_instance(trial)


class RecordedLive:
    """Live results recorded on another machine (a kernel tree's live.json)."""

    def __init__(self, data: Dict[str, Any]) -> None:
        self.data = data

    def _get(self, key: str) -> Any:
        if key not in self.data:
            raise LookupError(f"{key} was not recorded")
        return self.data[key]

    def euid(self) -> int:
        return int(self._get("euid"))

    def uname_machine(self) -> str:
        return str(self._get("uname_machine"))

    def bpf_prog_load_errno(self) -> int:
        return int(self._get("bpf_prog_load_errno"))

    def ringbuf_errno(self) -> int:
        return int(self._get("ringbuf_errno"))

    def kernel_read_errno(self) -> int:
        return int(self._get("kernel_read_errno"))

    def libbpf(self) -> Optional[Library]:
        lib = self._get("libbpf")
        return None if lib is None else Library(str(lib["path"]), lib.get("version"))

    def bcc(self) -> Bcc:
        bcc = self._get("bcc")
        return Bcc(bcc.get("version"), bcc.get("location"), bcc.get("error"))

    def tracefs_writable(self, path: str) -> bool:
        return bool(self._get("tracefs_writable")[path])

    def eprobe_strings(self, path: str) -> Optional[bool]:
        value = self._get("eprobe_strings")[path]
        return None if value is None else bool(value)

    def tracefs_mount_errno(self) -> Optional[int]:
        value = self.data.get("tracefs_mount_errno")  # older recordings: not tried
        return None if value is None else int(value)

    def io_uring_tracepoints(self) -> Dict[str, bool]:
        return {str(k): bool(v) for k, v in self._get("io_uring_tracepoints").items()}

    def io_uring_layout(self) -> Optional[Dict[str, int]]:
        value = self.data.get("io_uring_layout")  # older recordings: not recorded
        return None if value is None else {str(k): int(v) for k, v in value.items()}


def record(live: Live, tracefs_path: Optional[str]) -> Dict[str, Any]:
    """What a RecordedLive needs to answer like ``live`` does.

    The recorders in tools/ call it; it stays beside RecordedLive so the
    format's writer and reader change together."""
    lib = live.libbpf()
    bcc = live.bcc()
    return {
        "euid": live.euid(),
        "uname_machine": live.uname_machine(),
        "bpf_prog_load_errno": live.bpf_prog_load_errno(),
        "ringbuf_errno": live.ringbuf_errno(),
        "kernel_read_errno": live.kernel_read_errno(),
        "libbpf": None if lib is None else {"path": lib.path, "version": lib.version},
        "bcc": {"version": bcc.version, "location": bcc.location, "error": bcc.error},
        "tracefs_writable": {} if tracefs_path is None
        else {tracefs_path: live.tracefs_writable(tracefs_path)},
        "eprobe_strings": {} if tracefs_path is None
        else {tracefs_path: live.eprobe_strings(tracefs_path)},
        "tracefs_mount_errno": live.tracefs_mount_errno() if tracefs_path is None else None,
        "io_uring_tracepoints": _or_none(live.io_uring_tracepoints),
        "io_uring_layout": live.io_uring_layout(),
    }


def _or_none(call: Callable[[], Any]) -> Any:
    try:
        return call()
    except (OSError, ValueError):
        return None


def load_recorded(path: str) -> RecordedLive:
    with open(path) as f:
        return RecordedLive(json.load(f))
