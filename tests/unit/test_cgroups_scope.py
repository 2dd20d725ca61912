"""cgroup ids and paths, the where-filters' resolution and refusals, the ftrace origin
proof, and the CONTAINER column: pure logic over directories and records made here."""

from __future__ import annotations

import os
import secrets
from typing import Iterator, List, Optional

import attrs
import pytest

from hybridtrace.backends.ftrace.origin_proof import (
    NOTED_EVENTS,
    ChangeLedger,
    OriginFiller,
    TaskReading,
)
from hybridtrace.backends.ftrace.threads import TICK_NS
from hybridtrace.backends.ftrace.trace_record import ENTER, EXIT, FIELDS, TraceLine
from hybridtrace.cgroups import CgroupTree, cgroup2_mounts, cgroup2_root, proc_cgroup
from hybridtrace.errors import RequestError
from hybridtrace.events import Event, ExecEvent, OpenEvent, fill_in
from hybridtrace.output.columns import ExecFormat, OpenFormat
from hybridtrace.request import Filters
from hybridtrace.scope import find_container, refusal, resolve

CID = secrets.token_hex(32)

# /proc/self/mountinfo's cgroup lines on this machine kind (hybrid: v1 controllers, v2
# at unified), and on a pure-v2 host; a mount point with a space is escaped as \040.
HYBRID = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
PURE_V2 = "29 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"
# Inside a container with its own cgroup namespace mounted from the host's view.
NESTED = ("1201 1190 0:26 /system.slice/docker-x.scope /sys/fs/cgroup\\040v2 ro - cgroup2"
          " cgroup2 rw\n")


def test_cgroup2_mounts() -> None:
    assert cgroup2_mounts(HYBRID) == [("/sys/fs/cgroup/unified", "/")]
    assert cgroup2_root(PURE_V2) == ("/sys/fs/cgroup", "/")
    assert cgroup2_root(NESTED) == ("/sys/fs/cgroup v2", "/system.slice/docker-x.scope")
    assert cgroup2_root("") is None


def test_proc_cgroup_line() -> None:
    assert proc_cgroup(b"9:name=systemd:/\n0::/user.slice/a b\n") == b"/user.slice/a b"
    assert proc_cgroup(b"4:memory:/x\n") is None


@pytest.fixture
def tree_dir(tmp_path: os.PathLike[str]) -> Iterator[str]:
    """A directory tree shaped like a cgroup hierarchy: ids are inodes, as in cgroupfs."""
    top = os.fspath(tmp_path)
    for rel in ("system.slice", f"system.slice/docker-{CID}.scope", "docker",
                f"docker/{CID}", f"docker/{CID[:12]}ffff" + "0" * 48):
        os.mkdir(os.path.join(top, rel))
    yield top


def test_tree_ids_and_paths(tree_dir: str) -> None:
    tree = CgroupTree(tree_dir)
    inode = os.stat(os.path.join(tree_dir, "docker", CID)).st_ino
    assert tree.path_of(inode, 0) == f"/docker/{CID}".encode()
    assert tree.id_of(f"/docker/{CID}".encode()) == inode
    assert tree.path_of(os.stat(tree_dir).st_ino) == b"/"
    assert tree.id_of(b"/no/such") is None


def test_a_removed_cgroup_is_none_not_a_neighbour(tree_dir: str) -> None:
    clock = [100]
    tree = CgroupTree(tree_dir, clock=lambda: clock[0])
    gone = os.path.join(tree_dir, "system.slice", "gone")
    os.mkdir(gone)
    gone_id = os.stat(gone).st_ino
    tree.rewalk()
    os.rmdir(gone)
    # Known before it went: the path it had (ids are never reused).
    assert tree.path_of(gone_id, 50) == b"/system.slice/gone"
    fresh = CgroupTree(tree_dir, clock=lambda: clock[0])
    assert fresh.path_of(gone_id, 50) is None  # the walk came after the record: gone


def test_tree_under_a_cgroup_namespace_root(tree_dir: str) -> None:
    tree = CgroupTree(tree_dir, "/kubepods/pod1")
    inode = os.stat(os.path.join(tree_dir, "docker")).st_ino
    assert tree.path_of(inode, 0) == b"/kubepods/pod1/docker"
    assert tree.id_of(b"/kubepods/pod1/docker") == inode
    assert tree.id_of(b"/elsewhere/docker") is None


def test_resolve_cgroup_both_spellings(tree_dir: str) -> None:
    tree = CgroupTree(tree_dir)
    want = os.stat(os.path.join(tree_dir, "system.slice")).st_ino
    for spelling in (os.path.join(tree_dir, "system.slice"), "/system.slice", "system.slice"):
        scope = resolve(Filters(cgroup=spelling), tree)
        assert [(r.path, r.id) for r in scope.roots] == [(b"/system.slice", want)]
        assert scope.holds(b"/system.slice/x.service") and scope.holds(b"/system.slice")
        assert not scope.holds(b"/system.slicex") and not scope.holds(None)
    with pytest.raises(RequestError, match="--cgroup: no cgroup"):
        resolve(Filters(cgroup="/nope"), tree)
    with pytest.raises(RequestError, match="no cgroup v2"):
        resolve(Filters(cgroup="/"), CgroupTree(None))


def test_find_container_by_prefix(tree_dir: str) -> None:
    tree = CgroupTree(tree_dir)
    # docker-CID.scope and docker/CID name the same id: one container, the shorter path.
    ref = find_container(tree, CID)
    assert ref.id == CID and ref.cgroup in (f"/docker/{CID}", f"/system.slice/docker-{CID}.scope")
    with pytest.raises(RequestError, match="matches 2 containers"):
        find_container(tree, CID[:12])  # the look-alike shares 12 digits
    with pytest.raises(RequestError, match="no running container"):
        find_container(tree, "f" * 64 if not CID.startswith("f") else "0" * 64)
    scope = resolve(Filters(container=CID), tree)
    assert scope.container is not None and scope.container.id == CID
    with pytest.raises(RequestError, match="container must be"):
        Filters(container="not-hex")


@pytest.mark.parametrize("backend, tier, filters, refused", [
    ("ebpf-core", "tp_btf", Filters(cgroup="/", container="ab", mntns=1, descendants_of=1),
     None),
    ("ebpf-core", "raw_tp", Filters(cgroup="/"), None),
    ("ebpf-core", "raw_tp", Filters(mntns=1), "--mntns: without BTF"),
    ("ebpf-core", "raw_tp", Filters(descendants_of=1), "--descendants-of: without BTF"),
    ("ftrace", "uprobe", Filters(descendants_of=1), None),
    ("ftrace", "uprobe", Filters(container="ab"), "ftrace/uprobe cannot filter by --container"),
    ("ftrace", "tracepoint", Filters(mntns=1),
     "cannot filter by --mntns (only ebpf-bcc, ebpf-core can)"),
    ("ebpf-bcc", None, Filters(cgroup="/", container="ab", mntns=1, cgroupmap="/p",
                               mntnsmap="/q"), None),
    ("ebpf-bcc", None, Filters(descendants_of=1), None),
    ("ebpf-bcc", None, Filters(uid=0), None),
])
def test_refusals(backend: str, tier: Optional[str], filters: Filters,
                  refused: Optional[str]) -> None:
    why = refusal(backend, tier, filters)
    assert (why is None) == (refused is None)
    if refused is not None:
        assert why is not None and refused in why


# ------------------------------------------------------------------ ftrace's proof

BOOT = 5 * 10**9  # CLOCK_BOOTTIME - CLOCK_MONOTONIC
TID = 4242


def _reading(start_ns: int, read_ns: int, cgroup: bytes = f"/docker/{CID}".encode()
             ) -> TaskReading:
    return TaskReading((start_ns + BOOT) // TICK_NS, read_ns, 11, 22, cgroup, (TID, 1),
                       (TID, 1))


def _filler(reading: TaskReading, ledger: ChangeLedger) -> OriginFiller:
    class NoIds(CgroupTree):
        def id_of(self, path: bytes) -> Optional[int]:
            return 777

    return OriginFiller(BOOT, ledger, True, NoIds(None), read=lambda tid: reading)


def _open_at(ts: int) -> OpenEvent:
    return OpenEvent(ts, TID, TID, 0, b"sh", b"/x", 0, 0, 3, None)


def _migration(ts: int, tid: int = TID) -> TraceLine:
    return TraceLine(b"runc", 1, 0, ts, "cgroup_attach_task", {"pid": tid}, b"", FIELDS)


def _fill(filler: OriginFiller, events: List[Event]) -> List[Event]:
    """Every record up to 10 s has been read (the reader's ``complete``)."""
    return filler.fill(events, 10**10) + filler.flush()


def test_origin_of_a_steady_task() -> None:
    ledger = ChangeLedger()
    [ev] = _fill(_filler(_reading(0, 3 * 10**9), ledger), [_open_at(2 * 10**9)])
    assert isinstance(ev, OpenEvent)
    assert (ev.cgroup, ev.container_id, ev.cgroup_id) == (f"/docker/{CID}".encode(), CID, 777)
    assert (ev.mntns, ev.pidns, ev.ns_pid, ev.ns_tid) == (22, 11, 1, 1)


def test_fill_in_sets_the_origin_fields_as_evolve_would() -> None:
    fields = {"cgroup": b"/a", "cgroup_id": 5, "container_id": None, "mntns": 9, "pidns": 8,
              "ns_pid": 1, "ns_tid": 2}
    want = attrs.evolve(_open_at(7), **fields)  # type: ignore[arg-type]
    assert fill_in(_open_at(7), fields) == want
    with pytest.raises(AttributeError):
        fill_in(_open_at(7), {"no_such_field": 1})


def test_a_migration_between_record_and_reading_leaves_cgroup_none() -> None:
    ledger = ChangeLedger()
    assert ledger.feed(_migration(int(2.5 * 10**9)))
    [ev] = _fill(_filler(_reading(0, 3 * 10**9), ledger), [_open_at(2 * 10**9)])
    assert isinstance(ev, OpenEvent)
    assert ev.cgroup is None and ev.container_id is None and ev.cgroup_id is None
    assert ev.mntns is None  # changed-or-not is one question for both
    assert (ev.pidns, ev.ns_pid) == (11, 1)  # a task's pid namespace never changes
    # Another task's migration, or one after the reading, changes nothing.
    other = ChangeLedger()
    other.feed(_migration(int(2.5 * 10**9), TID + 1))
    other.feed(_migration(4 * 10**9))
    [ok] = _fill(_filler(_reading(0, 3 * 10**9), other), [_open_at(2 * 10**9)])
    assert isinstance(ok, OpenEvent) and ok.container_id == CID


def test_setns_and_lost_records_leave_mntns_none() -> None:
    ledger = ChangeLedger()
    ledger.feed(TraceLine(b"sh", TID, 0, int(2.5 * 10**9), "sys_setns", {"ret": 0}, b"", EXIT))
    [ev] = _fill(_filler(_reading(0, 3 * 10**9), ledger), [_open_at(2 * 10**9)])
    assert isinstance(ev, OpenEvent) and ev.mntns is None and ev.cgroup is None
    gap = ChangeLedger()
    gap.gap(0, 10**10)
    [ev] = _fill(_filler(_reading(0, 3 * 10**9), gap), [_open_at(2 * 10**9)])
    assert isinstance(ev, OpenEvent) and ev.mntns is None and ev.pidns == 11


def test_a_task_that_started_after_the_record_did_not_write_it() -> None:
    # The id was reused: the task living under it now is not the one that wrote.
    [ev] = _fill(_filler(_reading(2 * 10**9, 3 * 10**9), ChangeLedger()),
                 [_open_at(int(1.5 * 10**9))])
    assert isinstance(ev, OpenEvent)
    assert (ev.cgroup_id, ev.mntns, ev.pidns, ev.ns_pid) == (None, None, None, None)


# ------------------------------------------------------------------ the column


def test_container_column() -> None:
    ev = ExecEvent(1, 10, 10, 1, 0, b"sh", b"/bin/sh", (b"sh",), 0,
                   cgroup=f"/docker/{CID}".encode(), container_id=CID)
    fmt = ExecFormat(show_container=True)
    assert fmt.header().startswith("CONTAINER    PCOMM")
    assert fmt.line(ev).startswith(f"{CID[:12]} sh ")
    assert ExecFormat(show_container=True).line(
        ExecEvent(1, 10, 10, 1, 0, b"sh", b"/bin/sh", (b"sh",), 0, cgroup=b"/")).startswith(
        "-            sh")
    opened = OpenEvent(1, 10, 10, 0, b"cat", b"/x", 0, 0, 3, None)
    line = OpenFormat(show_container=True).line(opened, opened.path)
    assert line.startswith("?            10 ")  # cgroup unknown: "?", never "-"
    assert OpenFormat(show_container=True).header().startswith("CONTAINER    PID")


def test_the_session_skips_the_ledger_only_for_records_it_ignores() -> None:
    """stream.py calls ChangeLedger.feed only for NOTED_EVENTS: every other name must
    leave the ledger as it was, and every noted one must mark its task."""
    names = set(NOTED_EVENTS) | {
        "sys_setns", "sys_unshare", "cgroup_attach_task", "cgroup_transfer_tasks",
        "sched_process_exit", "sys_openat", "sys_close", "sched_process_fork",
        "sched_process_exec", "task_rename", "openat", "sys_execve"}
    for name in sorted(names):
        for style in (ENTER, EXIT, FIELDS):
            ledger = ChangeLedger()
            line = TraceLine(b"x", TID, 0, 5, name, {"pid": TID}, b"", style)
            ledger.feed(line)
            marked = ledger.changed(TID, 0, 10)
            if name not in NOTED_EVENTS:
                assert not marked, (name, style)
            elif style == EXIT or not name.startswith("sys_"):
                assert marked, (name, style)
