"""Resolve the where-filters of a request once, as a session starts.

``--cgroup PATH`` and ``--container ID`` both become a cgroup v2 directory
whose subtree the task must be in (the kernel tests it for eBPF with
bpf_current_task_under_cgroup, as libbpf-tools' -c does; user space by path
for the rest). A container is found by walking the cgroup tree for the paths
container runtimes make (containers.py): no runtime's API is asked, so a
container is found by its id (or a prefix of it), not by its name.
A bad value is a RequestError: one line, before anything is loaded.

A backend that cannot apply a where-filter exactly refuses it (``refusal``):
filtering afterwards on a field the backend often cannot know (ftrace reads a
task's cgroup from /proc, gone for a short-lived task) would drop events silently.
"""

from __future__ import annotations

import os
import stat
from typing import Dict, Optional, Tuple

import attrs

from hybridtrace import pinned_maps, procfs
from hybridtrace.cgroups import CgroupTree
from hybridtrace.containers import ContainerRef, parse
from hybridtrace.errors import RequestError
from hybridtrace.request import Filters

CGROUP_SLOT = 0  # --cgroup
CONTAINER_SLOT = 1  # --container

# The where-filters each backend applies exactly: ebpf-core and ebpf-bcc in the kernel,
# ftrace --descendants-of with set_event_pid and event-fork.
OPTIONS = {"cgroup": "--cgroup", "container": "--container", "mntns": "--mntns",
           "descendants_of": "--descendants-of", "cgroupmap": "--cgroupmap",
           "mntnsmap": "--mntnsmap"}
SUPPORTED = {"ebpf-core": frozenset(OPTIONS), "ftrace": frozenset({"descendants_of"}),
             "ebpf-bcc": frozenset(OPTIONS)}
# raw_tp programs have no BTF: no task's namespaces or children can be read.
NOT_ON_TIER = {("ebpf-core", "raw_tp"): frozenset({"mntns", "descendants_of", "mntnsmap"})}


@attrs.frozen(slots=True)
class CgroupRoot:
    """A cgroup the task must be in, at any depth."""

    slot: int  # CGROUP_SLOT or CONTAINER_SLOT
    path: bytes  # in the v2 hierarchy, as /proc/PID/cgroup shows it
    id: int  # its cgroup id (directory inode)
    directory: bytes  # where it is in this filesystem (opened to give the kernel)

    def holds(self, path: Optional[bytes]) -> bool:
        """Whether a cgroup path is this one or below it."""
        if path is None:
            return False
        root = self.path.rstrip(b"/")
        return path == self.path or path.startswith(root + b"/")


@attrs.frozen(slots=True)
class Scope:
    """The request's where-filters, resolved against this machine now."""

    roots: Tuple[CgroupRoot, ...] = ()
    container: Optional[ContainerRef] = None

    def holds(self, cgroup: Optional[bytes]) -> bool:
        return all(root.holds(cgroup) for root in self.roots)


def _cgroup_root(tree: CgroupTree, text: str) -> CgroupRoot:
    """--cgroup: a directory of the cgroup2 mount, or a path as /proc/PID/cgroup shows it."""
    if tree.mount is None:
        raise RequestError("--cgroup: no cgroup v2 filesystem is mounted here"
                           " (looked for cgroup2 in /proc/self/mountinfo)")
    raw = os.fsencode(text)
    mount = os.fsencode(os.path.realpath(tree.mount))
    real = os.fsencode(os.path.realpath(raw)) if os.path.isabs(raw) else b""
    if real == mount or real.startswith(mount.rstrip(b"/") + b"/"):
        rel = b"/" + real[len(mount):].lstrip(b"/")
        path = tree.prefix + rel if rel != b"/" else (tree.prefix or b"/")
    else:
        path = b"/" + raw.lstrip(b"/")
    directory = tree.directory(path)
    try:
        info = os.stat(directory) if directory is not None else None
    except OSError:
        info = None
    if info is None or not stat.S_ISDIR(info.st_mode):
        raise RequestError(f"--cgroup: no cgroup {text!r} in the cgroup v2 hierarchy at"
                           f" {tree.mount}")
    assert directory is not None
    return CgroupRoot(CGROUP_SLOT, path, info.st_ino, directory)


def find_container(tree: CgroupTree, prefix: str) -> ContainerRef:
    """The one running container whose id starts with ``prefix``."""
    if tree.mount is None:
        raise RequestError("--container: no cgroup v2 filesystem is mounted here, so no"
                           " container can be found by its cgroup")
    tree.rewalk()
    found: Dict[str, ContainerRef] = {}
    for path in sorted(tree.paths().values(), key=len):
        ref = parse(path)
        if ref is not None and ref.id.startswith(prefix) and ref.id not in found:
            found[ref.id] = ref
    if not found:
        raise RequestError(f"--container: no running container's cgroup has an id starting"
                           f" {prefix!r} (ids as `docker ps`/`podman ps --no-trunc` show them;"
                           " under this cgroup v2 hierarchy only)")
    if len(found) > 1:
        ids = ", ".join(sorted(found))
        raise RequestError(f"--container: {prefix!r} matches {len(found)} containers ({ids}):"
                           " give more of the id")
    return next(iter(found.values()))


def _container_root(tree: CgroupTree, ref: ContainerRef) -> CgroupRoot:
    path = ref.cgroup.encode()
    directory = tree.directory(path)
    cgid = tree.id_of(path)
    if directory is None or cgid is None:
        raise RequestError(f"--container: container {ref.short_id}'s cgroup {ref.cgroup}"
                           " is gone")
    return CgroupRoot(CONTAINER_SLOT, path, cgid, directory)


def resolve(filters: Filters, tree: Optional[CgroupTree] = None) -> Scope:
    """Resolve ``filters`` here and now; RequestError says what is wrong."""
    roots = []
    ref = None
    if filters.cgroup is not None or filters.container is not None:
        tree = tree or CgroupTree.here()
        if filters.cgroup is not None:
            roots.append(_cgroup_root(tree, filters.cgroup))
        if filters.container is not None:
            ref = find_container(tree, filters.container)
            roots.append(_container_root(tree, ref))
    if filters.descendants_of is not None and not procfs.alive(filters.descendants_of):
        raise RequestError(f"--descendants-of: no process {filters.descendants_of}")
    for name, which in pinned_maps.SETS.items():
        path = getattr(filters, name)
        if path is not None:
            pinned_maps.check_pinned(path, which)
    return Scope(tuple(roots), ref)


def refusal(backend: str, tier: Optional[str], filters: Filters) -> Optional[str]:
    """Why ``backend`` (at ``tier``) cannot apply the request's where-filters; None when
    it can."""
    can = SUPPORTED.get(backend, frozenset()) - NOT_ON_TIER.get((backend, tier or ""),
                                                                frozenset())
    label = backend if tier is None else f"{backend}/{tier}"
    for name, option in OPTIONS.items():
        if getattr(filters, name) is not None and name in NOT_ON_TIER.get((backend, tier or ""),
                                                                          frozenset()):
            return (f"{label} cannot filter by {option}: without BTF no task's namespaces or"
                    " children can be read (use another --ebpf-attach)")
        if getattr(filters, name) is not None and name not in can:
            others = ", ".join(sorted(b for b, opts in SUPPORTED.items() if name in opts))
            return f"{label} cannot filter by {option} (only {others} can)"
    return None
