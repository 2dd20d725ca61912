"""ebpf-core's where-filters: cgroup, container, mount namespace, process tree, and
BCC's pinned cgroup and mount namespace maps:
what the programs can do here, what goes into .rodata and the maps, and the
process tree's seed.
"""

from __future__ import annotations

import ctypes
import os
from typing import Callable, FrozenSet, Iterator, List, Set, Tuple

from hybridtrace import pinned_maps, process_tree
from hybridtrace.backends.base import BackendError
from hybridtrace.backends.ebpf.libbpf import Libbpf
from hybridtrace.backends.ebpf.loader import BpfObject, update_elem
from hybridtrace.errors import RequestError
from hybridtrace.request import TraceRequest
from hybridtrace.scope import CgroupRoot, Scope

FOLLOW_MAX = 16384  # tasks followed at once (--descendants-of); more are counted as lost
# The programs that keep the followed set up to date (bpf/common.h, open.bpf.c).
FOLLOW_PROGRAMS = ("ht_fork", "ht_exit", "ht_exec_follow")
SEED_ROUNDS = 5  # /proc walks until the tree stops growing


def scope_of(request: TraceRequest) -> Scope:
    return request.scope if request.scope is not None else Scope()


def check(request: TraceRequest, attach: str, kernel_reads: bool) -> None:
    """BackendError when this attach mode cannot honour the request's where-filters."""
    f = request.filters
    if f.mntns is not None and attach == "tracepoint" and not kernel_reads:
        raise BackendError("ebpf-core/tracepoint cannot filter by --mntns where kernel reads"
                           " are refused: use tp_btf")
    if attach == "raw_tp":  # no BTF, so no task_struct layout to read
        for what, asked in (("--mntns", f.mntns), ("--descendants-of", f.descendants_of)):
            if asked is not None:
                raise BackendError(f"ebpf-core/raw_tp cannot filter by {what}: without BTF"
                                   " no task's namespaces or children can be read")


def kernel_filters(request: TraceRequest) -> FrozenSet[str]:
    """The filters the programs apply exactly, so user space need not judge them again."""
    f = request.filters
    out: Set[str] = set()
    if f.cgroup is not None:
        out.add("cgroup")
    if f.container is not None:
        out.add("container")
    if f.mntns is not None:
        out.add("mntns")
    out.update(name for name in pinned_maps.SETS if getattr(f, name) is not None)
    return frozenset(out)


def rodata_fields(request: TraceRequest) -> List[int]:
    """mntns, cgroup_slots, follow, has_cgroupmap, has_mntnsmap (struct ht_config's tail)."""
    f, scope = request.filters, scope_of(request)
    slots = 0
    for root in scope.roots:
        slots |= 1 << root.slot
    return [f.mntns or 0, slots, f.descendants_of is not None, f.cgroupmap is not None,
            f.mntnsmap is not None]


def configure(obj: BpfObject, request: TraceRequest) -> None:
    """Before load: size the follow map, or leave it and its programs out when not asked;
    the cgroup map only when a cgroup is asked for (each map created costs an fd)."""
    if request.filters.descendants_of is None:
        obj.leave_out(FOLLOW_PROGRAMS)
        obj.leave_out_map("ht_follow")
    else:
        obj.set_max_entries("ht_follow", FOLLOW_MAX)
    if not scope_of(request).roots:
        obj.leave_out_map("ht_cgroups")
    for name, which in pinned_maps.SETS.items():
        path = getattr(request.filters, name)
        if path is None:
            obj.leave_out_map(which.bpf_map)
            continue
        try:
            fd = pinned_maps.open_pinned(path, which)
        except RequestError as exc:  # gone or changed since the session resolved it
            raise BackendError(str(exc)) from None
        try:
            obj.reuse_map_fd(which.bpf_map, fd)  # libbpf keeps its own duplicate
        finally:
            os.close(fd)


def root_fds(request: TraceRequest) -> Iterator[Tuple[CgroupRoot, int]]:
    """Each cgroup whose subtree is traced, with an fd of its directory for the kernel's
    cgroup array (closed once the next is asked for, or the loop ends)."""
    for root in scope_of(request).roots:
        try:
            fd = os.open(root.directory, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as exc:
            raise BackendError(f"cannot open cgroup {os.fsdecode(root.path)}:"
                               f" {exc.strerror}") from None
        try:
            yield root, fd
        finally:
            os.close(fd)


def fill(obj: BpfObject, lib: Libbpf, request: TraceRequest) -> None:
    """After load, before attach: the cgroups whose subtrees are traced."""
    for root, fd in root_fds(request):
        try:
            update_elem(lib, obj.map_fd("ht_cgroups"), ctypes.c_uint32(root.slot),
                        ctypes.c_uint32(fd))
        except OSError as exc:
            raise BackendError(f"cannot give the kernel cgroup {os.fsdecode(root.path)}:"
                               f" {exc.strerror}") from None


def seed_tree(request: TraceRequest, follow: Callable[[int], None]) -> int:
    """After attach: ``follow`` each task of the process tree as it is now (an OSError
    of it is a BackendError); forks from here on are the kernel's. Returns how many."""
    root = request.filters.descendants_of
    if root is None:
        return 0
    seeded: Set[int] = set()
    for _ in range(SEED_ROUNDS):
        new = process_tree.tree_threads(root) - seeded
        if not new:
            break
        for tid in sorted(new):
            try:
                follow(tid)
            except OSError as exc:
                raise BackendError(f"--descendants-of: cannot follow task {tid}:"
                                   f" {exc.strerror}") from None
        seeded |= new
    if not seeded:
        raise BackendError(f"--descendants-of: process {root} is gone")
    return len(seeded)


def seed(obj: BpfObject, lib: Libbpf, request: TraceRequest) -> int:
    """ebpf-core's seed_tree: into the ht_follow map."""
    if request.filters.descendants_of is None:
        return 0
    map_fd = obj.map_fd("ht_follow")
    return seed_tree(request, lambda tid: update_elem(lib, map_fd, ctypes.c_uint32(tid),
                                                      ctypes.c_uint8(1)))
