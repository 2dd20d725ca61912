"""Which container a cgroup path names, by the path shapes container runtimes use.

Pure: a path in, a ContainerRef or None out. Only shapes listed in
``vocabulary.CONTAINER_SCOPES`` and ``CONTAINER_PARENTS`` count; anything else
is no container (None), never a guess from a hex-looking name. The innermost
component that names a container wins: a container started inside another
(docker in a podman container) is the one its processes belong to, and
sub-cgroups a container makes for itself (podman's ``.../container``) still
belong to the container above them.
"""

from __future__ import annotations

import re
from typing import List, Optional, Pattern, Tuple, Union

import attrs

from hybridtrace.vocabulary import CONTAINER_ID, CONTAINER_PARENTS, CONTAINER_SCOPES

_SCOPES: List[Tuple[str, Pattern[str]]] = [
    (runtime, re.compile(pattern)) for runtime, pattern in CONTAINER_SCOPES]
_PARENTS: List[Tuple[str, Pattern[str]]] = [
    (runtime, re.compile(pattern)) for runtime, pattern in CONTAINER_PARENTS]
_BARE = re.compile(CONTAINER_ID)
# systemd escapes "-" in a slice name's own part as "_" and nests slices: the pod's
# component is "kubepods-besteffort-pod<uid>.slice"; its last dash part is "pod<uid>".
_SLICE = re.compile(r"(?:.*-)?(?P<leaf>[^-]+)\.slice")


@attrs.frozen(slots=True)
class ContainerRef:
    """A container a cgroup path names: the runtime's kind and its full id."""

    runtime: str  # "docker", "podman", "containerd", "cri-o", "kubernetes"
    id: str  # 64 lower-case hex digits
    cgroup: str  # the path up to and including the component that names it

    @property
    def short_id(self) -> str:
        """The first 12 digits, as `docker ps` and `podman ps` show an id."""
        return self.id[:12]


def _component(name: str, parent: Optional[str]) -> Optional[Tuple[str, str]]:
    """(runtime, id) when this one path component names a container."""
    for runtime, pattern in _SCOPES:
        match = pattern.fullmatch(name)
        if match:
            return runtime, match.group("id")
    if parent is not None and _BARE.fullmatch(name):
        slice_leaf = _SLICE.fullmatch(parent)
        parent_name = slice_leaf.group("leaf") if slice_leaf else parent
        for runtime, pattern in _PARENTS:
            if pattern.fullmatch(parent_name):
                return runtime, name
    return None


def parse(path: Union[str, bytes, None]) -> Optional[ContainerRef]:
    """The container a cgroup v2 path (as in /proc/PID/cgroup) names, or None."""
    if path is None:
        return None
    if isinstance(path, bytes):
        try:
            path = path.decode("ascii")
        except UnicodeDecodeError:
            return None  # no runtime's shape holds a byte above 0x7f
    parts = [p for p in path.split("/") if p]
    found: Optional[ContainerRef] = None
    for i, name in enumerate(parts):
        hit = _component(name, parts[i - 1] if i else None)
        if hit is not None:
            found = ContainerRef(hit[0], hit[1], "/" + "/".join(parts[:i + 1]))
    return found


def container_id(path: Union[str, bytes, None]) -> Optional[str]:
    ref = parse(path)
    return ref.id if ref is not None else None
