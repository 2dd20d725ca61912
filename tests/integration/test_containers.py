"""Where events came from, against ground truth on this kernel.

A workload is put in a fresh cgroup v2 with a container-shaped name (docker's
cgroupfs layout: .../docker/<64 hex>; its look-alike in podman's systemd one,
.../machine.slice/libpod-<64 hex>.scope; no image registry here, so no real
runtime) and in a new pid and mount namespace (unshare --fork --pid
--mount-proc). Its events must carry that cgroup's id (the directory's inode,
and the id name_to_handle_at gives), the container id, the namespace inodes of
/proc/PID/ns/*, and the pids of /proc/PID/status NSpid; and the where-filters
must select exactly that workload, with a look-alike in a sibling cgroup (or
outside the process tree, or in another mount namespace) running the same
commands at the same time. Every cgroup made here is removed.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from typing import Iterator, List, Sequence

import attrs
import pytest

import hybridtrace
from hybridtrace.cgroups import cgroup2_root
from hybridtrace.events import Event, ExecEvent, OpenEvent
from tests.conftest import TIME_SCALE
from tests.integration.conftest import open_where
from tests.integration.pinned_map import PinnedMap, bpf_directory
from tests.integration.polling import collect

CID = secrets.token_hex(32)  # a container id of docker's shape, fresh for each run
OTHER_CID = secrets.token_hex(32)


def _release(fifo: str) -> None:
    """Let a workload blocked reading ``fifo`` go on."""
    with open(fifo, "w") as f:
        f.write("go\n")


@contextlib.contextmanager
def _released_at_end(proc: subprocess.Popen[bytes], fifo: str) -> Iterator[None]:
    """However the test ends, a workload still waiting on ``fifo`` is let go and reaped."""
    try:
        yield
    finally:
        if proc.poll() is None:
            _release(fifo)
            proc.wait(timeout=10)


def _says(path: str, word: str) -> bool:
    """Whether the file at ``path`` exists and holds ``word``."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return word in f.read()
    except FileNotFoundError:
        return False


def _cgroup_handle_id(path: str) -> int:
    """The cgroup id the kernel's file handle for ``path`` carries (kernfs: the node id)."""

    class FileHandle(ctypes.Structure):
        _fields_ = [("handle_bytes", ctypes.c_uint), ("handle_type", ctypes.c_int),
                    ("f_handle", ctypes.c_ubyte * 8)]

    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    handle = FileHandle(8, 0)
    mount_id = ctypes.c_int()
    if libc.name_to_handle_at(-100, os.fsencode(path), ctypes.byref(handle),
                              ctypes.byref(mount_id), 0) != 0:
        raise OSError(ctypes.get_errno(), f"name_to_handle_at {path}")
    assert handle.handle_bytes == 8
    return int.from_bytes(bytes(handle.f_handle), "little")


@attrs.frozen
class Cgroups:
    mount: str
    top: str  # our test cgroup, a child of the v2 root
    workload: str  # top/docker/CID
    sibling: str  # top/machine.slice/libpod-OTHER_CID.scope

    def path(self, directory: str) -> str:
        """As /proc/PID/cgroup shows it."""
        return "/" + os.path.relpath(directory, self.mount)


@pytest.fixture(scope="module")
def cgroups() -> Iterator[Cgroups]:
    found = cgroup2_root()
    if found is None or found[1] != "/":
        pytest.skip("no cgroup v2 hierarchy mounted at its root here")
    mount = found[0]
    top = os.path.join(mount, f"hybridtrace_test_{os.getpid()}")
    made = [top, os.path.join(top, "docker"), os.path.join(top, "docker", CID),
            os.path.join(top, "machine.slice"),
            os.path.join(top, "machine.slice", f"libpod-{OTHER_CID}.scope")]
    for directory in made:
        os.mkdir(directory)
    try:
        yield Cgroups(mount, top, made[2], made[4])
    finally:
        for directory in reversed(made):
            for _ in range(50):  # a task that just exited may still be counted a moment
                try:
                    os.rmdir(directory)
                    break
                except OSError:
                    time.sleep(0.1)
        assert not os.path.exists(top), f"test cgroup {top} left behind"


@pytest.fixture
def scratch() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="ht-containers-") as where:
        yield where


def _containerized(directory: str, inner: str) -> List[str]:
    """A shell that joins ``directory``, then runs ``inner`` as pid 1 of a new pid and
    mount namespace."""
    return ["/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"',
            os.path.join(directory, "cgroup.procs"),
            "unshare", "--fork", "--pid", "--mount-proc", "/bin/sh", "-c", inner]


def _mine(events: Sequence[Event], marker: bytes) -> List[OpenEvent]:
    return [e for e in events if isinstance(e, OpenEvent) and e.path is not None
            and marker in e.path]


def _is_cat(event: Event) -> bool:
    """An exec of cat in the workload's container."""
    return (isinstance(event, ExecEvent) and event.container_id == CID
            and event.filename is not None and event.filename.endswith(b"/cat"))


def _status_ids(pid: int, name: str) -> List[int]:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(name + ":"):
                return [int(x) for x in line.split()[1:]]
    raise AssertionError(f"no {name} in /proc/{pid}/status")




def _new_mntns(pid: int) -> int:
    """The mount namespace ``pid`` moves to (unshare --mount), once it has."""
    for _ in range(100):  # until unshare has made the namespace and exec'd sh
        inode = os.stat(f"/proc/{pid}/ns/mnt").st_ino
        if inode != os.stat("/proc/self/ns/mnt").st_ino:
            return inode
        time.sleep(0.02)
    raise AssertionError(f"process {pid} never left our mount namespace")


def _wait_all(procs: Sequence[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        proc.wait(timeout=30 * TIME_SCALE)


# ----------------------------------------------------------------------- origin fields


def test_exec_and_open_origin_against_proc(cgroups: Cgroups, where_backend: str,
                                           scratch: str) -> None:
    marker = os.path.join(scratch, "marker")
    nsfile = os.path.join(scratch, "nspid")
    release = os.path.join(scratch, "release")
    open(marker, "w").close()
    os.mkfifo(release)
    # pid 1 (sh) stays while we read its /proc; the child records its own pid there,
    # then execs cat, which keeps that pid, and opens the marker.
    inner = f"/bin/sh -c 'echo $$ > {nsfile}; exec cat {marker}'; read x < {release}"
    with open_where("exec", where_backend) as execs, open_where("open", where_backend) as opens:
        proc = subprocess.Popen(_containerized(cgroups.workload, inner))
        try:
            seen = collect(execs, lambda ev: any(
                _is_cat(e) for e in ev),
                timeout=10 * TIME_SCALE, strict=True)
            sh = next(e for e in seen if isinstance(e, ExecEvent) and e.ns_pid == 1
                      and e.comm == b"sh" and e.cgroup_id is not None
                      and e.container_id == CID)
            # Ground truth from the living pid 1 of the namespace.
            truth_mnt = os.stat(f"/proc/{sh.pid}/ns/mnt").st_ino
            truth_pid = os.stat(f"/proc/{sh.pid}/ns/pid").st_ino
            nspid = _status_ids(sh.pid, "NSpid")
            with open(f"/proc/{sh.pid}/cgroup") as cg:
                truth_path = next(line[3:].strip() for line in cg if line.startswith("0::"))
            opened = collect(opens, lambda ev: bool(_mine(ev, b"marker")),
                             timeout=10 * TIME_SCALE, strict=True)
        finally:
            _release(release)
            _wait_all([proc])
    truth_id = os.stat(cgroups.workload).st_ino
    assert truth_id == _cgroup_handle_id(cgroups.workload)
    assert truth_path == cgroups.path(cgroups.workload)
    assert nspid == [sh.pid, 1]
    with open(nsfile) as f:
        cat_nspid = int(f.read())
    cat = next(e for e in seen if _is_cat(e))
    assert isinstance(cat, ExecEvent)
    cat_open = _mine(opened, b"marker")[0]
    for event in (sh, cat, cat_open):
        assert event.cgroup_id == truth_id, event
        assert event.cgroup == truth_path.encode(), event
        assert event.container_id == CID, event
        assert event.mntns == truth_mnt, event
        assert event.pidns == truth_pid, event
    assert (sh.ns_pid, sh.ns_tid, sh.ns_ppid) == (1, 1, 0)  # its parent is outside
    assert sh.pid != 1 and sh.ppid is not None and sh.ppid > 1
    assert (cat.ns_pid, cat.ns_tid, cat.ns_ppid) == (cat_nspid, cat_nspid, 1)
    assert cat.ppid == sh.pid
    assert (cat_open.pid, cat_open.ns_pid, cat_open.ns_tid) == (cat.pid, cat_nspid, cat_nspid)
    # The tracer's own events: the host's namespaces, pids the same in both views.
    host_mnt, host_pid = os.stat("/proc/self/ns/mnt").st_ino, os.stat("/proc/self/ns/pid").st_ino
    assert truth_mnt != host_mnt and truth_pid != host_pid


def test_host_process_origin(where_backend: str, scratch: str) -> None:
    marker = os.path.join(scratch, "host-marker")
    open(marker, "w").close()
    with open_where("open", where_backend) as opens:
        proc = subprocess.Popen(["/bin/cat", marker], stdout=subprocess.DEVNULL)
        _wait_all([proc])
        got = _mine(collect(opens, lambda ev: bool(_mine(ev, b"host-marker")),
                            timeout=10 * TIME_SCALE, strict=True), b"host-marker")[0]
    with open("/proc/self/cgroup") as cg:
        own = next(line[3:].strip() for line in cg if line.startswith("0::"))
    assert got.pid == proc.pid and (got.ns_pid, got.ns_tid) == (proc.pid, proc.pid)
    assert got.mntns == os.stat("/proc/self/ns/mnt").st_ino
    assert got.pidns == os.stat("/proc/self/ns/pid").st_ino
    assert got.cgroup == own.encode()  # cat stays in the cgroup of its parent, us
    found = cgroup2_root()
    assert found is not None
    assert got.cgroup_id == os.stat(os.path.join(found[0], own.lstrip("/"))).st_ino


# ----------------------------------------------------------------------------- filters


def _workload_and_sibling(cgroups: Cgroups, scratch: str, tag: str
                          ) -> List[subprocess.Popen[bytes]]:
    procs = []
    for directory, name in ((cgroups.workload, "in"), (cgroups.sibling, "out")):
        marker = os.path.join(scratch, f"{tag}-{name}")
        open(marker, "w").close()
        procs.append(subprocess.Popen(_containerized(directory, f"cat {marker}; cat {marker}")))
    return procs


@pytest.mark.parametrize("how", ["cgroup-dir", "cgroup-path", "container", "container-prefix"])
def test_cgroup_and_container_filters_select_exactly_the_workload(
        cgroups: Cgroups, where_backend: str, scratch: str, how: str) -> None:
    where = {"cgroup-dir": {"cgroup": cgroups.workload},
             "cgroup-path": {"cgroup": cgroups.path(cgroups.workload)},
             "container": {"container": CID},
             "container-prefix": {"container": CID[:10]}}[how]
    with open_where("open", where_backend, **where) as opens:
        procs = _workload_and_sibling(cgroups, scratch, how)
        _wait_all(procs)
        events = collect(opens, lambda ev: len(_mine(ev, f"{how}-in".encode())) >= 2,
                         timeout=10 * TIME_SCALE, strict=True)
        events += opens.poll(0.5 * TIME_SCALE)
    ours = [e for e in events if isinstance(e, OpenEvent)]
    assert len(_mine(ours, f"{how}-in".encode())) == 2
    assert not _mine(ours, f"{how}-out".encode())
    # Everything shown is in the workload's cgroup: sh, unshare, cat and their loads.
    assert ours and all(e.cgroup_id == os.stat(cgroups.workload).st_ino for e in ours)
    assert all(e.container_id == CID for e in ours)


def test_exec_container_filter(cgroups: Cgroups, where_backend: str, scratch: str) -> None:
    with open_where("exec", where_backend, container=CID) as execs:
        procs = _workload_and_sibling(cgroups, scratch, "exec")
        _wait_all(procs)
        events = collect(execs, lambda ev: sum(1 for e in ev if _is_cat(e)) >= 2,
                         timeout=10 * TIME_SCALE, strict=True)
        events += execs.poll(0.5 * TIME_SCALE)
    execs_seen = [e for e in events if isinstance(e, ExecEvent)]
    # sh (the inner one), unshare, sh as pid 1, cat twice: all in the container, no other.
    assert sum(1 for e in execs_seen if _is_cat(e)) == 2
    assert all(e.container_id == CID for e in execs_seen)
    assert {e.argv[0] for e in execs_seen if e.argv} >= {b"unshare", b"cat"}


# ------------------------------------------------- BCC's --cgroupmap and --mntnsmap


@pytest.fixture
def pin_dir() -> Iterator[str]:
    with bpf_directory() as where:
        yield where


def test_cgroupmap_follows_the_maps_contents(cgroups: Cgroups, where_backend: str,
                                             scratch: str, pin_dir: str) -> None:
    """Only cgroups whose id is in the pinned map; a cgroup added while tracing is traced
    from then on, as with BCC's --cgroupmap."""
    cgmap = PinnedMap(os.path.join(pin_dir, f"ht_test_{os.getpid()}_cg"))
    try:
        cgmap.add(os.stat(cgroups.workload).st_ino)
        with open_where("open", where_backend, cgroupmap=cgmap.path) as opens:
            _wait_all(_workload_and_sibling(cgroups, scratch, "map1"))
            first = collect(opens, lambda ev: len(_mine(ev, b"map1-in")) >= 2,
                            timeout=10 * TIME_SCALE, strict=True)
            first += opens.poll(0.5 * TIME_SCALE)
            cgmap.add(os.stat(cgroups.sibling).st_ino)
            _wait_all(_workload_and_sibling(cgroups, scratch, "map2"))
            second = collect(opens, lambda ev: len(_mine(ev, b"map2-out")) >= 2,
                             timeout=10 * TIME_SCALE, strict=True)
    finally:
        cgmap.close()
    assert len(_mine(first, b"map1-in")) == 2 and not _mine(first, b"map1-out")
    assert all(e.cgroup_id == os.stat(cgroups.workload).st_ino
               for e in first if isinstance(e, OpenEvent))
    assert len(_mine(second, b"map2-out")) == 2
    # The look-alike's cgroup is podman's shape: its events name that container.
    assert all(e.container_id == OTHER_CID and e.cgroup_id == os.stat(cgroups.sibling).st_ino
               for e in _mine(second, b"map2-out"))


@pytest.mark.parametrize("shape", ["missing", "4-byte keys", "array"])
def test_a_pin_that_cannot_serve_is_one_line_exit_2(shape: str, pin_dir: str) -> None:
    path = os.path.join(pin_dir, f"ht_test_{os.getpid()}_bad")
    # An array's keys are 4 bytes (the kernel takes no other).
    pinned = None if shape == "missing" else PinnedMap(
        path, key_size=4, map_type=2 if shape == "array" else 1)
    try:
        result = subprocess.run([sys.executable, "-m", "hybridtrace", "opensnoop",
                                 "--cgroupmap", path, "-d", "1"], capture_output=True,
                                text=True, timeout=60)
    finally:
        if pinned is not None:
            pinned.close()
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "--cgroupmap" in result.stderr, result.stderr
    assert ("no such file" if shape == "missing" else "hash map with 8-byte keys") \
        in result.stderr


def test_descendants_of_follows_a_tree_started_after_tracing_began(
        where_backend: str, scratch: str) -> None:
    release = os.path.join(scratch, "go")
    os.mkfifo(release)
    marker = os.path.join(scratch, "tree")
    open(marker, "w").close()
    # The root waits; once tracing runs it starts a child, a grandchild and a thread-free
    # exec chain. A look-alike outside the tree opens the same file at the same time.
    root = subprocess.Popen(["/bin/sh", "-c", f"read x < {release}; cat {marker};"
                             f" /bin/sh -c 'cat {marker}; /bin/sh -c \"cat {marker}\"'"])
    with _released_at_end(root, release), open_where("open", where_backend,
                                                     descendants_of=root.pid) as opens:
        outsider = subprocess.Popen(["/bin/sh", "-c", f"cat {marker}; cat {marker}"])
        _release(release)
        _wait_all([root, outsider])
        events = collect(opens, lambda ev: len(_mine(ev, b"/tree")) >= 3,
                         timeout=10 * TIME_SCALE, strict=True)
        events += opens.poll(0.5 * TIME_SCALE)
    mine = _mine(events, b"/tree")
    assert len(mine) == 3
    assert all(e.pid != outsider.pid for e in events if isinstance(e, OpenEvent))
    assert len({e.pid for e in mine}) == 3  # three cats: child, grandchild, great-grandchild


@pytest.mark.parametrize("how", ["mntns", "mntnsmap"])
def test_mntns_filters(where_backend: str, scratch: str, pin_dir: str, how: str) -> None:
    """--mntns INODE, and BCC's --mntnsmap with that inode in the pinned map."""
    release = os.path.join(scratch, "go")
    os.mkfifo(release)
    marker = os.path.join(scratch, "mnt-marker")
    open(marker, "w").close()
    inside = subprocess.Popen(["unshare", "--mount", "/bin/sh", "-c",
                               f"read x < {release}; cat {marker}"])
    nsmap = PinnedMap(os.path.join(pin_dir, f"ht_test_{os.getpid()}_mnt"), value_size=4)
    try:
        with _released_at_end(inside, release):
            mntns = _new_mntns(inside.pid)
            nsmap.add(mntns)
            where = {"mntns": mntns} if how == "mntns" else {"mntnsmap": nsmap.path}
            with open_where("open", where_backend, **where) as opens:
                outsider = subprocess.Popen(["/bin/cat", marker])
                _release(release)
                _wait_all([inside, outsider])
                events = collect(opens, lambda ev: bool(_mine(ev, b"mnt-marker")),
                                 timeout=10 * TIME_SCALE, strict=True)
                events += opens.poll(0.5 * TIME_SCALE)
    finally:
        nsmap.close()
    mine = _mine(events, b"mnt-marker")
    assert len(mine) == 1 and mine[0].pid != outsider.pid
    assert all(e.mntns == mntns for e in events if isinstance(e, OpenEvent))


# ------------------------------------------------------------------------------ ftrace
# Records name a thread only: the origin comes from /proc, believed only where
# nothing (an exit, a setns/unshare, a cgroup migration) could have changed it
# between the record and the reading; otherwise None.

def _ns_init(pid: int) -> int:
    """The child unshare --fork made: pid 1 of the new namespace (host pid)."""
    for _ in range(int(500 * TIME_SCALE)):
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            children = [int(x) for x in f.read().split()]
        if children and os.readlink(f"/proc/{pid}/exe").endswith("/unshare"):
            return children[0]
        time.sleep(0.01)
    raise AssertionError("unshare made no child")


def _by(events: Sequence[Event], pid: int) -> List[OpenEvent]:
    return [e for e in events if isinstance(e, OpenEvent) and e.pid == pid]


def test_ftrace_origin_right_or_none_across_a_migration(
        cgroups: Cgroups, ftrace_tier: str, scratch: str) -> None:
    marker = os.path.join(scratch, "loop")
    open(marker, "w").close()
    rounds = int(40 * TIME_SCALE)
    # It waits on the fifo at the end, so that it still lives when a slow reader gets
    # to its last records (a task gone before its records are read has no /proc).
    release = os.path.join(scratch, "go")
    os.mkfifo(release)
    inner = (f"for i in $(seq {rounds}); do read x < {marker}; sleep 0.05; done;"
             f" read x < {release}")
    with hybridtrace.trace("open", backend="ftrace", tier=ftrace_tier) as opens:
        proc = subprocess.Popen(_containerized(cgroups.workload, inner))
        with _released_at_end(proc, release):
            ns_init = _ns_init(proc.pid)
            # By pid: the tracepoint tier has a path only while the file is still open.
            events = collect(opens, lambda ev: len(_by(ev, ns_init)) >= rounds // 3,
                             timeout=10 * TIME_SCALE, strict=True)
            truth_mnt = os.stat(f"/proc/{ns_init}/ns/mnt").st_ino
            truth_pid = os.stat(f"/proc/{ns_init}/ns/pid").st_ino
            # Another process moves it, as a container runtime or systemd would.
            before = time.monotonic_ns()
            subprocess.run(["/bin/sh", "-c",
                            f"echo {ns_init} > {cgroups.sibling}/cgroup.procs"], check=True)
            after = time.monotonic_ns()
            events += collect(opens, lambda ev: len(_by(events + ev, ns_init)) >= rounds,
                              timeout=30 * TIME_SCALE, strict=True)
    mine = _by(events, ns_init)
    assert len(mine) >= rounds
    early = [e for e in mine if e.timestamp_ns < before]
    late = [e for e in mine if e.timestamp_ns > after]
    assert early and late
    for event in mine:
        assert event.pid == ns_init and event.mntns in (None, truth_mnt), event
        assert event.pidns in (None, truth_pid) and event.ns_pid in (None, 1), event
    for group, directory, cid in ((early, cgroups.workload, CID),
                                  (late, cgroups.sibling, OTHER_CID)):
        for event in group:
            assert event.cgroup in (None, cgroups.path(directory).encode()), event
            assert event.cgroup_id in (None, os.stat(directory).st_ino), event
            assert event.container_id in (None, cid), event
        # A task that lives on is named, not left unknown, on each side of the move.
        assert any(e.cgroup is not None for e in group)
        assert any(e.container_id == cid and e.cgroup_id == os.stat(directory).st_ino
                   for e in group)
    assert any(e.pidns == truth_pid and e.ns_pid == 1 for e in mine)


def test_ftrace_descendants_of(ftrace_tier: str, scratch: str) -> None:
    release = os.path.join(scratch, "go")
    os.mkfifo(release)
    # Execs, whose filename every tier has (sched_process_exec), short-lived as they are.
    root = subprocess.Popen(["/bin/sh", "-c", f"read x < {release}; cat /dev/null;"
                             " /bin/sh -c 'cat /dev/null; /bin/sh -c \"cat /dev/null\"'"])
    with _released_at_end(root, release), hybridtrace.trace(
            "exec", backend="ftrace", tier=ftrace_tier, descendants_of=root.pid) as execs:
        outsider = subprocess.Popen(["/bin/sh", "-c", "cat /dev/null; cat /dev/null"])
        _release(release)
        _wait_all([root, outsider])
        events = collect(execs, lambda ev: len(_cats(ev)) >= 3,
                         timeout=10 * TIME_SCALE, strict=True)
        events += execs.poll(0.5 * TIME_SCALE)
    cats = _cats(events)
    assert len(cats) == 3 and len({e.pid for e in cats}) == 3
    assert not [e for e in events if isinstance(e, ExecEvent)
                and outsider.pid in (e.pid, e.ppid)]


def _cats(events: Sequence[Event]) -> List[ExecEvent]:
    return [e for e in events if isinstance(e, ExecEvent) and e.filename is not None
            and e.filename.endswith(b"/cat")]


@pytest.mark.parametrize("option", [["--cgroup", "/"], ["--mntns", "1"], ["--cgroupmap", "PIN"],
                                    ["--mntnsmap", "PIN"]])
def test_ftrace_refuses_what_it_cannot_filter(option: List[str], pin_dir: str) -> None:
    pinned = PinnedMap(os.path.join(pin_dir, f"ht_test_{os.getpid()}_refused"))
    try:
        result = subprocess.run([sys.executable, "-m", "hybridtrace", "opensnoop", "--backend",
                                 "ftrace", option[0], option[1].replace("PIN", pinned.path),
                                 "-d", "1"], capture_output=True, text=True, timeout=60)
    finally:
        pinned.close()
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and f"cannot filter by {option[0]}" in result.stderr


def test_cli_container_filter_and_column(cgroups: Cgroups, attach: str, scratch: str) -> None:
    """execsnoop --container PREFIX --print-container: the column shows the short id, and
    only the workload's execs are printed (the look-alike's are not)."""
    cli = subprocess.Popen([sys.executable, "-m", "hybridtrace", "execsnoop", "--ebpf-attach",
                            attach, "--container", CID[:8], "--print-container", "-x",
                            "-d", str(4 * TIME_SCALE)], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.5 * TIME_SCALE)  # the start line comes once tracing runs; give it time
        _wait_all(_workload_and_sibling(cgroups, scratch, "cli"))
        out, err = cli.communicate(timeout=30 * TIME_SCALE)
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
    assert cli.returncode == 0, err
    header, *lines = out.splitlines()
    assert header.startswith("CONTAINER    PCOMM")
    assert lines and all(line.startswith(CID[:12] + " ") for line in lines), out
    cats = [line for line in lines if line.split()[1] == "cat"]
    assert len(cats) == 2 and all("cli-in" in line for line in cats)
    assert not any("cli-out" in line for line in lines)


def test_tracer_in_its_own_pid_namespace_shows_that_namespace_s_pids(
        attach: str, scratch: str) -> None:
    """hybridtrace started by unshare --pid --mount-proc (pid 1's child there): an exec in
    its namespace, or in one nested below it, carries the tracer's namespace's pid and
    ppid, one on the host none (null); opensnoop -p 1 takes that namespace's pid 1. No
    container runtime needed."""
    marker = os.path.join(scratch, "pidns-marker")
    open(marker, "w").close()
    out, started = os.path.join(scratch, "exec.json"), os.path.join(scratch, "started")
    go = os.path.join(scratch, "pidns-go")
    os.mkfifo(go)
    tracer = f"{sys.executable} -m hybridtrace execsnoop --ebpf-attach {attach} --json"
    opens = f"{sys.executable} -m hybridtrace opensnoop --ebpf-attach {attach} --json"
    # Three tracers: every exec, --ppid 1 (this namespace's pid 1: the shell below), and
    # the opens of -p 1 (that shell's own: ``read`` is a builtin, so it opens the file).
    inner = (f"{tracer} -d {6 * TIME_SCALE} > {out} 2> {out}.err & tracer=$!;"
             f" {tracer} --ppid 1 -d {6 * TIME_SCALE} > {out}.1 2> {out}.1.err & tracer1=$!;"
             f" {opens} -p 1 -d {6 * TIME_SCALE} > {out}.open 2> {out}.open.err & tracer2=$!;"
             # until the test sees all three tracing (waiting here would start processes,
             # each taking a pid of this namespace, whose first ones are to stay small)
             f" read g < {go}; read x < {marker};"
             f" /bin/sh -c 'cat {marker} > /dev/null; echo $$ > {marker}.pid' & wait $!;"
             # a namespace nested below the tracer's: sh (its pid 1) reads its own pid
             # and ppid as the tracer's namespace numbers them (that /proc), execs cat
             f" unshare --fork --pid /bin/sh -c 'read p c s pp r < /proc/self/stat;"
             f" echo $p $pp > {marker}.nested; exec cat {marker}' > /dev/null;"
             f" touch {started}; wait $tracer && wait $tracer1 && wait $tracer2")
    with contextlib.ExitStack() as stack:
        tracer = subprocess.Popen(["unshare", "--fork", "--kill-child", "--pid", "--mount-proc",
                                   "/bin/sh", "-c", inner], cwd=os.getcwd())
        stack.callback(lambda: tracer.poll() is None and tracer.kill())
        deadline = time.monotonic() + 40 * TIME_SCALE
        errs = [f"{out}.err", f"{out}.1.err", f"{out}.open.err"]
        while not all(_says(err, "tracing") for err in errs) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert tracer.poll() is None, "the tracers in the pid namespace ended early"
        _release(go)
        while not os.path.exists(started) and time.monotonic() < deadline:
            time.sleep(0.1)  # until the tracer runs and the inside exec is done
        assert os.path.exists(started), "the tracer in the pid namespace did not start"
        host = subprocess.run(["/bin/sh", "-c", f"cat {marker} > /dev/null; echo $$"],
                              capture_output=True, text=True, check=True)
        assert tracer.wait(timeout=60 * TIME_SCALE) == 0
    with open(out) as f:
        records = [json.loads(line) for line in f if line.startswith("{")]
    with open(f"{marker}.pid") as f:
        inside_sh = int(f.read())
    cats = [r for r in records if r["argv"] and r["argv"][-1] == marker]
    inside = [r for r in cats if r["ppid"] == inside_sh]
    outside = [r for r in cats if r["ns_ppid"] == int(host.stdout)]
    assert len(inside) == 1 and len(outside) == 1, cats
    assert inside_sh < 100 and inside[0]["pid"] == inside[0]["ns_pid"]
    assert (outside[0]["pid"], outside[0]["tid"], outside[0]["ppid"]) == (None, None, None)
    with open(f"{marker}.nested") as f:
        nested_pid, nested_ppid = (int(x) for x in f.read().split())
    below = [r for r in cats if r["ns_pid"] == 1]
    assert len(below) == 1, cats
    assert (below[0]["pid"], below[0]["tid"], below[0]["ppid"]) == (
        nested_pid, nested_pid, nested_ppid)
    assert below[0]["ns_ppid"] == 0 and below[0]["pidns"] != inside[0]["pidns"]
    # --ppid 1 took this namespace's pid 1 (not the host's init): its two children here.
    with open(f"{out}.1") as f:
        children = [json.loads(line) for line in f if line.startswith("{")]
    shown = {r["argv"][0] for r in children}
    assert {"/bin/sh", "unshare"} <= shown and "cat" not in shown, children
    assert all(r["ppid"] == 1 and r["pidns"] == inside[0]["pidns"] for r in children)
    # -p 1 took this namespace's pid 1: its own open of the marker, none of its children's
    # (cat's) nor the host's.
    with open(f"{out}.open") as f:
        opened = [json.loads(line) for line in f if line.startswith("{")]
    assert opened and all((r["pid"], r["tid"]) == (1, 1) for r in opened), opened
    assert [r["path"] for r in opened].count(marker) == 1, opened
