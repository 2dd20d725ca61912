"""BCC's --cgroupmap and --mntnsmap: a BPF hash map someone else pinned and fills.

The map holds the cgroup ids (bpf_get_current_cgroup_id) or mount namespace inodes
(8-byte keys, any value) of the tasks to trace; the programs look the task up in it
for every event, so whoever fills the map changes what is traced while we run, as
with BCC's tools. Created, for example, with
``bpftool map create /sys/fs/bpf/NAME type hash key 8 value 8 entries 128 name cgroupset``.

The pin is checked here as a session starts (RequestError: one line, nothing
loaded) and opened again by the backend that hands it to its programs.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
from typing import Dict, Tuple

import attrs

from hybridtrace.capabilities.bpf_probes import ATTR_SIZE, bpf_syscall
from hybridtrace.errors import RequestError
from hybridtrace.text_fields import colon_fields

_BPF_OBJ_GET = 7
# include/uapi/linux/bpf.h: the hash map types a lookup by key works on alike.
MAP_TYPES = {1: "hash", 9: "lru_hash"}
_OTHER_TYPES = {2: "array", 5: "percpu_hash", 6: "percpu_array", 10: "lru_percpu_hash"}
KEY_SIZE = 8


@attrs.frozen(slots=True)
class PinnedSet:
    """One of BCC's pinned-map filters: its option and the map our programs look in."""

    option: str  # "--cgroupmap"
    key: str  # what a key is, for messages
    bpf_map: str  # the map of our BPF objects that the pinned map stands in for


CGROUPMAP = PinnedSet("--cgroupmap", "cgroup id", "ht_cgroupmap")
MNTNSMAP = PinnedSet("--mntnsmap", "mount namespace inode", "ht_mntnsmap")
# Filters field -> the set it names.
SETS: Dict[str, PinnedSet] = {"cgroupmap": CGROUPMAP, "mntnsmap": MNTNSMAP}


def open_pinned(path: str, which: PinnedSet) -> int:
    """An fd of the hash map pinned at ``path`` (the caller closes it); RequestError says
    why it cannot serve as ``which``."""
    attr = ctypes.create_string_buffer(ATTR_SIZE)
    name = ctypes.create_string_buffer(os.fsencode(path))
    ctypes.c_uint64.from_buffer(attr, 0).value = ctypes.addressof(name)  # pathname
    fd = bpf_syscall(_BPF_OBJ_GET, attr, platform.machine())
    if fd < 0:
        raise RequestError(f"{which.option}: cannot open the pinned BPF map {path}:"
                           f" {_why(-fd)}")
    try:
        kind, key_size = _map_shape(fd)
    except BaseException:
        os.close(fd)
        raise
    if kind not in MAP_TYPES or key_size != KEY_SIZE:
        os.close(fd)
        shape = "not a BPF map" if kind < 0 else (
            f"a BPF map of type {MAP_TYPES.get(kind) or _OTHER_TYPES.get(kind, kind)} with"
            f" {key_size}-byte keys")
        raise RequestError(f"{which.option}: {path} is {shape}; it must be a hash map with"
                           f" 8-byte keys, each a {which.key} to trace (as BCC's tools"
                           " expect; e.g. bpftool map create PATH type hash key 8 value 8"
                           " entries 128 name set)")
    return fd


def check_pinned(path: str, which: PinnedSet) -> None:
    os.close(open_pinned(path, which))


def _map_shape(fd: int) -> Tuple[int, int]:
    """(map type, key size) from the fd's fdinfo; (-1, 0) for a pinned program or link."""
    try:
        with open(f"/proc/self/fdinfo/{fd}", encoding="ascii", errors="replace") as f:
            fields = colon_fields(f.read())
    except OSError:
        return -1, 0
    try:
        return int(fields["map_type"]), int(fields["key_size"])
    except (KeyError, ValueError):
        return -1, 0


def _why(code: int) -> str:
    if code == errno.ENOENT:
        return "no such file"
    if code in (errno.EINVAL, errno.EACCES):  # EACCES: the file is not a BPF object
        return ("not a pinned BPF object, or not ours to open (pins live in a bpf"
                " filesystem such as /sys/fs/bpf)")
    if code == errno.EPERM:
        return "permission denied (run as root, or with CAP_BPF)"
    return os.strerror(code)
