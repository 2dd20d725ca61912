"""One behavioural contract for every backend, through the public API.

Like psutil's per-platform contract tests: every backend that can run on this
kernel is held to the same event types and the same observable facts about
real processes this test spawns. Backends that cannot run here are skipped,
unless HYBRIDTRACE_REQUIRE_BACKENDS names them (CI), which turns the skip into
a failure.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import tempfile
import time
from typing import Callable, List, Optional, Sequence, Tuple, TypeVar, Union

import pytest

import hybridtrace
from hybridtrace.api import Session
from hybridtrace.capabilities import probe
from hybridtrace.capabilities.kernel import parse_version
from hybridtrace.cgroups import cgroup2_root
from hybridtrace.containers import container_id
from hybridtrace.events import Event, ExecEvent, LostEvent, OpenEvent, Source
from hybridtrace.request import ARG_SIZE, DEFAULT_MAX_ARGS
from hybridtrace.selector import decide
from hybridtrace.vocabulary import URING_HOW_NONE, VIA_IO_URING, VIA_SYSCALL, VIAS
from tests.conftest import require_backend
from tests.integration.conftest import mount_tracefs_for
from tests.integration.polling import collect, release
from tests.integration.uring_job import UringJob, io_uring_claim
from tools.groundtruth.workload import OpenOp

BACKENDS = ["ebpf-core/tracepoint", "ebpf-core/tp_btf", "ebpf-bcc", "ebpf-core/raw_tp",
            "ftrace/kprobe", "ftrace/eprobe", "ftrace/uprobe", "ftrace/tracepoint"]
# Backends whose strings are read in the kernel and must be exact; the others
# may fall back to /proc and may say "unknown" (None), but never be wrong.
EXACT = {"ebpf-core/tracepoint", "ebpf-core/tp_btf", "ebpf-bcc", "ebpf-core/raw_tp",
         "ftrace/kprobe", "ftrace/eprobe", "ftrace/uprobe"}
# Backends that cannot know the parent (raw_tp: no BTF, no task_struct layout): None.
NO_PPID = {"ebpf-core/raw_tp"}


def expected_ppid(backend: str) -> Optional[int]:
    return None if backend in NO_PPID else os.getpid()

HOSTILE_ARGS = [b"with space", b"quote\"'s", b"new\nline", b"\xff\xfe not utf-8", b"\x1b[31mred"]

E = TypeVar("E", bound=Event)


def open_backend(label: str, kind: str, **filters: object) -> Session:
    """The backend and tier ``label`` names (for ebpf-core the tier is its attach mode)."""
    backend, _, tier = label.partition("/")
    modes = {"tier": None, "ebpf_attach": None}
    modes["ebpf_attach" if backend == "ebpf-core" else "tier"] = tier or None
    if modes["ebpf_attach"]:
        mount_tracefs_for(tier)
    decision = decide(probe(), kind, backend, modes["tier"], modes["ebpf_attach"])
    if decision.chosen is None:
        require_backend(label, decision.failure())
    return hybridtrace.trace(kind, backend, **modes, **filters)  # type: ignore[arg-type]


def wait_for(session: Session, want: Callable[[Event], bool], timeout: float = 8.0) -> List[Event]:
    """Events up to and including the first one ``want`` accepts."""
    seen: List[Event] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        batch = session.poll(0.2)
        seen += batch
        if any(want(e) for e in batch):
            return seen
    raise AssertionError(f"event not seen within {timeout}s; saw {len(seen)} others")


def first(events: Sequence[Event], cls: type, want: Callable[[E], bool]) -> E:
    for event in events:
        if isinstance(event, cls) and want(event):  # type: ignore[arg-type]
            return event  # type: ignore[return-value]
    raise AssertionError("no matching event")


def check_types(event: Event) -> None:
    """Every backend emits the same types; None only for what it could not capture."""
    assert isinstance(event.timestamp_ns, int) and event.timestamp_ns > 0
    if isinstance(event, LostEvent):
        assert event.count is None or event.count > 0  # None: nobody could count them
        return
    # An io_uring open submitted by the SQPOLL thread was made by no thread of ours.
    assert isinstance(event.tid, int) or (isinstance(event, OpenEvent)
                                          and event.via == VIA_IO_URING and event.tid is None)
    # An open's or a failed exec's process may be unprovable (ftrace: a thread no record
    # tied to one): None, never the thread's id. A successful exec's is always known.
    assert isinstance(event.pid, int) or (event.pid is None and (
        isinstance(event, OpenEvent) or event.retval != 0))
    assert event.comm is None or isinstance(event.comm, bytes)
    if isinstance(event, ExecEvent):
        assert event.argv is None or all(isinstance(a, bytes) for a in event.argv)
        assert event.argv is None or event.argv_source is not None
        assert event.retval is None or isinstance(event.retval, int)
    else:
        assert isinstance(event, OpenEvent)
        assert event.path is None or isinstance(event.path, bytes)
        assert (event.fd is None) or (event.errno is None)
        assert event.via in VIAS
        assert event.via == VIA_SYSCALL or event.syscall is None  # io_uring: no syscall


# Backends whose programs ask the kernel for the cgroup id (bpf_get_current_cgroup_id,
# 4.18+): it is never unknown there.
CGROUP_FROM_KERNEL = {"ebpf-core/tracepoint", "ebpf-core/tp_btf", "ebpf-bcc", "ebpf-core/raw_tp"}


def check_origin(event: Union[ExecEvent, OpenEvent], backend: str, pid: int) -> None:
    """Where our child ``pid`` lives is where we live (same cgroup and namespaces): each
    origin field is that, or None where the backend could not know it."""
    with open("/proc/self/cgroup") as f:
        path = next((line[3:].strip() for line in f if line.startswith("0::")), None)
    found = cgroup2_root()
    if path is not None and found is not None and found[1] == "/":
        truth = os.stat(os.path.join(found[0], path.lstrip("/"))).st_ino
        assert event.cgroup_id in ((truth,) if backend in CGROUP_FROM_KERNEL
                                   else (None, truth)), event
        assert event.cgroup in (None, path.encode()), event
        assert event.container_id in (None, container_id(path)), event
    assert event.mntns in (None, os.stat("/proc/self/ns/mnt").st_ino), event
    assert event.pidns in (None, os.stat("/proc/self/ns/pid").st_ino), event
    assert event.ns_pid in (None, pid) and event.ns_tid in (None, pid), event
    if isinstance(event, ExecEvent):
        assert event.ns_ppid in (None, os.getpid()), event


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _spawn_sh(args: Sequence[bytes]) -> subprocess.Popen[bytes]:
    # sh stays alive a moment so /proc-based tiers can still read it.
    return subprocess.Popen([b"/bin/sh", b"-c", b"sleep 0.5", b"sh", *args])


def test_exec_with_hostile_argv(backend: str) -> None:
    with open_backend(backend, "exec") as session:
        child = _spawn_sh(HOSTILE_ARGS)
        events = wait_for(session, lambda e: isinstance(e, ExecEvent) and e.pid == child.pid)
        child.wait()
    for event in events:
        check_types(event)
    ev = first(events, ExecEvent, lambda e: e.pid == child.pid)
    assert ev.retval == 0
    check_origin(ev, backend, child.pid)
    assert ev.ppid == expected_ppid(backend)
    assert ev.uid == os.getuid()
    assert ev.comm == b"sh"
    assert ev.filename == b"/bin/sh"
    want = (b"/bin/sh", b"-c", b"sleep 0.5", b"sh", *HOSTILE_ARGS)
    if backend in EXACT:
        assert ev.argv == want
        assert not ev.argv_truncated
    else:
        assert ev.argv in (None, want)


def test_failed_exec_is_reported_with_errno(backend: str) -> None:
    missing = f"/nonexistent-{os.getpid()}-{time.monotonic_ns()}/prog".encode()
    with open_backend(backend, "exec") as session:
        with pytest.raises(FileNotFoundError):
            subprocess.Popen([missing, b"arg1"])
        # A failed exec leaves no new image: tiers without syscall-entry strings
        # can only say "unknown" (None) for its filename, never something else.
        def mine(e: Event) -> bool:
            return (isinstance(e, ExecEvent) and e.filename in (missing, None)
                    and e.retval == -2 and e.ppid == expected_ppid(backend)
                    and (backend not in NO_PPID or e.filename == missing))

        events = wait_for(session, mine)
    ev = first(events, ExecEvent, mine)
    check_types(ev)
    assert ev.retval == -2 and ev.failed
    assert ev.pid == ev.tid and ev.pid is not None  # the forked child, seen created
    assert ev.ppid == expected_ppid(backend)
    if backend in EXACT:
        assert ev.filename == missing
        assert ev.argv == (missing, b"arg1")
    else:
        assert ev.argv is None


THREAD_EXEC = (
    "import os, sys, threading\n"
    "tids = []\n"
    "def run():\n"
    "    tids.append(threading.get_native_id())\n"
    "    try:\n        os.execv(sys.argv[1], [sys.argv[1], 'x'])\n"
    "    except OSError:\n        pass\n"
    "t = threading.Thread(target=run)\nt.start()\nt.join()\n"
    "print(os.getpid(), tids[0], flush=True)\n"
)


def test_failed_exec_of_a_thread_names_its_process_never_the_thread(backend: str) -> None:
    # Ground truth (tools/groundtruth): ftrace's text reader reported such an exec with
    # the thread's id as pid. A process is its thread group: pid is the main thread's.
    missing = f"/nonexistent-{os.getpid()}-{time.monotonic_ns()}/thread-prog"
    with open_backend(backend, "exec") as session:
        child = subprocess.run([sys.executable, "-c", THREAD_EXEC, missing],
                               capture_output=True, text=True, check=True)
        pid, tid = map(int, child.stdout.split())

        def mine(e: Event) -> bool:
            return isinstance(e, ExecEvent) and e.tid == tid and e.retval == -2

        events = wait_for(session, mine)
    ev = first(events, ExecEvent, mine)
    check_types(ev)
    assert tid != pid
    assert ev.pid == pid  # its task records were all seen: proven, never the tid
    assert ev.ppid == expected_ppid(backend)
    assert ev.filename in (missing.encode(), None)
    if backend in EXACT:
        assert ev.filename == missing.encode()


# The child's own opens carry flags nothing else in a Python start-up uses, so
# they can be told from the interpreter's (fd numbers and ENOENTs recur there).
MARK = os.O_NOCTTY | os.O_NONBLOCK
OPENER = (
    "import os, sys, time\n"
    f"fd = os.open(sys.argv[1], os.O_RDONLY | {MARK})\n"
    f"try:\n    os.open(sys.argv[2], os.O_RDONLY | {MARK})\nexcept FileNotFoundError:\n"
    "    pass\n"
    "print(fd, flush=True)\n"
    "time.sleep(0.5)\n"
)


def _marked(e: Event, pid: int) -> bool:
    return isinstance(e, OpenEvent) and e.pid == pid and (e.flags or 0) & MARK == MARK


def test_open_success_and_failure(backend: str) -> None:
    with tempfile.NamedTemporaryFile(prefix="ht-contract-\n\xff-".encode()) as tmp:
        path = tmp.name
        missing = path + b".missing"
        with open_backend(backend, "open") as session:
            child = subprocess.Popen([sys.executable, "-c", OPENER, path, missing],
                                     stdout=subprocess.PIPE)
            fd = int(child.stdout.readline()) if child.stdout else -1
            events = wait_for(
                session,
                lambda e: _marked(e, child.pid) and e.errno == 2,  # type: ignore[union-attr]
            )
            child.wait()
            assert child.stdout is not None
            child.stdout.close()
    for event in events:
        check_types(event)
    ok = first(events, OpenEvent, lambda e: _marked(e, child.pid) and e.fd == fd)
    bad = first(events, OpenEvent, lambda e: _marked(e, child.pid) and e.errno == 2)
    assert ok.uid == os.getuid() and ok.tid == child.pid
    check_origin(ok, backend, child.pid)
    assert ok.flags is not None and ok.flags & os.O_ACCMODE == os.O_RDONLY
    if backend in EXACT:
        assert ok.path == path
        assert bad.path == missing
    else:
        assert ok.path in (None, path) and bad.path in (None, missing)
        assert ok.path is None or ok.path_source is Source.PROCFS


def test_uid_filter(backend: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("starting a child as another user needs root (least-privilege run)")
    tag = f"/tmp/ht-uid-{os.getpid()}-{time.monotonic_ns()}"
    with open_backend(backend, "open", uid=65534) as session:
        nobody = subprocess.Popen(["/bin/cat", tag + "-nobody"], stderr=subprocess.DEVNULL,
                                  preexec_fn=lambda: os.setuid(65534))
        root = subprocess.Popen(["/bin/cat", tag + "-root"], stderr=subprocess.DEVNULL)
        events = wait_for(session, lambda e: isinstance(e, OpenEvent) and e.pid == nobody.pid
                          and e.errno == 2)
        root.wait()
        nobody.wait()
        time.sleep(0.2)
        events += session.poll(0.2)
    assert all(e.uid == 65534 for e in events if isinstance(e, OpenEvent))
    assert not any(isinstance(e, OpenEvent) and e.pid == root.pid for e in events)


def test_two_sessions_both_see_everything(backend: str) -> None:
    with open_backend(backend, "exec") as one, open_backend(backend, "exec") as two:
        children = [_spawn_sh([b"n%d" % i]) for i in range(5)]
        pids = {c.pid for c in children}
        for c in children:
            c.wait()
        for session in (one, two):
            seen: set = set()
            deadline = time.monotonic() + 8
            while seen != pids and time.monotonic() < deadline:
                seen |= {e.pid for e in session.poll(0.2)
                         if isinstance(e, ExecEvent) and e.pid in pids}
            assert seen == pids


def test_decision_is_reported(backend: str) -> None:
    with open_backend(backend, "exec") as session:
        chosen = session.decision.chosen
        assert chosen is not None and chosen.label == backend
        assert session.description
        assert session.stats.lost == 0


# -- filters: each means the same on every backend ---------------------------------------


def _gather(session: Session, want: Callable[[Event], bool]) -> List[Event]:
    """Events up to the one wanted, and what arrives a moment after (a stray would show)."""
    events = wait_for(session, want)
    time.sleep(0.2)
    return events + session.poll(0.3)


def test_pid_filter(backend: str) -> None:
    # The traced process waits for a go, so the session is open before it opens anything.
    target = subprocess.Popen(["/bin/sh", "-c", "read x; exec cat /etc/hostname"],
                              stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    try:
        with open_backend(backend, "open", pid=target.pid) as session:
            other = subprocess.Popen(["/bin/cat", "/etc/hostname"], stdout=subprocess.DEVNULL)
            release(target)
            other.wait()
            events = _gather(session, lambda e: isinstance(e, OpenEvent)
                             and e.pid == target.pid and e.fd is not None
                             and e.path in (b"/etc/hostname", None))
    finally:
        if target.poll() is None:
            target.kill()
    opened = [e for e in events if isinstance(e, OpenEvent)]
    assert opened and all(e.pid == target.pid for e in opened)


def test_ppid_filter(backend: str) -> None:
    script = "read x; /bin/true kid-1; /bin/true kid-2; exit 0"  # exit: no exec of the last
    shell = subprocess.Popen(["/bin/sh", "-c", script], stdin=subprocess.PIPE)
    try:
        if backend in NO_PPID:  # cannot know a parent: refused up front, never guessed
            with pytest.raises(hybridtrace.BackendError):
                open_backend(backend, "exec", ppid=shell.pid).close()
            return
        with open_backend(backend, "exec", ppid=shell.pid) as session:
            other = subprocess.Popen(["/bin/true", "not-a-kid"])
            release(shell)
            other.wait()
            kids: List[Event] = []
            deadline = time.monotonic() + 8
            while len(kids) < 2 and time.monotonic() < deadline:
                kids += [e for e in session.poll(0.2) if isinstance(e, ExecEvent)]
            kids += session.poll(0.3)
    finally:
        if shell.poll() is None:
            shell.kill()
    execs = [e for e in kids if isinstance(e, ExecEvent)]
    assert len(execs) == 2 and all(e.ppid == shell.pid for e in execs)
    assert all(e.argv in (None, (b"/bin/true", b"kid-%d" % (i + 1)))
               for i, e in enumerate(sorted(execs, key=lambda e: e.timestamp_ns)))
    if backend in EXACT:
        assert sorted(e.argv for e in execs if e.argv) == [(b"/bin/true", b"kid-1"),
                                                            (b"/bin/true", b"kid-2")]


def test_comm_filter(backend: str, tmp_path: os.PathLike) -> None:  # type: ignore[type-arg]
    renamed = os.path.join(str(tmp_path), f"htcomm{os.getpid() % 10000}")
    with open("/bin/cat", "rb") as src, open(renamed, "wb") as dst:
        dst.write(src.read())
    os.chmod(renamed, 0o755)
    comm = os.path.basename(renamed).encode()
    missing = f"/nonexistent-{os.getpid()}-comm".encode()
    with open_backend(backend, "open", comm=comm) as session:
        a = subprocess.Popen([os.fsencode(renamed), missing], stderr=subprocess.DEVNULL)
        b = subprocess.Popen([b"/bin/cat", missing], stderr=subprocess.DEVNULL)
        a.wait()
        b.wait()
        events = _gather(session, lambda e: isinstance(e, OpenEvent) and e.pid == a.pid
                         and e.errno == 2)
    opened = [e for e in events if isinstance(e, OpenEvent)]
    assert opened and all(e.comm == comm for e in opened)
    assert not any(e.pid == b.pid for e in opened)


def test_failed_only(backend: str) -> None:
    missing = f"/nonexistent-{os.getpid()}-failed-only".encode()
    with open_backend(backend, "open", failed_only=True) as session:
        cat = subprocess.Popen([b"/bin/cat", b"/etc/hostname", missing],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cat.wait()
        events = _gather(session, lambda e: isinstance(e, OpenEvent) and e.pid == cat.pid
                         and e.errno == 2 and e.path in (missing, None))
    opened = [e for e in events if isinstance(e, OpenEvent)]
    assert opened and all(e.failed for e in opened)


def _exec_of_sh(backend: str, args: Sequence[bytes], max_args: int = DEFAULT_MAX_ARGS) -> ExecEvent:
    """The exec of ``sh -c 'sleep 0.5' sh ARGS`` as the backend reports it."""
    with open_backend(backend, "exec", max_args=max_args) as session:
        child = _spawn_sh(args)
        events = wait_for(session, lambda e: isinstance(e, ExecEvent) and e.pid == child.pid)
        child.wait()
    return first(events, ExecEvent, lambda e: e.pid == child.pid)


# max_args as small as allowed, and at its largest (the verifier must accept the loop,
# and the argument after the last one kept must still be seen: argv is not whole).
@pytest.mark.parametrize(("max_args", "given"), [(5, 9), (128, 140)])
def test_max_args_cuts_and_flags(backend: str, max_args: int, given: int) -> None:
    ev = _exec_of_sh(backend, [b"a%d" % i for i in range(given)], max_args)
    want = (b"/bin/sh", b"-c", b"sleep 0.5", b"sh", *[b"a%d" % i for i in range(max_args - 4)])
    if backend in EXACT:
        assert ev.argv == want and ev.argv_truncated
    else:
        assert ev.argv is None or (ev.argv == want and ev.argv_truncated)


def test_an_argument_of_exactly_arg_size_is_whole(backend: str) -> None:
    if not backend.startswith("ebpf"):
        pytest.skip("ARG_SIZE is the eBPF backends' buffer for one argument")
    exact = b"E" * ARG_SIZE
    ev = _exec_of_sh(backend, [exact])
    assert ev.argv == (b"/bin/sh", b"-c", b"sleep 0.5", b"sh", exact)
    assert not ev.argv_truncated


# -- opens through io_uring (no open syscall at all) ------------------------------

# Inline or punted by the kernel, on an io-wq worker (IOSQE_ASYNC), submitted by the
# kernel's SQPOLL thread; IORING_OP_OPENAT and OPENAT2; an existing file and a missing one.
URING_OPS = [(m, w) for m in ("uring_openat", "uring_openat2_async", "uring_openat_sqpoll")
             for w in ("file", "missing")]
# Failed opens into a fixed file slot: a missing file (ENOENT, from the open itself),
# and O_CLOEXEC, which the kernel refuses for a fixed slot while preparing the request
# (EINVAL: io_uring_req_failed, no submission).
URING_FIXED_FAILED = [("uring_openat_direct", "missing"),
                      ("uring_openat_direct", "file", os.O_CLOEXEC)]
FIXED_SLOT_SINCE = (5, 15, 0)  # an open into a fixed file slot (sqe->file_index)


def _uring_events(events: Sequence[Event], pid: int) -> List[OpenEvent]:
    return [e for e in events if isinstance(e, OpenEvent) and e.via == VIA_IO_URING
            and e.pid == pid]


def _uring_session(backend: str, job: UringJob, ops: Sequence[Tuple[str, str]],
                   setuid: bool = False, **filters: object
                   ) -> Tuple[Optional[str], int, List[OpenOp], List[Event]]:
    """(what the backend claims, the job's pid, its opens, the events seen)."""
    with open_backend(backend, "open", **filters) as session:
        chosen = session.decision.chosen
        assert chosen is not None
        claim = io_uring_claim(chosen.fields)
        pid, opens = job.run(ops, setuid=setuid)
        events = collect(session, lambda seen: len(_uring_events(seen, pid)) >= len(
            opens), 8.0 if claim else 1.5)
    for event in events:
        check_types(event)
    return claim, pid, opens, events


def _matching(events: Sequence[OpenEvent], op: OpenOp) -> List[OpenEvent]:
    return [e for e in events if op.t0 <= e.timestamp_ns <= op.t1]


@pytest.mark.parametrize("ops", [URING_OPS, URING_FIXED_FAILED],
                         ids=["kinds", "fixed_slot_failed"])
def test_io_uring_opens(backend: str, uring_job: UringJob,
                        ops: List[Tuple[str, str]]) -> None:
    if ops is URING_FIXED_FAILED and parse_version(os.uname().release) < FIXED_SLOT_SINCE:
        pytest.skip("opens into a fixed file slot came with 5.15")
    claim, pid, opens, events = _uring_session(backend, uring_job, ops)
    assert len(opens) == len(ops)
    if ops is URING_FIXED_FAILED:  # the kernel refused them where this test says
        assert [op.errno for op in opens] == [errno.ENOENT, errno.EINVAL]
    mine = _uring_events(events, pid)
    marked = [e for e in events if isinstance(e, OpenEvent) and e.path is not None
              and b"ht-uring-" in e.path and e.pid == pid]
    if claim is None:  # doctor says it cannot see them: nothing, and never as a syscall
        assert not mine and not marked
        return
    for op in opens:
        found = _matching(mine, op)
        assert len(found) == 1, (op, found)
        ev = found[0]
        assert ev.syscall is None and ev.pid == pid
        if op.sqpoll:  # the kernel's SQPOLL thread submitted it, not a thread of ours
            assert ev.tid is None and ev.comm is None and ev.uid is None
        else:
            assert ev.tid == op.tid and ev.comm == op.comm and ev.uid == op.uid
        assert ev.errno == op.errno
        assert ev.fd in (op.fd, None) and (ev.fd is not None or op.fd is not None
                                           or ev.errno is not None)
        assert ev.path in (op.path, None)
        if "with paths" in claim:
            # A request refused while being prepared: its dfd is in no record.
            refused = op.errno == errno.EINVAL
            assert ev.path == op.path and ev.path_source is not None
            assert ev.dfd == op.dfd or (refused and ev.dfd is None)
            if refused:  # the SQE's own, where the record has them
                assert ev.flags in (op.flags, None) and ev.mode in (op.mode, None)
            elif URING_HOW_NONE in claim:  # the kernel's adjusted copy is not the caller's
                assert ev.flags is None and ev.mode is None
            else:
                assert ev.flags == op.flags and ev.mode == op.mode


def test_io_uring_failed_only(backend: str, uring_job: UringJob) -> None:
    claim, pid, opens, events = _uring_session(backend, uring_job, URING_OPS,
                                               failed_only=True)
    mine = _uring_events(events, pid)
    assert all(e.errno is not None for e in mine)
    if claim is not None:
        assert len(mine) == sum(1 for op in opens if op.errno is not None)


def test_io_uring_comm_filter(backend: str, uring_job: UringJob) -> None:
    """A filter on what an SQPOLL submission cannot tell (comm) never accepts one."""
    claim, pid, opens, events = _uring_session(backend, uring_job, URING_OPS, comm=b"gt")
    mine = _uring_events(events, pid)
    assert all(e.comm == b"gt" and e.tid is not None for e in mine)
    if claim is not None:
        assert len(mine) == sum(1 for op in opens if not op.sqpoll)


def test_io_uring_uid_filter(backend: str, uring_job: UringJob) -> None:
    if os.geteuid() != 0:
        pytest.skip("the job's setuid(65534) needs root")
    ops = [("uring_openat", "file"), ("uring_openat2_async", "missing")]
    claim, pid, opens, events = _uring_session(backend, uring_job, ops, setuid=True,
                                               uid=65534)
    assert all(op.uid == 65534 for op in opens)
    mine = _uring_events(events, pid)
    assert all(e.uid == 65534 for e in events if isinstance(e, OpenEvent))
    if claim is not None:
        assert len(mine) == len(ops)


def test_io_uring_pid_filter(backend: str, uring_job: UringJob) -> None:
    """-p: the process's io_uring opens, whichever kernel thread runs or submits them;
    what a backend cannot follow there is None, or said lost, never another's."""
    started = uring_job.start(URING_OPS)
    pid = started.child.pid
    try:
        with open_backend(backend, "open", pid=pid) as session:
            chosen = session.decision.chosen
            assert chosen is not None
            claim = io_uring_claim(chosen.fields)
            _, opens = uring_job.finish(started)
            events = collect(session, lambda seen: len(_uring_events(
                seen, pid)) >= len(opens), 8.0 if claim else 1.5)
    finally:
        started.discard()
    for event in events:
        check_types(event)
    assert all(e.pid == pid for e in events if isinstance(e, OpenEvent))
    mine = _uring_events(events, pid)
    if claim is None:
        assert not mine
        return
    unknown = [e for e in events if isinstance(e, LostEvent) and e.count is None]
    for op in opens:
        found = _matching(mine, op)
        if not found and op.sqpoll and unknown:
            continue  # said lost: the SQPOLL thread's records were not followed
        assert len(found) == 1, (op, found)
        ev = found[0]
        assert ev.errno in (op.errno, None) and ev.fd in (op.fd, None)
        assert ev.tid == (None if op.sqpoll else op.tid)
