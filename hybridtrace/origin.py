"""Names for where an event came from: a cgroup id -> its path and container id.

Every backend's events carry the cgroup id the kernel gave (or /proc proved);
this turns it into the path and, when the path names one, the container id.
Cached per id: ids are never reused, so an answer once found stays right.
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple

from hybridtrace.cgroups import CgroupTree
from hybridtrace.containers import container_id

Name = Tuple[Optional[bytes], Optional[str]]  # (cgroup path, container id)
UNNAMED: Name = (None, None)
CACHE_MAX = 65536


class CgroupNames:
    """cgroup id -> (path, container id), looked up in the cgroup2 tree once per id."""

    def __init__(self, tree: Optional[CgroupTree] = None) -> None:
        self._tree = tree
        self.cache: Dict[int, Name] = {}

    @property
    def tree(self) -> CgroupTree:
        if self._tree is None:
            self._tree = CgroupTree.here()
        return self._tree

    def lookup(self, cgroup_id: Optional[int], recorded_ns: Optional[int] = None) -> Name:
        """``recorded_ns``: when the id was seen in use (CLOCK_MONOTONIC), see CgroupTree."""
        if cgroup_id is None:
            return UNNAMED
        hit = self.cache.get(cgroup_id)
        if hit is not None:
            return hit
        path = self.tree.path_of(cgroup_id, recorded_ns)
        if path is None:
            return UNNAMED
        if len(self.cache) >= CACHE_MAX:
            self.cache.clear()
        hit = self.cache[cgroup_id] = (path, container_id(path))
        return hit


class NoNames(CgroupNames):
    """Names nothing (tests, and decoders used without a stream)."""

    def lookup(self, cgroup_id: Optional[int], recorded_ns: Optional[int] = None) -> Name:
        return UNNAMED


NO_NAMES = NoNames()
