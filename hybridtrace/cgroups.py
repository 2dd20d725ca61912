"""Cgroup v2 ids and paths: what bpf_get_current_cgroup_id() names, and back.

A cgroup's id is its kernfs node id, which 64-bit kernels also give its
directory as inode number (and readdir as d_ino): ids are never reused while
the machine runs, so an id found under a path is that cgroup, now or later.
Only the path can change (a rename, rare), and a cgroup removed before we
look has no path any more: then None, never a neighbour's.
"""

from __future__ import annotations

import os
import time
from typing import Callable, Dict, Iterator, List, Optional, Set, Tuple

from hybridtrace.vocabulary import CGROUP2_FSTYPE, CGROUP2_PROC_PREFIX

MOUNTINFO = "/proc/self/mountinfo"
# A walk of the whole hierarchy is done at most this often when an id is unknown
# (a node with thousands of cgroups takes milliseconds).
REWALK_NS = 50_000_000
GONE_MAX = 65536


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1:i + 4].isdigit() and len(field[i + 1:i + 4]) == 3:
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def cgroup2_mounts(text: Optional[str] = None) -> List[Tuple[str, str]]:
    """(mount point, root inside the hierarchy) of every cgroup2 mount, in mount order."""
    if text is None:
        try:
            with open(MOUNTINFO, encoding="utf-8", errors="surrogateescape") as handle:
                text = handle.read()
        except OSError:
            return []
    out = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        fields, rfields = left.split(), right.split()
        if sep and len(fields) >= 5 and rfields and rfields[0] == CGROUP2_FSTYPE:
            out.append((_unescape(fields[4]), _unescape(fields[3])))
    return out


def cgroup2_root(text: Optional[str] = None) -> Optional[Tuple[str, str]]:
    """The cgroup2 mount to walk: the one whose root is the hierarchy's top if any."""
    mounts = cgroup2_mounts(text)
    for point, root in mounts:
        if root == "/":
            return point, root
    return mounts[0] if mounts else None


def proc_cgroup(text: bytes) -> Optional[bytes]:
    """The v2 path from /proc/PID/cgroup's text ("0::PATH"); None without one."""
    prefix = CGROUP2_PROC_PREFIX.encode()
    for line in text.split(b"\n"):
        if line.startswith(prefix):
            return line[len(prefix):]
    return None


class CgroupTree:
    """id <-> path over one cgroup2 mount; paths as /proc/PID/cgroup shows them.

    ``path_of`` answers from what it has seen; an unknown id sends it to walk
    the hierarchy again, unless a walk began after the event was recorded: the
    cgroup, which existed then, would have been found, so it is gone.
    """

    def __init__(self, mount: Optional[str], root: str = "/",
                 clock: Callable[[], int] = time.monotonic_ns) -> None:
        self.mount = mount
        self._prefix = b"" if root in ("/", "") else os.fsencode(root.rstrip("/"))
        self._clock = clock
        self._paths: Dict[int, bytes] = {}
        self._last_walk: Optional[int] = None
        self._gone: Set[int] = set()  # ids a walk after their use did not find

    @property
    def prefix(self) -> bytes:
        """The mount's root inside the hierarchy (b"" for the top)."""
        return self._prefix

    @classmethod
    def here(cls) -> CgroupTree:
        found = cgroup2_root()
        return cls(found[0], found[1]) if found else cls(None)

    def _walk(self) -> Iterator[Tuple[int, bytes]]:
        assert self.mount is not None
        top = os.fsencode(self.mount)
        try:
            yield os.stat(top).st_ino, self._prefix or b"/"
        except OSError:
            return
        stack = [(top, self._prefix)]
        while stack:
            where, rel = stack.pop()
            try:
                entries = list(os.scandir(where))
            except OSError:
                continue  # removed while we walked, or not ours to read
            for entry in entries:
                try:
                    if not entry.is_dir(follow_symlinks=False):
                        continue
                except OSError:
                    continue
                path = rel + b"/" + entry.name
                yield entry.inode(), path
                stack.append((entry.path, path))

    def rewalk(self) -> None:
        if self.mount is None:
            return
        self._last_walk = self._clock()
        self._paths = dict(self._walk())

    def path_of(self, cgroup_id: Optional[int], recorded_ns: Optional[int] = None
                ) -> Optional[bytes]:
        """The cgroup's path, or None when it is gone (or was never under this mount).

        ``recorded_ns`` (CLOCK_MONOTONIC) is when the id was seen in use: a walk
        that began later settles the question, so each dead cgroup costs one walk.
        """
        if cgroup_id is None or self.mount is None:
            return None
        path = self._paths.get(cgroup_id)
        if path is not None or cgroup_id in self._gone:
            return path
        last = self._last_walk
        if last is not None:
            if recorded_ns is not None and last >= recorded_ns:
                self._forget(cgroup_id)
                return None
            if recorded_ns is None and self._clock() - last < REWALK_NS:
                return None
        self.rewalk()
        path = self._paths.get(cgroup_id)
        if path is None and recorded_ns is not None:
            self._forget(cgroup_id)
        return path

    def _forget(self, cgroup_id: int) -> None:
        if len(self._gone) >= GONE_MAX:
            self._gone.clear()
        self._gone.add(cgroup_id)

    def id_of(self, path: bytes) -> Optional[int]:
        """The id of the cgroup at ``path`` (as /proc/PID/cgroup shows it)."""
        if self.mount is None:
            return None
        if self._prefix and not (path == self._prefix or path.startswith(self._prefix + b"/")):
            return None
        rel = path[len(self._prefix):].lstrip(b"/")
        try:
            return os.stat(os.path.join(os.fsencode(self.mount), rel)).st_ino
        except OSError:
            return None

    def directory(self, path: bytes) -> Optional[bytes]:
        """Where the cgroup at ``path`` is in this filesystem."""
        if self.mount is None:
            return None
        rel = path[len(self._prefix):].lstrip(b"/") if self._prefix else path.lstrip(b"/")
        return os.path.join(os.fsencode(self.mount), rel)

    def paths(self) -> Dict[int, bytes]:
        """Every cgroup seen by the last walk (walks once if never walked)."""
        if self._last_walk is None:
            self.rewalk()
        return dict(self._paths)
