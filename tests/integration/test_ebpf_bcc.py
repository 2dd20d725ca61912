"""The ebpf-bcc engine against real processes on this kernel.

Headers: this host's kernel has no headers package, so these tests give BCC
the nearest Debian headers (a merged tree made by tools/fetch_bcc_headers.sh,
named by $HYBRIDTRACE_BCC_HEADERS or found in its default directory) -- the
"borrowed headers" path. task_struct/mm_struct offsets then come from this
kernel's BTF (cross-checked against clang). Which headers were used is
printed and asserted by ``test_headers_reported_and_poll_honours_timeout``;
``test_borrowed_headers_without_btf_turn_task_reads_off`` covers this host
pretending to have no BTF. On a kernel with its own headers the same tests
run against them ("for this kernel" in the description).

BCC compiles for a second or two per stream, so each test opens few streams
and checks several facts in one go.
"""

from __future__ import annotations

import errno
import glob
import os
import platform
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from typing import Dict, Iterator, List, Optional, Sequence, Set

import attrs
import pytest

from hybridtrace.backends.base import BackendError, EventStream
from hybridtrace.backends.ebpf.bcc import bcc_stream, headers
from hybridtrace.backends.ebpf.bcc.bcc_import import import_bcc
from hybridtrace.backends.ebpf.bcc.bcc_stream import open_bcc_stream
from hybridtrace.backends.ebpf.bcc.headers import ENV_VAR
from hybridtrace.btf_offsets import TASK_OFFSETS, task_offsets
from hybridtrace.capabilities import probe
from hybridtrace.capabilities.model import Capabilities
from hybridtrace.events import Event, ExecEvent, LostEvent, OpenEvent, Source
from hybridtrace.request import ARG_SIZE, Filters, Kind, TraceRequest
from hybridtrace.selector import decide
from hybridtrace.vocabulary import VIA_IO_URING
from tests.conftest import require_backend
from tests.integration.ebpf_checks import (
    check_every_open_syscall,
    held_ids,
    loaded_ids,
    run_every_open_syscall,
)
from tests.integration.polling import collect, exec_of, execs_of, opens_of, release
from tests.integration.uring_job import UringJob

LABEL = "ebpf-bcc"
DEFAULT_TREES = "/var/cache/hybridtrace/bcc-headers/*/.complete"
HOSTILE = [b"with space", b"quote\"'s", b"new\nline", b"\xff\xfe not utf-8", b"\x1b[31mred", b""]


@pytest.fixture(scope="module")
def caps() -> Iterator[Capabilities]:
    """This kernel's capabilities, with borrowed headers named when it has none."""
    patch = pytest.MonkeyPatch()
    found = probe()
    if (os.environ.get(ENV_VAR) is None and found.headers.build is None
            and not found.headers.kheaders):
        trees = sorted(glob.glob(DEFAULT_TREES))
        if trees:
            patch.setenv(ENV_VAR, os.path.dirname(trees[-1]))
    decision = decide(found, "exec", LABEL, None)
    if decision.chosen is None:
        patch.undo()
        require_backend(LABEL, decision.failure() + " (tools/fetch_bcc_headers.sh prepares"
                        " borrowed headers)")
    yield found
    patch.undo()


def stream(caps: Capabilities, kind: Kind, **kwargs: object) -> EventStream:
    filters = {k: v for k, v in kwargs.items() if k in attrs.fields_dict(Filters)}
    rest = {k: v for k, v in kwargs.items() if k not in filters}
    max_args = int(rest.pop("max_args", 20))  # type: ignore[call-overload]
    request = TraceRequest(kind, Filters(**filters), max_args=max_args)  # type: ignore[arg-type]
    return open_bcc_stream(request, caps, **rest)  # type: ignore[arg-type]


UNTOUCHED_C = r"""
/* fork()+execv() children whose argv strings sit in pages of a file mapping
 * nobody has touched: the parent maps the file but never reads it, so the
 * mapping has no page tables, and fork gives the child none either. At execve
 * entry the strings cannot be read; only the kernel's own copy brings them in.
 * argv[1] names a file with "/bin/true", "untouched-one" and
 * "untouched two\nlines" at the start of its first three pages. */
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
int main(int argc, char **argv) {
  int fd = open(argv[1], O_RDONLY);
  if (argc < 2 || fd < 0) return 2;
  char *m = mmap(0, 3 * 4096, PROT_READ, MAP_PRIVATE, fd, 0);
  if (m == MAP_FAILED) return 3;
  for (int i = 0; i < 10; i++) {
    char *args[] = {m, m + 4096, m + 8192, 0};
    pid_t pid = fork();
    if (pid == 0) { execv(m, args); _exit(127); }
    if (pid > 0) waitpid(pid, 0, 0);
  }
  return 0;
}
"""
UNTOUCHED_ARGV = (b"/bin/true", b"untouched-one", b"untouched two\nlines")


@pytest.fixture(scope="module")
def untouched_exe() -> Iterator[List[str]]:
    """The workload's command line: the compiled program and its strings file."""
    if shutil.which("gcc") is None:
        pytest.fail("gcc is needed to build the test workload (tools/setup.sh installs it)")
    with tempfile.TemporaryDirectory(prefix="ht-ebpf-bcc-") as tmp:
        src = os.path.join(tmp, "untouched.c")
        with open(src, "w") as f:
            f.write(UNTOUCHED_C)
        exe = os.path.join(tmp, "untouched")
        subprocess.run(["gcc", "-O2", "-o", exe, src], check=True)
        data = os.path.join(tmp, "strings")
        with open(data, "wb") as f:
            f.write(b"".join((a + b"\0").ljust(4096, b"\0") for a in UNTOUCHED_ARGV))
        yield [exe, data]


def test_btf_offsets_agree_with_clang_on_this_kernel(tmp_path: os.PathLike[str]) -> None:
    """The offsets used with borrowed headers, against clang's offsetof() over a
    vmlinux.h that bpftool dumps from the same BTF."""
    if not os.path.exists("/sys/kernel/btf/vmlinux"):
        pytest.skip("this kernel has no BTF")
    for tool in ("bpftool", "clang", "llvm-objcopy"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is needed (tools/setup.sh installs it)")
    ours = task_offsets("/sys/kernel/btf/vmlinux")
    d = str(tmp_path)
    with open(os.path.join(d, "vmlinux.h"), "w") as f:
        subprocess.run(["bpftool", "btf", "dump", "file", "/sys/kernel/btf/vmlinux", "format",
                        "c"], stdout=f, check=True)
    names = sorted(TASK_OFFSETS)
    with open(os.path.join(d, "off.c"), "w") as f:
        f.write('#include "vmlinux.h"\nunsigned long offs[] = {\n')
        for macro in names:
            struct_name, member = TASK_OFFSETS[macro]
            f.write(f"  __builtin_offsetof(struct {struct_name}, {member}),\n")
        f.write("};\n")
    obj = os.path.join(d, "off.o")
    subprocess.run(["clang", "-target", "bpf", "-O2", "-c", "-o", obj, os.path.join(d, "off.c")],
                   check=True)
    raw = os.path.join(d, "off.bin")
    subprocess.run(["llvm-objcopy", "-O", "binary", "--only-section=.data", obj, raw],
                   check=True)
    with open(raw, "rb") as f:
        data = f.read()
    theirs = dict(zip(names, struct.unpack(f"<{len(names)}Q", data[:8 * len(names)])))
    assert ours == theirs


def test_exec_argv_ppid_failures_and_untouched_pages(caps: Capabilities,
                                                     untouched_exe: List[str]) -> None:
    big = b"B" * 5000
    argv = [b"/bin/sh", b"-c", b"exit 0", b"sh", *HOSTILE, big, b"after-big"]
    missing = f"/nonexistent-{os.getpid()}-{time.monotonic_ns()}/prog".encode()
    s = stream(caps, Kind.EXEC)
    try:
        child = subprocess.Popen(argv)
        child.wait()
        with pytest.raises(FileNotFoundError):
            subprocess.Popen([missing, b"x y", b"\xff"])
        shell = subprocess.Popen(["/bin/sh", "-c", "/bin/true child-of-sh; exit 0"])
        shell.wait()
        parent = subprocess.Popen(untouched_exe)
        parent.wait()
        assert parent.returncode == 0

        def done(ev: List[Event]) -> bool:
            kids = [e for e in ev if isinstance(e, ExecEvent) and e.ppid == parent.pid]
            return bool(execs_of(ev, child.pid)) and len(kids) >= 10 and any(
                isinstance(e, ExecEvent) and e.filename == missing for e in ev)

        events = collect(s, done)
    finally:
        s.close()
    (ev,) = execs_of(events, child.pid)
    assert ev.retval == 0 and ev.syscall == "execve" and ev.tid == ev.pid
    assert ev.filename == b"/bin/sh" and ev.filename_source is Source.SYSCALL_ENTRY
    assert ev.argv == (*argv[:-2], big[:ARG_SIZE], b"after-big")
    # Read at entry, or again from the new image when the caller's pages were not
    # readable then (seen under TCG on 6.1): either way argv must be exact.
    assert ev.argv_truncated and ev.argv_source in (Source.SYSCALL_ENTRY, Source.NEW_IMAGE)
    assert ev.comm == b"sh" and ev.uid == os.getuid()
    assert ev.ppid == os.getpid()  # real_parent->tgid, offsets from BTF when borrowed

    (bad,) = [e for e in events if isinstance(e, ExecEvent) and e.filename == missing]
    assert bad.retval == -errno.ENOENT and bad.failed
    assert bad.argv == (missing, b"x y", b"\xff") and not bad.argv_truncated
    assert bad.ppid == os.getpid()

    (sh_ev,) = execs_of(events, shell.pid)
    grandkid = [e for e in events if isinstance(e, ExecEvent)
                and e.argv == (b"/bin/true", b"child-of-sh")]
    assert sh_ev.ppid == os.getpid()
    assert len(grandkid) == 1 and grandkid[0].ppid == shell.pid

    kids = [e for e in events if isinstance(e, ExecEvent) and e.ppid == parent.pid]
    assert len(kids) == 10
    for k in kids:
        assert k.argv == UNTOUCHED_ARGV and not k.argv_truncated and k.retval == 0
        # The caller's pages were out at entry: argv came from the new image,
        # and the filename from sched_process_exec.
        assert k.argv_source is Source.NEW_IMAGE, k
        assert k.filename == b"/bin/true" and k.filename_source is Source.TRACEPOINT, k


@pytest.mark.skipif(platform.machine() != "x86_64", reason="raw syscall numbers for x86_64")
def test_open_every_syscall_unique_paths_and_errors(caps: Capabilities,
                                                    tmp_path: os.PathLike[str]) -> None:
    s = stream(caps, Kind.OPEN)
    try:
        run = run_every_open_syscall(s, tmp_path)
    finally:
        s.close()
    check_every_open_syscall(run)
    for e in run.events.values():
        assert e.uid == os.getuid() and e.comm == b"python3" and e.tid == e.pid
        assert e.path_source is Source.SYSCALL_ENTRY
    # BCC also knows the mode of open(2) and that the too-long path got no fd
    assert run.events["open"].mode == 0o600 and run.events["open-too-long"].fd is None


def test_kernel_filters_uid_comm_failed_only_and_self(caps: Capabilities,
                                                      tmp_path: os.PathLike[str]) -> None:
    """Streams are read directly: these filters must hold in the kernel, with no
    user-space pass behind them."""
    tag = f"/tmp/ht-bcc-uid-{os.getpid()}-{time.monotonic_ns()}"
    renamed = os.path.join(str(tmp_path), f"htbcc{os.getpid() % 10000}")
    shutil.copy("/bin/cat", renamed)
    comm = os.path.basename(renamed).encode()
    by_uid = stream(caps, Kind.OPEN, uid=65534)
    try:
        by_comm = stream(caps, Kind.OPEN, comm=comm, failed_only=True)
        try:
            nobody = subprocess.Popen(["/bin/cat", tag + "-nobody"], stderr=subprocess.DEVNULL,
                                      preexec_fn=lambda: os.setuid(65534))
            root = subprocess.Popen(["/bin/cat", tag + "-root"], stderr=subprocess.DEVNULL)
            named = subprocess.Popen([renamed, "/etc/hostname", tag + "-named"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for p in (nobody, root, named):
                p.wait()
            with open("/etc/hostname", "rb"):
                pass  # the tracer's own opens never show
            uid_events = collect(by_uid, lambda ev: any(
                e.path == (tag + "-nobody").encode() for e in opens_of(ev, nobody.pid)))
            uid_events += by_uid.poll(0.3)
            comm_events = collect(by_comm, lambda ev: any(
                e.path == (tag + "-named").encode() for e in opens_of(ev, named.pid)))
            comm_events += by_comm.poll(0.3)
        finally:
            by_comm.close()
    finally:
        by_uid.close()
    opened = [e for e in uid_events if isinstance(e, OpenEvent)]
    assert opened and all(e.uid == 65534 for e in opened)
    assert not opens_of(uid_events, root.pid) and not opens_of(uid_events, os.getpid())
    named_opens = [e for e in comm_events if isinstance(e, OpenEvent)]
    assert named_opens and all(e.comm == comm and e.failed for e in named_opens)
    assert not any(e.path == b"/etc/hostname" for e in named_opens)


def test_ppid_filter_in_kernel(caps: Capabilities) -> None:
    shell = subprocess.Popen(["/bin/sh", "-c", "read x; /bin/true via-shell; exit 0"],
                             stdin=subprocess.PIPE)
    try:
        s = stream(caps, Kind.EXEC, ppid=shell.pid)
        try:
            direct = subprocess.Popen(["/bin/true", "direct"])
            direct.wait()
            release(shell)
            events = collect(s, lambda ev: any(isinstance(e, ExecEvent) for e in ev))
            events += s.poll(0.3)
        finally:
            s.close()
    finally:
        if shell.poll() is None:
            shell.kill()
    execs = [e for e in events if isinstance(e, ExecEvent)]
    assert [e.argv for e in execs] == [(b"/bin/true", b"via-shell")]
    assert execs[0].ppid == shell.pid


def test_two_sessions_both_see_everything(caps: Capabilities) -> None:
    one = stream(caps, Kind.EXEC)
    try:
        two = stream(caps, Kind.EXEC)
        try:
            children = [subprocess.Popen(["/bin/true", f"n{i}"]) for i in range(5)]
            pids = {c.pid for c in children}
            for c in children:
                c.wait()
            got = []
            for s in (one, two):
                events = collect(s, lambda ev: {e.pid for e in ev
                                                if isinstance(e, ExecEvent)} >= pids)
                got.append(sorted((e.pid, e.argv) for e in events
                                  if isinstance(e, ExecEvent) and e.pid in pids))
        finally:
            two.close()
    finally:
        one.close()
    assert len(got[0]) == 5 and got[0] == got[1]


def test_headers_reported_and_poll_honours_timeout(caps: Capabilities) -> None:
    s = stream(caps, Kind.OPEN, uid=3_999_999_999)  # no process has it: nothing passes the filter
    try:
        desc = s.description
        t0 = time.monotonic()
        assert list(s.poll(0)) == []
        t1 = time.monotonic()
        assert list(s.poll(0.3)) == []
        t2 = time.monotonic()
    finally:
        s.close()
    assert t1 - t0 < 0.2
    assert 0.25 <= t2 - t1 < 2.0
    print("ebpf-bcc compiled with:", desc)  # says which headers: shown with pytest -s
    assert desc.startswith("ebpf-bcc: BCC ")
    if os.environ.get(ENV_VAR):
        assert os.environ[ENV_VAR] in desc
    if "BORROWED" in desc:
        assert caps.btf.path is None or f"offsets from BTF ({caps.btf.path})" in desc
    else:
        assert "for this kernel" in desc


FLOOD_PATH = b"/nonexistent/ht-bcc-flood"
END_PATH = b"/nonexistent/ht-bcc-flood-end"
FLOOD = (
    "import os, sys\n"
    "os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one CPU: one perf buffer\n"
    "sys.stdin.readline()\n"
    "for _ in range(int(sys.argv[1])):\n"
    "    try:\n        os.open(sys.argv[2], os.O_RDONLY)\n"
    "    except OSError:\n        pass\n"
    "print('flooded', flush=True)\n"
    "sys.stdin.readline()\n"
    "try:\n    os.open(sys.argv[3], os.O_RDONLY)\nexcept OSError:\n    pass\n"
)


def flood_and_count(caps: Capabilities, produced: int, **buffer: object) -> List[Event]:
    """A child opens FLOOD_PATH ``produced`` times while nobody reads the buffer,
    then, once it was drained, END_PATH once: a perf buffer reports a loss with
    the next record written after it."""
    loop = subprocess.Popen(["/usr/bin/python3", "-c", FLOOD, str(produced), FLOOD_PATH,
                             END_PATH], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert loop.stdin is not None and loop.stdout is not None
    events: List[Event] = []
    try:
        s = stream(caps, Kind.OPEN, pid=loop.pid, **buffer)
        try:
            loop.stdin.write(b"go\n")
            loop.stdin.flush()
            assert loop.stdout.readline() == b"flooded\n"
            while True:
                batch = list(s.poll(0.1))
                events += batch
                if not batch:
                    break
            loop.stdin.write(b"end\n")
            loop.stdin.close()
            loop.wait()
            events += collect(s, lambda ev: any(
                isinstance(e, OpenEvent) and e.path == END_PATH for e in ev))
            stats = s.stats
        finally:
            s.close()
    finally:
        if loop.poll() is None:
            loop.kill()
        loop.stdout.close()
    flood = [e for e in events if isinstance(e, OpenEvent) and e.path == FLOOD_PATH]
    lost = [e for e in events if isinstance(e, LostEvent)]
    assert all(e.pid == loop.pid for e in events if isinstance(e, OpenEvent))
    assert any(isinstance(e, OpenEvent) and e.path == END_PATH for e in events)
    assert lost and all(e.count > 0 for e in lost)
    assert len(flood) + sum(e.count for e in lost) == produced
    assert stats.lost == sum(e.count for e in lost)
    assert stats.captured == len([e for e in events if isinstance(e, OpenEvent)])
    return events


def test_tiny_ring_buffer_counts_every_loss(caps: Capabilities) -> None:
    events = flood_and_count(caps, 5000, ringbuf_pages=1)
    assert {e.where for e in events if isinstance(e, LostEvent)} == {"ring buffer reserve"}


def test_tiny_perf_buffer_counts_every_loss(caps: Capabilities) -> None:
    events = flood_and_count(caps, 5000, ringbuf_pages=None, perf_pages=1)
    assert {e.where for e in events if isinstance(e, LostEvent)} == {"perf buffer"}


def test_perf_buffer_fallback(caps: Capabilities) -> None:
    s = stream(caps, Kind.EXEC, ringbuf_pages=None)
    try:
        assert "perf buffer" in s.description
        ev = exec_of(s, ["/bin/true", "via perf buffer"])
    finally:
        s.close()
    assert ev.argv == (b"/bin/true", b"via perf buffer") and ev.ppid == os.getpid()


def _via_uring(events: Sequence[Event], pid: int) -> List[OpenEvent]:
    return [e for e in opens_of(events, pid) if e.via == VIA_IO_URING]


def test_io_uring_opens_through_a_perf_buffer(caps: Capabilities, uring_job: UringJob) -> None:
    """The io_uring programs compile and report with the older perf buffer too (their
    loss count, of completions no pending open could be told apart, is then the
    kernel-side counter's only use)."""
    s = stream(caps, Kind.OPEN, ringbuf_pages=None)
    try:
        if s.io_uring_unseen is not None:  # type: ignore[attr-defined]
            pytest.skip(f"BCC sees no io_uring opens here: {s.description}")
        pid, ops = uring_job.run([("uring_openat", "file"), ("uring_openat2_async", "missing")])
        events = collect(s, lambda ev: len(_via_uring(ev, pid)) >= 2, strict=True)
    finally:
        s.close()
    # A perf buffer is read CPU by CPU: the async open completes on an io-wq worker,
    # perhaps on the other CPU, so its record may be read first. Time orders them.
    seen = sorted(_via_uring(events, pid), key=lambda e: e.timestamp_ns)
    assert [(e.path, e.errno) for e in seen] == [(op.path, op.errno) for op in ops]
    assert not [e for e in events if isinstance(e, LostEvent)]


def test_borrowed_headers_without_btf_turn_task_reads_off(caps: Capabilities) -> None:
    if not os.environ.get(ENV_VAR):
        pytest.skip("this kernel has its own headers: nothing is borrowed")
    no_btf = attrs.evolve(caps, btf=attrs.evolve(caps.btf, path=None))
    s = stream(no_btf, Kind.EXEC)
    try:
        assert "ppid from /proc and the argv re-read from the new image OFF" in s.description
        gone = subprocess.Popen(["/bin/true", "no-btf"])
        gone.wait()
        alive = subprocess.Popen(["/bin/sh", "-c", "read x", "sh", "still-here"],
                                 stdin=subprocess.PIPE)
        try:
            events = collect(s, lambda ev: bool(execs_of(ev, gone.pid)
                                                and execs_of(ev, alive.pid)))
        finally:
            assert alive.stdin is not None
            alive.stdin.close()
            alive.wait()
    finally:
        s.close()
    (ev,) = execs_of(events, gone.pid)
    # Never a guess from the wrong struct layout: /proc or unknown.
    assert ev.ppid is None
    assert ev.argv == (b"/bin/true", b"no-btf") and ev.argv_source is Source.SYSCALL_ENTRY
    (running,) = execs_of(events, alive.pid)
    assert running.ppid == os.getpid()


def test_exact_headers_variant_compiles_and_loads(caps: Capabilities,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """On a kernel with its own headers (and maybe no BTF) the programs use
    offsetof() from those headers. Here the borrowed tree stands in for them:
    this proves that variant compiles, verifies and attaches; the values it
    reads would be those of the borrowed layout, so none is asserted."""
    real_locate = bcc_stream.headers.locate

    def as_exact(*args: object, **kwargs: object) -> headers.HeaderTree:
        tree = real_locate(*args, **kwargs)  # type: ignore[arg-type]
        return attrs.evolve(tree, exact=True)

    monkeypatch.setattr(bcc_stream.headers, "locate", as_exact)
    s = stream(caps, Kind.EXEC)  # only the exec program reads task_struct
    try:
        assert "task_struct from the headers" in s.description
        assert "for this kernel" in s.description
    finally:
        s.close()


def _held_by_us() -> Dict[str, Set[int]]:
    return {"prog": held_ids("prog"), "map": held_ids("map")}


def _tracepoint_users() -> int:
    """perf events this process has open (BCC attaches tracepoints through them)."""
    n = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:[perf_event]":
                n += 1
        except OSError:
            continue
    return n


def test_close_is_idempotent_and_leaves_nothing_loaded(caps: Capabilities) -> None:
    if shutil.which("bpftool") is None:
        pytest.fail("bpftool is needed to check what stays loaded (tools/setup.sh installs it)")
    before, perf_before = _held_by_us(), _tracepoint_users()
    for kind in (Kind.EXEC, Kind.OPEN):
        s = stream(caps, kind)
        progs = _held_by_us()["prog"] - before["prog"]
        maps = _held_by_us()["map"] - before["map"]
        assert progs and progs <= loaded_ids("prog")
        assert maps and maps <= loaded_ids("map")
        assert _tracepoint_users() > perf_before
        s.close()
        s.close()
        assert list(s.poll(0)) == []
        assert _held_by_us() == before and _tracepoint_users() == perf_before
        # The kernel frees programs and maps after an RCU grace period / in a worker.
        deadline = time.monotonic() + 5
        while (progs & loaded_ids("prog") or maps & loaded_ids("map")) and (
                time.monotonic() < deadline):
            time.sleep(0.1)
        assert not progs & loaded_ids("prog") and not maps & loaded_ids("map")


def test_dropped_stream_is_released(caps: Capabilities) -> None:
    import gc

    before = _held_by_us()
    s: Optional[EventStream] = stream(caps, Kind.OPEN)
    assert _held_by_us() != before
    del s
    gc.collect()
    assert _held_by_us() == before


def test_bad_headers_tree_is_one_clear_error(caps: Capabilities,
                                            monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: os.PathLike[str]) -> None:
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    with pytest.raises(BackendError) as info:
        stream(caps, Kind.EXEC)
    message = str(info.value)
    assert "\n" not in message and str(tmp_path) in message
    assert "linux-headers-R-common" in message and "tools/" not in message


def test_bcc_comes_from_the_system_package(caps: Capabilities) -> None:
    path_before = list(sys.path)
    bcc = import_bcc(caps.bcc.location)
    assert hasattr(bcc, "BPF") and sys.path == path_before
    assert caps.bcc.location is not None
    assert os.path.dirname(bcc.__file__) == caps.bcc.location.rstrip("/")
