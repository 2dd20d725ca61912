"""The ebpf-core engine against real processes on this kernel.

Beyond the cross-backend contract: argv fidelity (hostile bytes, a 100 KB
argument, max_args, fork()+execv() children whose argv pages were never
touched), every open syscall, kernel-side filters, exact loss accounting
under overload, and nothing left loaded after close.
"""

from __future__ import annotations

import errno
import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
from typing import Dict, Iterator, List, Optional, Set

import pytest

import hybridtrace
from hybridtrace import kernel_state, tracefs
from hybridtrace.api import Session
from hybridtrace.backends.ebpf.core_stream import open_core_stream
from hybridtrace.capabilities import probe
from hybridtrace.events import Event, ExecEvent, LostEvent, OpenEvent, Source
from hybridtrace.request import ARG_SIZE, Filters, Kind, TraceRequest
from hybridtrace.selector import decide
from tests.conftest import require_backend
from tests.integration.conftest import EBPF_ATTACH, mount_tracefs_for
from tests.integration.ebpf_checks import (
    check_every_open_syscall,
    held_ids,
    loaded_ids,
    run_every_open_syscall,
)
from tests.integration.polling import collect, exec_of, execs_of, opens_of, release

LABEL = "ebpf-core"
# How events leave the kernel: BPF ring buffer read via mmap or by libbpf, perf buffers.
TRANSPORTS = ["ring", "ring-libbpf", "perf"]


# Every test runs once per attach mode: classic tracepoints, and raw ones by BTF name.
_attach = ["tracepoint"]


@pytest.fixture(scope="module", params=EBPF_ATTACH)
def caps(request: pytest.FixtureRequest) -> Iterator[object]:
    mount_tracefs_for(request.param)
    found = probe()
    decision = decide(found, "exec", LABEL, None, request.param)
    if decision.chosen is None:
        require_backend(f"{LABEL}/{request.param}", decision.failure())
    _attach[0] = request.param
    yield found


def trace(kind: str, **filters: object) -> Session:
    return hybridtrace.trace(kind, LABEL, ebpf_attach=_attach[0], **filters)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def cbin() -> Iterator[Dict[str, str]]:
    """Small C workloads, compiled for this test run."""
    if shutil.which("gcc") is None:
        pytest.fail("gcc is needed to build the test workloads (tools/setup.sh installs it)")
    with tempfile.TemporaryDirectory(prefix="ht-ebpf-core-") as tmp:
        out = {}
        for name, source, extra in (("forkexec", FORKEXEC_C, ["-no-pie"]),
                                    ("openloop", OPENLOOP_C, [])):
            src = os.path.join(tmp, name + ".c")
            with open(src, "w") as f:
                f.write(source)
            exe = os.path.join(tmp, name)
            subprocess.run(["gcc", "-O2", *extra, "-o", exe, src], check=True)
            out[name] = exe
        yield out


# --- exec ---------------------------------------------------------------------------------


def test_hostile_argv_and_a_100k_argument(caps: object) -> None:
    big = b"B" * 100_000
    argv = [b"/bin/sh", b"-c", b"exit 0", b"sh", b"with space", b"new\nline",
            b"\xff\xfe\x80 not utf-8", b"", big, b"after-big"]
    with trace("exec") as session:
        ev = exec_of(session, argv)
    assert ev.retval == 0 and ev.syscall == "execve"
    assert ev.filename == b"/bin/sh" and ev.filename_source is Source.SYSCALL_ENTRY
    # Which read wins depends on whether the caller's pages were present (on
    # 5.10 they were not); either way every argument comes out, cut alike.
    assert ev.argv_source in (Source.SYSCALL_ENTRY, Source.NEW_IMAGE)
    assert ev.argv == (*argv[:8], big[:ARG_SIZE], b"after-big")
    assert ev.argv_truncated
    assert ev.comm == b"sh" and ev.ppid == os.getpid() and ev.uid == 0
    assert ev.tid == ev.pid


def test_max_args_128_of_full_size(caps: object) -> None:
    args = [b"%03d" % i + b"y" * 297 for i in range(130)]
    with trace("exec", max_args=128) as session:
        ev = exec_of(session, [b"/bin/true", *args])
    assert ev.argv == (b"/bin/true", *[a[:ARG_SIZE] for a in args[:127]])
    assert ev.argv_truncated


def test_failed_exec_enoent_with_argv(caps: object) -> None:
    missing = f"/nonexistent-{os.getpid()}/prog".encode()
    with trace("exec") as session:
        with pytest.raises(FileNotFoundError):
            subprocess.Popen([missing, b"x y", b"\xff"])
        events = collect(session, lambda ev: any(
            isinstance(e, ExecEvent) and e.filename == missing for e in ev))
    (ev,) = [e for e in events if isinstance(e, ExecEvent) and e.filename == missing]
    assert ev.retval == -errno.ENOENT and ev.failed
    assert ev.argv == (missing, b"x y", b"\xff")
    assert ev.ppid == os.getpid()
    with open("/proc/self/comm", "rb") as f:
        assert ev.comm == f.read().rstrip(b"\n")  # the forked caller, before exec


def test_ppid_is_the_real_parent(caps: object) -> None:
    with trace("exec") as session:
        shell = subprocess.Popen(["/bin/sh", "-c", "/bin/true child-of-sh; exit 0"])
        shell.wait()
        events = collect(session, lambda ev: any(
            isinstance(e, ExecEvent) and e.argv == (b"/bin/true", b"child-of-sh")
            for e in ev))
    (sh_ev,) = execs_of(events, shell.pid)
    assert sh_ev.ppid == os.getpid()
    kid = [e for e in events if isinstance(e, ExecEvent) and e.argv == (b"/bin/true",
                                                                          b"child-of-sh")]
    assert len(kid) == 1 and kid[0].ppid == shell.pid and kid[0].pid != shell.pid


LONG_ARG = "L" * 300  # longer than ARG_SIZE, and followed by another argument
FORKEXEC_C = r"""
/* fork()+execv() children whose argv (strings and pointer array) sit in pages
 * of .data nobody touched before exec: non-PIE, so no relocation writes them;
 * MADV_DONTNEED also drops a mapping fault-around may have set up, so the
 * page is surely absent when execve starts (as the parent never wrote it,
 * the content stays the file's). The raw syscall bypasses libc's execve, where
 * another tracer's uprobe (the ftrace tier, run concurrently) would fault the
 * pages in by reading argv. */
#include <stdio.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
extern char **environ;
#include <unistd.h>
#define N 40
struct slot { char path[32]; char a1[32]; char a2[32]; char a3[64]; char a4[320];
  char a5[32]; char *argv[7]; } __attribute__((aligned(4096)));
#define S(i) { "/bin/true", "slot-" #i, "with space", "untouched\nnewline " #i, "LONG", \
  "tail-" #i, { slots[i].path, slots[i].a1, slots[i].a2, slots[i].a3, slots[i].a4, \
  slots[i].a5, 0 } }
static struct slot slots[N] = { S(0), S(1), S(2), S(3), S(4), S(5), S(6), S(7), S(8), S(9),
  S(10), S(11), S(12), S(13), S(14), S(15), S(16), S(17), S(18), S(19), S(20), S(21), S(22),
  S(23), S(24), S(25), S(26), S(27), S(28), S(29), S(30), S(31), S(32), S(33), S(34), S(35),
  S(36), S(37), S(38), S(39) };
int main(void) {
  for (int i = 0; i < N; i++) {
    pid_t pid = fork();
    if (pid == 0) {
      madvise(&slots[i], sizeof slots[i], MADV_DONTNEED);
      syscall(SYS_execve, slots[i].path, slots[i].argv, environ);
      _exit(127);
    }
    if (pid > 0) { printf("%d\n", (int)pid); fflush(stdout); waitpid(pid, 0, 0); }
  }
  return 0;
}
""".replace('"LONG"', '"' + LONG_ARG + '"')


def test_fork_execv_untouched_argv_pages_come_out_complete(
        caps: object, cbin: Dict[str, str]) -> None:
    with trace("exec") as session:
        parent = subprocess.Popen([cbin["forkexec"]])
        parent.wait()
        assert parent.returncode == 0
        events = collect(session, lambda ev: sum(
            1 for e in ev if isinstance(e, ExecEvent) and e.ppid == parent.pid) >= 40)
    kids = [e for e in events if isinstance(e, ExecEvent) and e.ppid == parent.pid]
    assert len(kids) == 40
    long_arg = LONG_ARG.encode()[:ARG_SIZE]
    want = {(b"/bin/true", b"slot-%d" % i, b"with space", b"untouched\nnewline %d" % i,
             long_arg, b"tail-%d" % i) for i in range(40)}
    assert {k.argv for k in kids} == want
    assert all(k.filename == b"/bin/true" and k.argv_truncated for k in kids)
    # The workload really hit the case: the callers' pages were out, so argv came from
    # the new image and the filename from the kernel's copy, or where kernel reads are
    # refused (lockdown=confidentiality) from the copy on the new image's stack.
    name_from = Source.TRACEPOINT if caps.bpf.kernel_read is not False else Source.NEW_IMAGE  # type: ignore[attr-defined]
    sources = sorted({(str(k.filename_source), str(k.argv_source)) for k in kids})
    assert sources == [(str(name_from), str(Source.NEW_IMAGE))], sources


def test_without_kernel_reads_btf_walks_and_user_memory_give_every_field(
        caps: object, cbin: Dict[str, str]) -> None:
    """What lockdown=confidentiality leaves (no bpf_probe_read_kernel), run here: the parent
    and the new image's argv by BTF walks, the filename from the new image's stack."""
    from hybridtrace.backends.ebpf.core_stream import CoreStream

    if _attach[0] != "tp_btf":
        pytest.skip("only tp_btf programs walk BTF pointers instead of reading the kernel")
    stream = CoreStream(TraceRequest(Kind.EXEC), "ring", attach="tp_btf", kernel_reads=False)
    try:
        parent = subprocess.Popen([cbin["forkexec"]], stdout=subprocess.DEVNULL)
        parent.wait()
        kids: List[ExecEvent] = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(kids) < 40:
            kids += [e for e in stream.poll(0.1)
                     if isinstance(e, ExecEvent) and e.ppid == parent.pid]
    finally:
        stream.close()
    assert len(kids) == 40
    long_arg = LONG_ARG.encode()[:ARG_SIZE]
    assert {k.argv for k in kids} == {
        (b"/bin/true", b"slot-%d" % i, b"with space", b"untouched\nnewline %d" % i, long_arg,
         b"tail-%d" % i) for i in range(40)}
    assert all(k.filename == b"/bin/true" and k.filename_source is Source.NEW_IMAGE
               and k.argv_source is Source.NEW_IMAGE for k in kids)


# --- open ---------------------------------------------------------------------------------


def test_unique_paths_every_open_syscall(caps: object, tmp_path: os.PathLike[str]) -> None:
    base = os.path.join(str(tmp_path), "u-\xff-\n".encode("utf-8", "surrogateescape").decode(
        "utf-8", "surrogateescape"))
    os.mkdir(base)
    names = [os.path.join(base, f"f{i:03d}").encode() for i in range(100)]
    script = (
        "import ctypes, os, sys\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "for p in sys.argv[1:]:\n"
        "    os.close(os.open(p.encode('utf-8', 'surrogateescape'), os.O_WRONLY | os.O_CREAT,"
        " 0o600))\n"
    )
    with trace("open") as session:
        child = subprocess.Popen(["/usr/bin/python3", "-c", script,
                                  *[n.decode("utf-8", "surrogateescape") for n in names]])
        child.wait()
        assert child.returncode == 0
        events = collect(session, lambda ev: {e.path for e in opens_of(ev, child.pid)}
                         >= set(names))
    mine = [e for e in opens_of(events, child.pid) if e.path in set(names)]
    assert sorted(e.path for e in mine if e.path) == sorted(names)
    for e in mine:
        assert e.fd is not None and e.fd >= 0 and e.errno is None
        assert e.flags is not None and e.flags & (os.O_WRONLY | os.O_CREAT) == (
            os.O_WRONLY | os.O_CREAT)
        assert e.mode == 0o600 and e.dfd == -100 and e.syscall == "openat"


@pytest.mark.skipif(platform.machine() != "x86_64", reason="raw syscall numbers for x86_64")
def test_open_creat_openat2_and_errors(caps: object, tmp_path: os.PathLike[str]) -> None:
    with trace("open") as session:
        run = run_every_open_syscall(session, tmp_path)
    check_every_open_syscall(run)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_every_transport_carries_exec_and_open(caps: object, transport: str) -> None:
    streams = [open_core_stream(TraceRequest(kind), None, transport=transport,
                                attach=_attach[0])
               for kind in (Kind.EXEC, Kind.OPEN)]
    try:
        child = subprocess.Popen([b"/bin/cat", b"/etc/hostname", b"x\xff y"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        child.wait()
        seen: List[Event] = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (
                execs_of(seen, child.pid) and any(e.path == b"x\xff y"
                                                  for e in opens_of(seen, child.pid))):
            for stream in streams:
                seen += stream.poll(0.1)
    finally:
        for stream in streams:
            stream.close()
    (ev,) = execs_of(seen, child.pid)
    assert ev.argv == (b"/bin/cat", b"/etc/hostname", b"x\xff y") and ev.retval == 0
    bad = [e for e in opens_of(seen, child.pid) if e.path == b"x\xff y"]
    assert len(bad) == 1 and bad[0].errno == errno.ENOENT
    assert streams[0].description.startswith("ebpf-core")


def test_preallocated_pending_table_as_before_6_1(caps: object) -> None:
    """Kernels before 6.1 warn (and taint themselves) when a tracing program uses a map
    allocated at run time: there the pending-exec table is preallocated, and smaller."""
    from hybridtrace.backends.ebpf.core_stream import PREALLOC_PENDING, CoreStream

    stream = CoreStream(TraceRequest(Kind.EXEC), "ring", attach=_attach[0],
                        prealloc_pending=True)
    try:
        mine = [m for m in json.loads(subprocess.run(
            ["bpftool", "map", "show", "-j"], capture_output=True, text=True,
            check=True).stdout) if m.get("name") == "ht_execs" and m["id"] in _map_ids(stream)]
        assert len(mine) == 1
        assert mine[0]["flags"] == 0 and mine[0]["max_entries"] == PREALLOC_PENDING
        child = subprocess.Popen([b"/bin/true", b"prealloc"])
        child.wait()
        seen: List[Event] = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not execs_of(seen, child.pid):
            seen += stream.poll(0.1)
    finally:
        stream.close()
    (ev,) = execs_of(seen, child.pid)
    assert ev.argv == (b"/bin/true", b"prealloc")


def _map_ids(stream: object) -> Set[int]:
    return {int(item.name) for item in kernel_state.bpf_held(os.getpid())
            if item.kind == "bpf-map"}


# --- filters ------------------------------------------------------------------------------
# uid, comm, pid, ppid and failed-only filters, through the API: test_contract.py,
# for every backend alike.


def test_tracer_excludes_itself(caps: object) -> None:
    with trace("open") as session:
        with open("/etc/hostname", "rb"):
            pass
        time.sleep(0.2)
        events = session.poll(0.2)
    assert not opens_of(events, os.getpid())


def test_two_sessions_see_the_same_opens(caps: object) -> None:
    with trace("open") as one, trace("open") as two:
        child = subprocess.Popen(["/bin/cat", "/etc/hostname", "/etc/passwd"],
                                 stdout=subprocess.DEVNULL)
        child.wait()
        got = []
        for s in (one, two):
            events = collect(s, lambda ev: any(e.path == b"/etc/passwd"
                                               for e in opens_of(ev, child.pid)))
            got.append([(e.path, e.fd, e.errno) for e in opens_of(events, child.pid)])
    assert got[0] and got[0] == got[1]


# --- polling, losses, cleanup ---------------------------------------------------------------


def test_poll_honours_timeout(caps: object) -> None:
    # A uid no process has: nothing passes the kernel filter.
    with trace("open", uid=3_999_999_999) as session:
        t0 = time.monotonic()
        assert session.poll(0) == []
        t1 = time.monotonic()
        assert session.poll(0.3) == []
        t2 = time.monotonic()
    assert t1 - t0 < 0.2
    assert 0.25 <= t2 - t1 < 2.0


OPENLOOP_C = r"""
/* Wait for a line on stdin, then open a missing path N times as fast as possible. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
int main(int argc, char **argv) {
  long n = atol(argv[1]);
  char go[8];
  if (read(0, go, sizeof go) <= 0) return 1;
  for (long i = 0; i < n; i++) open("/nonexistent/ht-openloop", O_RDONLY);
  return 0;
}
"""


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_overload_reports_every_loss(caps: object, cbin: Dict[str, str], transport: str) -> None:
    produced = 20000
    loop = subprocess.Popen([cbin["openloop"], str(produced)], stdin=subprocess.PIPE)
    try:
        request = TraceRequest(Kind.OPEN, Filters(pid=loop.pid))
        stream = open_core_stream(request, None, buffer_bytes=4096, transport=transport,
                                  attach=_attach[0])
        try:
            release(loop)
            time.sleep(0.1)
            events: List[Event] = []
            for _ in range(50):
                batch = stream.poll(0.05)
                events += batch
                if not batch and stream.stats.captured + stream.stats.lost >= produced:
                    break
        finally:
            stream.close()
    finally:
        if loop.poll() is None:
            loop.kill()
    captured = [e for e in events if isinstance(e, OpenEvent)]
    lost = [e for e in events if isinstance(e, LostEvent)]
    where = "perf buffer output" if transport == "perf" else "ring buffer reserve"
    assert lost and all(e.where == where and e.count > 0 for e in lost)
    assert all(e.pid == loop.pid and e.path == b"/nonexistent/ht-openloop" for e in captured)
    assert len(captured) + sum(e.count for e in lost) == produced
    assert stream.stats.lost == sum(e.count for e in lost)


def _held() -> Set[kernel_state.Item]:
    return set(kernel_state.bpf_held(os.getpid()))


def test_a_session_removes_what_dead_ftrace_sessions_left(caps: object) -> None:
    """Not only ftrace sessions: whichever session starts next cleans up after the dead."""
    path = tracefs.find()
    if path is None:
        pytest.skip("no tracefs mounted here: nothing can be left in it to find")
    gone = subprocess.Popen(["/bin/true"])
    gone.wait()  # a pid whose process is surely dead (ours, reaped)
    leftover = os.path.join(path, "instances", f"hybridtrace_{gone.pid}_0")
    os.mkdir(leftover)
    try:
        with trace("exec") as session:
            assert not os.path.exists(leftover)
            assert "removed 1 leftover(s) of dead sessions" in session.description
    finally:
        if os.path.exists(leftover):
            os.rmdir(leftover)


def test_nothing_left_loaded_after_close(caps: object) -> None:
    before = _held()
    for kind in ("exec", "open"):
        progs = held_ids("prog")
        session = trace(kind)
        progs = held_ids("prog") - progs
        assert progs and progs <= loaded_ids("prog")
        session.close()
        session.close()  # idempotent
        assert _held() - before == set()
        # A raw tracepoint's program is freed after an RCU grace period, not at close.
        deadline = time.monotonic() + 5
        while progs & loaded_ids("prog") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not progs & loaded_ids("prog")


def test_dropped_stream_is_released_by_gc(caps: object) -> None:
    import gc

    before = _held()
    stream: Optional[object] = open_core_stream(TraceRequest(Kind.OPEN), probe(),
                                                attach=_attach[0])
    assert _held() - before
    del stream
    gc.collect()
    assert _held() - before == set()


# --- the reference tools, same workload ---------------------------------------------------


class Reference:
    """A libbpf-tools snoop (Debian's /usr/sbin), line-buffered, ready once its header shows."""

    def __init__(self, argv: List[str]) -> None:
        self.proc = subprocess.Popen(["stdbuf", "-oL", *argv], stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL)
        assert self.proc.stdout is not None
        self.header = self.proc.stdout.readline()
        assert self.header, f"{argv[0]} did not start"

    def stop(self) -> List[bytes]:
        time.sleep(0.5)
        self.proc.send_signal(2)
        out, _ = self.proc.communicate(timeout=20)
        return out.splitlines()


def test_same_workload_as_libbpf_tools(caps: object) -> None:
    snoops = [shutil.which(n) or f"/usr/sbin/{n}" for n in ("opensnoop", "execsnoop")]
    if not all(os.path.exists(s) for s in snoops):
        pytest.fail("libbpf-tools (opensnoop, execsnoop) are needed: tools/setup.sh installs them")
    # Kernel-side uid filters on both sides keep the volume low, so a busy
    # machine cannot make either tool lose part of the workload.
    script = ("for i in 1 2 3; do cat /etc/hostname /ht-nope-$i; /ht-nonexistent-$i a$i; done;"
              " exit 0")
    ref_open = Reference([snoops[0], "-u", "65534"])
    ref_exec = Reference([snoops[1], "-x", "-u", "65534"])
    with trace("open", uid=65534) as so, trace("exec", uid=65534) as se:
        work = subprocess.Popen(["/bin/sh", "-c", script], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, preexec_fn=lambda: os.setuid(65534))
        work.wait()
        opens = collect(so, lambda ev: any(e.path == b"/ht-nope-3" for e in ev
                                           if isinstance(e, OpenEvent)))
        execs = collect(se, lambda ev: any(e.filename == b"/ht-nonexistent-3" for e in ev
                                           if isinstance(e, ExecEvent)))
        opens += so.poll(0.3)
        execs += se.poll(0.3)
    open_lines, exec_lines = ref_open.stop(), ref_exec.stop()
    kids = {e.pid for e in execs if isinstance(e, ExecEvent) and e.ppid == work.pid}
    pids = kids | {work.pid}
    assert len(kids) == 6  # 3 cat, 3 failed execs (forked children of sh)

    ours_open = sorted((e.pid, e.path, e.fd if e.fd is not None else -1)
                       for e in opens if isinstance(e, OpenEvent) and e.pid in pids)
    # opensnoop: PID COMM FD ERR PATH
    theirs_open = sorted((int(f[0]), f[4], int(f[2])) for f in
                         (ln.split(None, 4) for ln in open_lines)
                         if len(f) == 5 and f[0].isdigit() and int(f[0]) in pids)
    assert ours_open and ours_open == theirs_open

    # execsnoop shows the filename in argv[0]'s place (sh runs "cat" as /usr/bin/cat)
    ours_exec = sorted((e.pid, e.retval, b" ".join([e.filename or b"", *(e.argv or ())[1:]]))
                       for e in execs if isinstance(e, ExecEvent) and e.pid in pids)
    assert any(e.argv and e.argv[0] == b"cat" and e.filename != b"cat" for e in execs
               if isinstance(e, ExecEvent))
    # execsnoop: PCOMM PID PPID RET ARGS (with a trailing space; no arg here ends in one)
    theirs_exec = sorted((int(f[1]), int(f[3]), f[4].rstrip(b" ") if len(f) > 4 else b"") for f in
                         (ln.split(None, 4) for ln in exec_lines)
                         if len(f) >= 4 and f[1].isdigit() and int(f[1]) in pids)
    assert len(ours_exec) == 7 and ours_exec == theirs_exec  # sh itself and its 6 children


def test_programs_for_missing_tracepoints_are_not_loaded(caps: object) -> None:
    """As on kernels without openat2 (< 5.6) or open/creat (arm64): skipped, not fatal."""
    from hybridtrace.backends.ebpf import libbpf
    from hybridtrace.backends.ebpf.core_scope import FOLLOW_PROGRAMS
    from hybridtrace.backends.ebpf.core_stream import (
        IO_URING_SECTION,
        _object_image,
        config_bytes,
        io_uring_unseen,
        leave_out_io_uring,
        object_name,
    )
    from hybridtrace.backends.ebpf.loader import BpfObject

    if _attach[0] != "tracepoint":
        pytest.skip("raw tracepoints serve every syscall: nothing is missing by name")
    before, progs_before = _held(), held_ids("prog")
    image = _object_image(object_name(Kind.OPEN, "ring", "tracepoint"))
    lib = libbpf.get()
    obj = BpfObject(lib, image, "ht_open")
    try:
        obj.set_rodata(config_bytes(TraceRequest(Kind.OPEN), os.getpid()))
        obj.skip_missing(lambda tp: not tp.endswith(("openat2", "creat")))
        obj.leave_out(FOLLOW_PROGRAMS)  # as the stream does unless --descendants-of
        # io_uring's programs by BTF name, as the stream loads them: those the
        # tracepoints this kernel has fit (io_uring_submit_sqe is gone from 6.4 on;
        # io_uring_complete has one program for each of its shapes).
        unseen, left_out = io_uring_unseen(lib, "tracepoint")
        leave_out_io_uring(obj, unseen, left_out)
        uring = [obj.section(p) for p in obj.programs() if obj.section(p).startswith(
            IO_URING_SECTION) and lib.lib.bpf_program__autoload(p)]
        obj.load()
        obj.attach_all()
        assert sorted(obj.skipped) == sorted(f"syscalls/sys_{d}_{n}" for d in ("enter", "exit")
                                             for n in ("openat2", "creat"))
        # open and openat, entry and exit, and io_uring's
        assert len(held_ids("prog") - progs_before) == 4 + len(uring)
    finally:
        obj.close()
    assert _held() - before == set()
