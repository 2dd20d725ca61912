"""Where a task lives, for the BCC programs: the origin reads' -D flags, and the
where-filters (--cgroup, --container, --mntns, --descendants-of, BCC's
--cgroupmap/--mntnsmap) compiled into the kernel program, as the ebpf-core engine
applies them (core_scope.py).

What the programs can read is decided here, once, from the kernel's BTF and headers:
a field with no trustworthy way to read it is None in every event, and a filter on
it is refused in one line rather than applied to unknowns.
"""

from __future__ import annotations

import os
from typing import Dict, List, Optional, Tuple

import attrs

from hybridtrace import pinned_maps
from hybridtrace.backends.base import BackendError
from hybridtrace.backends.ebpf.core_scope import (
    FOLLOW_MAX,
    kernel_filters,
    root_fds,
    scope_of,
    seed_tree,
)
from hybridtrace.btf_offsets import BtfError, origin_offsets
from hybridtrace.errors import RequestError
from hybridtrace.request import TraceRequest

__all__ = ["Origin", "cflags", "choose", "fill", "kernel_filters"]

CGROUP_HELPER_SINCE = (4, 18, 0)  # bpf_get_current_cgroup_id
THREAD_PID_SINCE = (4, 19, 0)  # task_struct.thread_pid: what exact headers' offsetof needs
# The offsets each read needs (common.c's HT_ORIGIN_MNTNS, HT_ORIGIN_PIDNS).
MNTNS_NEEDS = ("HT_OFF_NSPROXY", "HT_OFF_NSP_MNT", "HT_OFF_MNT_NS_NS", "HT_OFF_NS_INUM")
PIDNS_NEEDS = ("HT_OFF_THREAD_PID", "HT_OFF_GROUP_LEADER", "HT_OFF_PID_LEVEL",
               "HT_OFF_PID_NUMBERS", "HT_OFF_UPID_NR", "HT_OFF_UPID_NS", "HT_OFF_PIDNS_NS",
               "HT_OFF_NS_INUM", "HT_SIZE_UPID")
# Exact headers give every one of these but mnt_namespace's (fs/mount.h, in no header).
FROM_HEADERS = frozenset(MNTNS_NEEDS + PIDNS_NEEDS) - {"HT_OFF_MNT_NS_NS"}


@attrs.frozen(slots=True)
class Origin:
    """What the programs can read of where a task lives."""

    offsets: Dict[str, int]  # from BTF; the rest, with exact headers, from offsetof
    cgroup_id: bool
    mntns: bool
    pidns: bool

    def note(self) -> str:
        known = [name for name, ok in (("cgroup id", self.cgroup_id), ("mntns", self.mntns),
                                       ("pidns and ns pids", self.pidns)) if ok]
        return "origin: " + (", ".join(known) if known else "none")


def _complete(have: Dict[str, int], needs: Tuple[str, ...], exact: bool) -> bool:
    return all(n in have or (exact and n in FROM_HEADERS) for n in needs)


def choose(exact_headers: bool, task_reads: bool, btf_path: Optional[str],
           version: Tuple[int, int, int]) -> Origin:
    """The origin reads this kernel allows (``task_reads``: the parent can be read)."""
    found: Dict[str, int] = {}
    if btf_path is not None:
        try:
            found = origin_offsets(btf_path)
        except BtfError:
            found = {}
    exact = exact_headers and version >= THREAD_PID_SINCE
    return Origin(found, version >= CGROUP_HELPER_SINCE,
                  _complete(found, MNTNS_NEEDS, exact),
                  task_reads and _complete(found, PIDNS_NEEDS, exact))


def _string_macro(name: str, path: str, option: str) -> str:
    if any(c in path for c in '"\\\n'):
        raise BackendError(f"ebpf-bcc cannot use {option} {path!r}: BCC takes the pinned"
                           " map's path into its program text, which a quote, backslash or"
                           " newline would break (pin it at a plainer path)")
    return f'-D{name}="{os.path.realpath(path)}"'


def cflags(request: TraceRequest, origin: Origin) -> List[str]:
    """-D flags for the origin reads and the request's where-filters; BackendError when
    a filter needs what this kernel's program cannot read."""
    out = [f"-D{macro}={value}" for macro, value in sorted(origin.offsets.items())]
    if origin.cgroup_id:
        out.append("-DHT_CGROUP_HELPER")
    f = request.filters
    where: List[str] = []
    for root in scope_of(request).roots:
        where.append(f"-DHT_CGROUP_SLOT{root.slot}")
    if f.mntns is not None or f.mntnsmap is not None:
        if not origin.mntns:
            option = "--mntns" if f.mntns is not None else "--mntnsmap"
            raise BackendError(f"ebpf-bcc cannot filter by {option} here: no offsets to read"
                               " a task's mount namespace (the kernel's BTF has none)")
        if f.mntns is not None:
            where.append(f"-DHT_MNTNS={int(f.mntns)}")
    if f.descendants_of is not None:
        # Not a filter on where a task lives (HT_WHERE): the SQPOLL thread is judged by
        # whether it is followed, as on ebpf-core.
        out += ["-DHT_FOLLOW", f"-DHT_FOLLOW_MAX={FOLLOW_MAX}"]
    if f.cgroupmap is not None and not origin.cgroup_id:
        raise BackendError("ebpf-bcc cannot filter by --cgroupmap on a kernel before 4.18"
                           " (no bpf_get_current_cgroup_id)")
    for name, which in pinned_maps.SETS.items():
        path = getattr(f, name)
        if path is not None:
            macro = _string_macro(f"HT_{name.upper()}_PATH", path, which.option)
            try:
                pinned_maps.check_pinned(path, which)  # gone or changed since resolved
            except RequestError as exc:
                raise BackendError(str(exc)) from None
            where.append(macro)
    return out + where + (["-DHT_WHERE"] if where else [])


def fill(bpf: object, request: TraceRequest) -> None:
    """After load, before attach: the cgroups whose subtrees are traced."""
    if not scope_of(request).roots:
        return
    table = bpf[b"ht_cgroups"]  # type: ignore[index]
    for root, fd in root_fds(request):
        try:
            table[root.slot] = fd
        except Exception as exc:  # BCC raises plain Exception
            raise BackendError(f"cannot give the kernel cgroup {os.fsdecode(root.path)}:"
                               f" {exc}") from None


def seed(bpf: object, request: TraceRequest) -> int:
    """After attach: the process tree as it is now, into ht_follow (core_scope.seed_tree)."""
    if request.filters.descendants_of is None:
        return 0
    table = bpf[b"ht_follow"]  # type: ignore[index]

    def follow(tid: int) -> None:
        try:
            table[table.Key(tid)] = table.Leaf(1)
        except Exception as exc:  # BCC raises plain Exception
            raise OSError(0, str(exc)) from None

    return seed_tree(request, follow)
