"""Reading files under a probe root without ever raising.

Every path the prober looks at is an absolute path as seen on the probed
machine ("/proc/self/status"); ``Tree`` maps it under ``root`` so that a
recorded kernel tree answers exactly like the live system. Symlinks are
followed inside the tree (an absolute link target is re-rooted), so
/lib/modules/R/build -> /usr/src/... works in a recording too; the kernel's
magic links under /proc (self, fd) are left to the OS, so a recording keeps
/proc/self/status at that path.
"""

from __future__ import annotations

import gzip
import os
from typing import List, Optional

from hybridtrace import procfs

_MAX_LINKS = 40

# In a recorded kernel tree, a directory probe listed, kept by this file where nothing
# else of it was recorded (git keeps no empty directories); listdir leaves it out.
LISTED_EMPTY = ".hybridtrace-listed"


class Tree:
    """A read-only view of one machine's files, plus the notes of what failed."""

    def __init__(self, root: str = "/") -> None:
        self.root = root
        self.unchecked: List[str] = []

    def note(self, text: str) -> None:
        """Record a check that could not run, and why."""
        if text not in self.unchecked:
            self.unchecked.append(text)

    def followed(self, path: str, real: str) -> None:
        """Hook: resolve() is about to follow the symlink at machine path ``path``."""

    def host(self, path: str) -> str:
        """The real path of an absolute machine path under root (no link resolving)."""
        return os.path.join(self.root, path.lstrip("/"))

    def resolve(self, path: str) -> Optional[str]:
        """Follow symlinks inside the tree; the machine path, or None on a loop."""
        parts = [p for p in path.split("/") if p]
        done: List[str] = []
        hops = 0
        while parts:
            part = parts.pop(0)
            if part == "..":
                if done:
                    done.pop()
                continue
            if part == ".":
                continue
            cur = "/" + "/".join([*done, part])
            real = self.host(cur)
            if cur.startswith("/proc/"):
                done.append(part)
                continue
            if os.path.islink(real):
                self.followed(cur, real)
                hops += 1
                if hops > _MAX_LINKS:
                    return None
                try:
                    target = os.readlink(real)
                except OSError:
                    return None
                if target.startswith("/"):
                    done = []
                parts = [p for p in target.split("/") if p] + parts
                continue
            done.append(part)
        return "/" + "/".join(done)

    def _real(self, path: str) -> Optional[str]:
        resolved = self.resolve(path)
        return None if resolved is None else self.host(resolved)

    def exists(self, path: str) -> bool:
        real = self._real(path)
        return real is not None and os.path.exists(real)

    def isdir(self, path: str) -> bool:
        real = self._real(path)
        return real is not None and os.path.isdir(real)

    def isfile(self, path: str) -> bool:
        real = self._real(path)
        return real is not None and os.path.isfile(real)

    def read_bytes(self, path: str, limit: int = 1 << 20) -> Optional[bytes]:
        """Up to ``limit`` bytes of a file, or None when absent or unreadable."""
        real = self._real(path)
        return None if real is None else procfs.read_bytes(real, limit)

    def read_text(self, path: str, limit: int = 1 << 20) -> Optional[str]:
        data = self.read_bytes(path, limit)
        return None if data is None else data.decode("utf-8", "replace")

    def read_gzip_text(self, path: str, limit: int = 8 << 20) -> Optional[str]:
        real = self._real(path)
        if real is None:
            return None
        try:
            with gzip.open(real, "rb") as f:
                return f.read(limit).decode("utf-8", "replace")
        except (OSError, EOFError):
            return None

    def read_int(self, path: str) -> Optional[int]:
        text = self.read_text(path, 64)
        if text is None:
            return None
        try:
            return int(text.strip())
        except ValueError:
            return None

    def readlink(self, path: str) -> Optional[str]:
        """The target of the symlink at ``path`` itself (not followed), or None."""
        try:
            return os.readlink(self.host(path))
        except OSError:
            return None

    def listdir(self, path: str) -> Optional[List[str]]:
        real = self._real(path)
        if real is None:
            return None
        try:
            return sorted(n for n in os.listdir(real) if n != LISTED_EMPTY)
        except OSError:
            return None
