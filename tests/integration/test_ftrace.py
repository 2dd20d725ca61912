"""The ftrace stream against real processes, per tier, with nothing left behind.

Streams are opened directly (open_ftrace_stream) so tests can reach what the
public API hides: a tiny buffer for the overrun test, the instance path, the
number of records decoded.
"""

from __future__ import annotations

import functools
import gc
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Iterator, List, Optional

import pytest

import hybridtrace
from hybridtrace import kernel_state, tracefs
from hybridtrace.backends.ftrace import debuginfo
from hybridtrace.backends.ftrace.settings import READER_ENV
from hybridtrace.backends.ftrace.stream import FtraceStream, open_ftrace_stream
from hybridtrace.capabilities import probe
from hybridtrace.capabilities.model import Capabilities
from hybridtrace.events import Event, ExecEvent, LostEvent, OpenEvent, Source
from hybridtrace.request import Filters, Kind, TraceRequest
from hybridtrace.selector import decide
from hybridtrace.vocabulary import FTRACE_TIERS
from tests.conftest import TIME_SCALE, require_backend
from tests.integration import polling
from tests.integration.conftest import leftovers

TIERS = list(FTRACE_TIERS)
EXACT = {"kprobe", "eprobe", "uprobe"}  # strings read at the call, not from /proc
HOSTILE = [b"with space", b"quote\"'s", b"new\nline", b"\xff\xfe not utf-8", b"\x1b[31mred",
           b'k=v s="x"', b"-12345 [000] ....  1.0: sys_openat -> 0x3"]


@pytest.fixture(scope="module")
def caps() -> Capabilities:
    return probe()


@pytest.fixture(params=TIERS)
def tier(request: pytest.FixtureRequest, caps: Capabilities) -> str:
    name = str(request.param)
    decision = decide(caps, "exec", "ftrace", name)
    if decision.chosen is None:
        require_backend(f"ftrace/{name}", decision.failure())
    return name


@pytest.fixture(params=["raw", "text"])
def reader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both readers: per-CPU binary pages (the default) and trace_pipe text."""
    monkeypatch.setenv(READER_ENV, str(request.param))
    return str(request.param)


def open_stream(caps: Capabilities, tier: str, kind: Kind, buffer_kb: Optional[int] = None,
                **filters: object) -> FtraceStream:
    decision = decide(caps, kind.value, "ftrace", tier)  # the tier fixture judged exec
    if decision.chosen is None:
        require_backend(f"ftrace/{tier}", decision.failure())
    request = TraceRequest(kind, Filters(**filters))  # type: ignore[arg-type]
    return open_ftrace_stream(request, caps, tier, buffer_kb)


# Every wait here is for events the test is about: not seeing them in time fails.
collect = functools.partial(polling.collect, strict=True)
execs, opens = polling.execs_of, polling.opens_of


def test_exec_hostile_argv_and_failed_exec(caps: Capabilities, tier: str, reader: str) -> None:
    missing = f"/nonexistent-{os.getpid()}/prog".encode()
    with open_stream(caps, tier, Kind.EXEC) as stream:
        assert stream.reader_kind == reader
        assert f"ftrace/{tier}" in stream.description
        assert stream.instance_path is not None and os.path.isdir(stream.instance_path)
        child = subprocess.Popen([b"/bin/sh", b"-c", b"sleep 0.5", b"sh", *HOSTILE])
        with pytest.raises(FileNotFoundError):
            subprocess.Popen([missing, b"x y"])
        events = collect(stream, lambda ev: bool(execs(ev, child.pid)) and any(
            isinstance(e, ExecEvent) and e.retval == -2 and e.ppid == os.getpid()
            for e in ev))
        child.wait()
    ok = execs(events, child.pid)[0]
    assert (ok.retval, ok.ppid, ok.uid, ok.comm) == (0, os.getpid(), 0, b"sh")
    assert ok.filename == b"/bin/sh" and ok.filename_source is Source.TRACEPOINT
    want = (b"/bin/sh", b"-c", b"sleep 0.5", b"sh", *HOSTILE)
    if tier in EXACT:
        assert ok.argv == want
        assert ok.argv_source in (Source.LIBC_PROBE, Source.SYSCALL_ENTRY)
    else:
        assert ok.argv in (None, want)
        assert ok.argv is None or ok.argv_source is Source.PROCFS
    bad = next(e for e in events if isinstance(e, ExecEvent) and e.retval == -2
               and e.ppid == os.getpid())
    assert bad.failed and bad.syscall == "execve"
    if tier in EXACT:
        assert bad.filename == missing and bad.argv == (missing, b"x y")
    else:
        assert bad.filename is None and bad.argv is None


OPENER = (
    "import os, sys\n"
    "fd = os.open(sys.argv[1], os.O_RDONLY)\n"
    "try:\n    os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT, 0o640)\n"
    "except OSError as e:\n    print(e.errno, flush=True)\n"
    "print(fd, flush=True)\n"
    "sys.stdin.read()\n"
)


def test_open_paths_fd_and_errno(caps: Capabilities, tier: str, reader: str) -> None:
    with tempfile.NamedTemporaryFile(prefix="ht-ftrace-\n\"x=y\xff-".encode()) as tmp:
        missing = tmp.name + b".dir/missing"
        with open_stream(caps, tier, Kind.OPEN) as stream:
            assert stream.reader_kind == reader
            child = subprocess.Popen([sys.executable, "-c", OPENER, tmp.name, missing],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            assert child.stdout is not None and child.stdin is not None
            err = int(child.stdout.readline())
            fd = int(child.stdout.readline())
            events = collect(stream, lambda ev: any(e.fd == fd for e in opens(ev, child.pid))
                             and any(e.errno == err and e.mode == 0o640
                                     for e in opens(ev, child.pid)))
            child.stdin.close()
            child.wait()
            child.stdout.close()
    ok = [e for e in opens(events, child.pid) if e.fd == fd][-1]
    bad = next(e for e in opens(events, child.pid) if e.errno == err and e.mode == 0o640)
    assert err == 2 and ok.errno is None and bad.fd is None
    assert ok.tid == child.pid and ok.uid == 0 and ok.dfd in (None, -100)
    assert ok.flags is not None and ok.flags & os.O_ACCMODE == os.O_RDONLY
    assert bad.flags is not None and bad.flags & os.O_CREAT
    # /proc/PID/fd/N is only read for the last open of an fd: never a reused one
    assert tmp.name not in [e.path for e in opens(events, child.pid) if e is not ok]
    assert ok.path == tmp.name  # exact from a probe, or /proc/PID/fd while the fd is open
    if tier in EXACT:
        assert bad.path == missing
        assert ok.path_source in (Source.LIBC_PROBE, Source.SYSCALL_ENTRY)
    else:
        assert bad.path is None and ok.path_source is Source.PROCFS


def test_reader_option_beats_the_environment(caps: Capabilities, tier: str,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """trace(ftrace_reader=...) and --ftrace-reader pick the reader; the variable is the
    fallback, so a request for the text reader gets it whatever the environment says."""
    monkeypatch.setenv(READER_ENV, "raw")
    for choice, note in (("text", "trace_pipe text"), ("raw", "per-CPU binary buffers")):
        with hybridtrace.trace("open", "ftrace", tier=tier, ftrace_reader=choice) as session:
            assert note in session.description
    monkeypatch.setenv(READER_ENV, "pipe")
    with pytest.raises(hybridtrace.StartError, match=f"{READER_ENV}='pipe'"):
        hybridtrace.trace("open", "ftrace", tier=tier).close()


def test_loader_opens_have_paths(caps: Capabilities, tier: str) -> None:
    """The dynamic loader's opens, which bypass libc's exported functions."""
    loaders = debuginfo.dynamic_loaders([os.path.realpath(lib.path) for lib in caps.c_libraries])
    with open_stream(caps, tier, Kind.OPEN) as stream:
        child = subprocess.Popen(["/bin/cat", "/etc/hostname"], stdout=subprocess.DEVNULL)
        events = collect(stream, lambda ev: any(e.fd is not None and e.path == b"/etc/hostname"
                                                for e in opens(ev, child.pid))
                         or (tier == "tracepoint" and len(opens(ev, child.pid)) >= 2))
        child.wait()
    cache = [e for e in opens(events, child.pid) if e.path == b"/etc/ld.so.cache"]
    if tier in ("kprobe", "eprobe") or (
            tier == "uprobe" and any(debuginfo.debug_file(ld) for ld in loaders)):
        assert cache and cache[0].fd is not None
    assert all(e.path is None or e.path_source is not None for e in opens(events, child.pid))


def test_uid_and_comm_filters(caps: Capabilities, tier: str, tmp_path: os.PathLike) -> None:
    comm = b"htcomm%d" % (os.getpid() % 100000)
    prog = os.path.join(str(tmp_path), comm.decode())
    shutil.copy("/bin/cat", prog)
    os.chmod(str(tmp_path), 0o755)
    target = f"/nonexistent-{os.getpid()}"
    with open_stream(caps, tier, Kind.OPEN, comm=comm) as by_comm, \
            open_stream(caps, tier, Kind.EXEC, uid=65534) as by_uid:
        named = subprocess.Popen([prog, target], stderr=subprocess.DEVNULL)
        other = subprocess.Popen(["/bin/cat", target], stderr=subprocess.DEVNULL)
        nobody = subprocess.Popen(["/bin/sh", "-c", "sleep 0.3"],
                                  preexec_fn=lambda: os.setuid(65534))
        root = subprocess.Popen(["/bin/sh", "-c", "sleep 0.3"])
        got_comm = collect(by_comm, lambda ev: any(e.errno == 2 for e in opens(ev, named.pid)))
        got_uid = collect(by_uid, lambda ev: bool(execs(ev, nobody.pid)))
        for proc in (named, other, nobody, root):
            proc.wait()
        got_comm += by_comm.poll(0.3)
        got_uid += by_uid.poll(0.3)
    assert all(e.comm == comm for e in got_comm if isinstance(e, OpenEvent))
    assert not opens(got_comm, other.pid)
    assert all(e.uid == 65534 for e in got_uid if isinstance(e, ExecEvent))
    assert not execs(got_uid, root.pid)


def test_pid_filter_and_two_sessions(caps: Capabilities, tier: str) -> None:
    child = subprocess.Popen([sys.executable, "-c", "import sys; print('ready', flush=True);"
                              "sys.stdin.readline();"
                              "[open('/etc/hostname').close() for _ in range(5)]"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert child.stdin is not None and child.stdout is not None
    assert child.stdout.readline() == b"ready\n"  # its start-up opens are over
    with open_stream(caps, tier, Kind.OPEN, pid=child.pid) as one, \
            open_stream(caps, tier, Kind.OPEN) as two:
        child.stdin.write(b"go\n")
        child.stdin.close()
        child.wait()
        child.stdout.close()

        def five(ev: List[Event]) -> bool:
            return sum(e.fd is not None for e in opens(ev, child.pid)) >= 5

        first = collect(one, five)
        second = collect(two, five)
        first += one.poll(0.3)
        second += two.poll(0.3)
    assert {e.pid for e in first if not isinstance(e, LostEvent)} == {child.pid}
    for events in (first, second):
        # each session sees each of the five opens exactly once
        done = [e for e in opens(events, child.pid) if e.fd is not None]
        assert len(done) == 5
        assert all(e.path in (None, b"/etc/hostname") for e in done)
        if tier in EXACT:
            assert all(e.path == b"/etc/hostname" for e in done)


def test_close_gc_and_nothing_left(caps: Capabilities, tier: str) -> None:
    stream = open_stream(caps, tier, Kind.EXEC)
    path = stream.instance_path
    assert path is not None and os.path.isdir(path)
    assert leftovers(os.getpid())
    del stream
    gc.collect()
    assert not os.path.exists(path)
    assert not leftovers(os.getpid())
    again = open_stream(caps, tier, Kind.OPEN)
    again.close()
    again.close()  # idempotent
    assert not leftovers(os.getpid())


KEEPER = (
    "import sys, time\n"
    "from hybridtrace.capabilities import probe\n"
    "from hybridtrace.backends.ftrace.stream import open_ftrace_stream\n"
    "from hybridtrace.request import Kind, TraceRequest\n"
    "s = open_ftrace_stream(TraceRequest(Kind(sys.argv[2])), probe(), sys.argv[1])\n"
    "print('ready', flush=True)\n"
    "time.sleep(60)\n"
)


def _reaper_of(owner: int) -> int:
    """The pid of the watcher our session started (hybridtrace.backends.ftrace.reaper)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
        except OSError:
            continue
        if b"hybridtrace.backends.ftrace.reaper" in args and str(owner).encode() in args:
            return int(entry)
    raise AssertionError(f"no reaper for {owner}")


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "X"


def _killed_session(tier: str, kind: str, reaper_too: bool = False) -> int:
    proc = subprocess.Popen([sys.executable, "-c", KEEPER, tier, kind], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"ready\n"
    assert leftovers(proc.pid)
    if reaper_too:  # started by the session we started: ended by its pid
        reaper = _reaper_of(proc.pid)
        os.kill(reaper, signal.SIGKILL)
        while _state(reaper) not in ("Z", "X"):
            time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    return proc.pid


def test_sigkilled_session_stops_recording_within_a_second(caps: Capabilities,
                                                           tier: str) -> None:
    proc = subprocess.Popen([sys.executable, "-c", KEEPER, tier, "open"], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"ready\n"
    reaper = _reaper_of(proc.pid)
    assert leftovers(proc.pid)
    proc.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    proc.wait()
    proc.stdout.close()
    path = tracefs.find() or ""
    while kernel_state.instances(path, owner=proc.pid) and time.monotonic() < killed + 10:
        time.sleep(0.02)
    stopped = time.monotonic() - killed  # its instance, and so its recording, is gone
    while leftovers(proc.pid) and time.monotonic() < killed + 10 * TIME_SCALE:
        time.sleep(0.02)
    assert not leftovers(proc.pid)
    assert stopped < 1.0 * TIME_SCALE, f"the killed session recorded on for {stopped:.2f} s"
    while _state(reaper) not in ("Z", "X") and time.monotonic() < killed + 5:
        time.sleep(0.02)
    assert _state(reaper) in ("Z", "X")  # the watcher does its job and goes


def test_clean_close_leaves_no_watcher(caps: Capabilities, tier: str) -> None:
    with open_stream(caps, tier, Kind.EXEC):
        reaper = _reaper_of(os.getpid())
    assert _state(reaper) == "X"  # waited for: gone, not left a zombie


def test_sigkilled_session_without_its_reaper_is_cleaned_up_later(caps: Capabilities,
                                                                 tier: str) -> None:
    dead = _killed_session(tier, "exec", reaper_too=True)
    assert leftovers(dead)  # nothing of a SIGKILLed process cleans itself
    with open_stream(caps, tier, Kind.OPEN) as stream:
        assert "leftover" in stream.description
        assert not leftovers(dead)
    dead = _killed_session(tier, "open", reaper_too=True)
    done = subprocess.run([sys.executable, "-m", "hybridtrace", "cleanup"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert f"hybridtrace_{dead}_" in done.stdout
    assert not leftovers(dead)


def test_cleanup_sees_leftovers_where_tracefs_is_not_mounted(caps: Capabilities,
                                                              tier: str) -> None:
    """Instances outlive a tracefs unmount; cleanup looks through a private mount of it."""
    dead = _killed_session(tier, "exec", reaper_too=True)
    hide = ('umount /sys/kernel/tracing 2>/dev/null; umount -l /sys/kernel/debug 2>/dev/null;'
            ' exec "$@"')
    done = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", hide,
                           "sh", sys.executable, "-m", "hybridtrace", "cleanup"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "private mount" in done.stderr
    assert f"hybridtrace_{dead}_" in done.stdout
    assert not leftovers(dead)


MUSL_C = r"""
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
int main(int argc, char **argv) {
    char *args[] = {"true", "musl arg", "x\ny", NULL};
    char *env[] = {NULL};
    int fd = open(argv[1], O_RDONLY);
    int bad = open(argv[2], O_RDONLY);
    printf("%d %d\n", fd, bad);
    fflush(stdout);
    execve("/bin/true", args, env);
    return 1;
}
"""


def test_musl_programs(caps: Capabilities, tier: str, tmp_path: os.PathLike) -> None:
    """Programs linked against musl: the uprobe tier probes musl's entry points too."""
    musl_gcc = shutil.which("musl-gcc")
    if musl_gcc is None or not any("musl" in lib.path for lib in caps.c_libraries):
        pytest.skip("musl is not installed (Debian: musl musl-tools)")
    src = os.path.join(str(tmp_path), "m.c")
    exe = os.path.join(str(tmp_path), "htmusl")
    with open(src, "w") as handle:
        handle.write(MUSL_C)
    subprocess.run([musl_gcc, "-o", exe, src], check=True)
    target = os.fsencode(os.path.join(str(tmp_path), "musl path"))
    open(target, "w").close()
    missing = target + b".missing"
    with open_stream(caps, tier, Kind.OPEN) as of, open_stream(caps, tier, Kind.EXEC) as ex:
        child = subprocess.Popen([os.fsencode(exe), target, missing], stdout=subprocess.PIPE)
        assert child.stdout is not None
        fd, bad = (int(v) for v in child.stdout.readline().split())
        child.wait()
        child.stdout.close()
        opened = collect(of, lambda ev: any(e.errno == 2 for e in opens(ev, child.pid)))
        execd = collect(ex, lambda ev: len(execs(ev, child.pid)) >= 2)
    assert bad == -1
    ok = [e for e in opens(opened, child.pid) if e.fd == fd][-1]
    err = [e for e in opens(opened, child.pid) if e.errno == 2][-1]
    true = next(e for e in execs(execd, child.pid) if e.filename == b"/bin/true")
    assert true.retval == 0 and true.ppid == os.getpid()
    if tier in EXACT:
        assert ok.path == target and err.path == missing
        assert true.argv == (b"true", b"musl arg", b"x\ny")
    else:
        assert err.path is None and true.argv in (None, (b"true", b"musl arg", b"x\ny"))


BURST_C = r"""
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
int main(int argc, char **argv) {
    char go;
    int n = atoi(argv[2]);
    if (read(0, &go, 1) != 1) return 1;
    for (int i = 0; i < n; i++) {
        int fd = open(argv[1], O_RDONLY);
        if (fd >= 0) close(fd);
    }
    return 0;
}
"""


def build_burst(tmp_path: os.PathLike) -> str:
    """The burst program: opens a path N times once it reads a byte on stdin."""
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        pytest.fail("needs a C compiler (tools/setup.sh installs gcc)")
    src = os.path.join(str(tmp_path), "burst.c")
    exe = os.path.join(str(tmp_path), "burst")
    with open(src, "w") as handle:
        handle.write(BURST_C)
    subprocess.run([gcc, "-O2", "-o", exe, src], check=True)
    return exe


def test_overrun_is_counted_exactly(caps: Capabilities, tier: str,
                                    tmp_path: os.PathLike) -> None:
    exe = build_burst(tmp_path)
    count = 5000  # records of ~60 bytes: far more than a 16 KiB per-CPU buffer holds
    child = subprocess.Popen([exe, "/etc/hostname", str(count)], stdin=subprocess.PIPE)
    assert child.stdin is not None
    # Only the child's records reach this instance (pid filter), so the number
    # the kernel produced is known: per open one probe record (exact tiers),
    # one entry and one exit record, and the close after it (entry and exit:
    # they prove /proc fd links, see fd_ledger.py).
    per_open = (3 if tier in EXACT else 2) + 2
    with open_stream(caps, tier, Kind.OPEN, buffer_kb=16, pid=child.pid) as stream:
        child.stdin.write(b"g")
        child.stdin.close()
        assert child.wait(timeout=300) == 0  # the burst runs while nobody reads
        events: List[Event] = []
        quiet = 0
        while quiet < 3:
            batch = stream.poll(0.3)
            events += batch
            quiet = 0 if batch else quiet + 1
        records = stream.records
        lost = stream.stats.lost
    losses = [e for e in events if isinstance(e, LostEvent)]
    assert losses and all(e.count > 0 and e.cpu is not None for e in losses)
    # The kernel counts records (several per open): an upper bound, and said to be one.
    assert all(not e.exact for e in losses)
    assert sum(e.count for e in losses) == lost > 0
    assert records + lost == per_open * count + 1  # and its sched_process_exit
    got = opens(events, child.pid)
    assert 0 < len(got) < count
    assert len(got) + lost >= count
    assert all(e.path in (None, b"/etc/hostname") for e in got)


@pytest.mark.parametrize("grace", [0.0, 30.0])
def test_ending_behind_loses_nothing_silently(caps: Capabilities, tier: str,
                                              tmp_path: os.PathLike, grace: float) -> None:
    """Session.drain: what the kernel recorded before the end is read, or counted lost."""
    exe = build_burst(tmp_path)
    count = 3000
    per_open = (3 if tier in EXACT else 2) + 2  # with the close after each open
    child = subprocess.Popen([exe, "/etc/hostname", str(count)], stdin=subprocess.PIPE)
    assert child.stdin is not None
    with hybridtrace.trace("open", "ftrace", tier=tier, pid=child.pid) as session:
        child.stdin.write(b"g")
        child.stdin.close()
        assert child.wait(timeout=300) == 0  # every record sits unread in the buffer
        events = session.drain(grace)
    got = opens(events, child.pid)
    lost = session.stats.lost
    if grace == 0.0:
        assert not got
        assert [e.where for e in events if isinstance(e, LostEvent)] == [
            "unread when the session ended"]
        assert lost == per_open * count + 1  # and its sched_process_exit
        assert not session.stats.lost_exact  # records, not events: an upper bound
    else:
        assert len(got) == count and lost == 0
        assert session.stats.captured == count


@pytest.fixture(autouse=True)
def _no_stray_children() -> Iterator[None]:
    yield
    gc.collect()


def test_short_lived_process_gets_its_own_comm_and_uid(caps: Capabilities, tier: str) -> None:
    """Read after the process is gone: comm and uid come from the task records.

    trace_pipe's comm cache showed such a process under its parent's name, and
    /proc has no uid for it any more; the binary reader tracks both, setuid included.
    """
    uid = 4321
    with tempfile.NamedTemporaryFile(prefix="ht-comm-") as tmp:
        os.chmod(tmp.name, 0o644)
        with open_stream(caps, tier, Kind.OPEN) as stream:
            assert stream.reader_kind == "raw"
            # python drops to uid 4321, execs cat, which opens the file and exits at once
            child = subprocess.Popen(
                [sys.executable, "-c",
                 f"import os, sys; os.setgid({uid}); os.setuid({uid});"
                 " os.execv('/bin/cat', ['cat', sys.argv[1]])", tmp.name],
                stdout=subprocess.DEVNULL)
            assert child.wait() == 0
            time.sleep(0.2)  # gone before we read
            events = collect(stream, lambda ev: any(e.comm == b"cat"
                                                    for e in opens(ev, child.pid)))
    got = [e for e in opens(events, child.pid) if e.comm == b"cat"]
    assert got and all(e.uid == uid for e in got)
    before = [e for e in opens(events, child.pid) if e.comm != b"cat"]
    assert before and all(e.uid == 0 for e in before)  # python's opens, before setuid
    if tier in EXACT:
        assert got[-1].path == tmp.name.encode() and got[-1].fd is not None


FD_REUSE_C = r"""
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
/* Every open it makes is O_NOCTTY (nothing else here uses it) and logged as
   "tid fd path": the ground truth. Phase 1: the main thread opens a, keeps it
   open a while, closes it; a second thread then opens b at the same fd and
   keeps it. Phase 2: threads open and close many files at the same few fds. */
static const char *dir;
static int rounds;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int logged_open(const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_RDONLY | O_NOCTTY);
    pthread_mutex_lock(&lock);
    printf("%ld %d %s\n", (long)syscall(SYS_gettid), fd, path);
    pthread_mutex_unlock(&lock);
    return fd;
}
static void *keep_b(void *arg) {
    int fd = logged_open("b");
    usleep(1000000);
    close(fd);
    return NULL;
}
static void *churn(void *arg) {
    long who = (long)arg;
    char name[32];
    for (int i = 0; i < rounds; i++) {
        snprintf(name, sizeof name, "f%ld-%d", who, i % 16);
        int fd = logged_open(name);
        if (i % 7 == 0) usleep(200);
        close(fd);
    }
    return NULL;
}
int main(int argc, char **argv) {
    pthread_t t[3];
    dir = argv[1];
    rounds = atoi(argv[2]);
    setvbuf(stdout, NULL, _IOLBF, 0);
    int fd = logged_open("a");
    usleep(300000);
    close(fd);
    pthread_create(&t[0], NULL, keep_b, NULL);
    pthread_join(t[0], NULL);
    for (long i = 1; i < 3; i++) pthread_create(&t[i], NULL, churn, (void *)i);
    for (int i = 1; i < 3; i++) pthread_join(t[i], NULL);
    printf("done\n");
    return 0;
}
"""


def build_c(tmp_path: os.PathLike, name: str, source: str) -> str:
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        pytest.fail("needs a C compiler (tools/setup.sh installs gcc)")
    src = os.path.join(str(tmp_path), f"{name}.c")
    exe = os.path.join(str(tmp_path), name)
    with open(src, "w") as handle:
        handle.write(source)
    subprocess.run([gcc, "-O2", "-pthread", "-o", exe, src], check=True)
    return exe


def test_reused_fds_never_get_another_files_path(caps: Capabilities, tier: str, reader: str,
                                                 tmp_path: os.PathLike) -> None:
    """A /proc fd link is kept only when proven to be the file this very open made.

    It used to be looked up per process, not per thread: a thread's open at fd 3
    got the path of a file the main thread had opened (and closed) at fd 3.
    """
    exe = build_c(tmp_path, "htfdreuse", FD_REUSE_C)
    files = os.path.join(str(tmp_path), "files")
    os.mkdir(files)
    names = ["a", "b"] + [f"f{w}-{i}" for w in (1, 2) for i in range(16)]
    for name in names:
        with open(os.path.join(files, name), "w") as handle:
            handle.write(name)
    rounds = 300
    with open_stream(caps, tier, Kind.OPEN) as stream:
        child = subprocess.Popen([exe, files, str(rounds)], stdout=subprocess.PIPE)
        assert child.stdout is not None
        lines: List[bytes] = []
        out = threading.Thread(target=lambda: lines.extend(child.stdout or ()))
        out.start()
        events: List[Event] = []
        while out.is_alive():  # the trace is read all the while the workload runs
            events += stream.poll(0.01)
        out.join()
        assert child.wait() == 0 and lines[-1] == b"done\n"
        child.stdout.close()
        truth = []
        for raw in lines[:-1]:
            tid, fd, path = raw.rstrip(b"\n").split(b" ", 2)
            truth.append((int(tid), int(fd), path))

        def mine(ev: List[Event]) -> List[OpenEvent]:
            return [e for e in ev if isinstance(e, OpenEvent) and e.tid in tids
                    and e.flags is not None and e.flags & os.O_NOCTTY]

        tids = {t for t, _fd, _path in truth}
        events = collect(stream, lambda ev: len(mine(events + ev)) >= len(truth)) + events
    assert len(truth) == 2 + 2 * rounds
    got = mine(sorted(events, key=lambda e: e.timestamp_ns))
    assert not [e for e in events if isinstance(e, LostEvent)]
    assert len(got) == len(truth)
    wrong = []
    for tid in tids:
        want = [(fd, path) for t, fd, path in truth if t == tid]
        have = [e for e in got if e.tid == tid]
        assert [e.fd for e in have] == [fd for fd, _path in want]
        wrong += [(e, path) for e, (_fd, path) in zip(have, want)
                  if e.path is not None and e.path != path]
    assert not wrong, wrong[:5]
    assert all(e.pid == child.pid for e in got)  # threads that exited before we read too
    # The two kept open long enough to be read, untouched meanwhile: right, not None.
    a, b = got[0], got[1]
    assert (a.tid, a.fd, a.path) == (child.pid, 3, truth[0][2])
    assert b.tid != child.pid and (b.fd, b.path) == (3, truth[1][2])
    if tier in EXACT:
        assert b.path_source in (Source.LIBC_PROBE, Source.SYSCALL_ENTRY)
    else:
        assert b.path_source is Source.PROCFS


THREAD_EXIT_C = r"""
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>
static const char *path;
static void *run(void *arg) {
    int fd = open(path, O_RDONLY | O_NOCTTY);
    printf("%ld %d\n", (long)syscall(SYS_gettid), fd);
    fflush(stdout);
    return NULL;
}
int main(int argc, char **argv) {
    pthread_t t;
    path = argv[1];
    pthread_create(&t, NULL, run, NULL);
    pthread_join(t, NULL);
    return 0;
}
"""


def test_thread_of_exited_process_keeps_its_pid(caps: Capabilities, tier: str, reader: str,
                                                tmp_path: os.PathLike) -> None:
    """pid is the process's even when it is gone before the records are read, never the tid.

    /proc/TID/status of a dead thread has no Tgid: the tid used to stand in.
    """
    exe = build_c(tmp_path, "htthrexit", THREAD_EXIT_C)
    with open_stream(caps, tier, Kind.OPEN) as stream:
        child = subprocess.Popen([exe, "/etc/hostname"], stdout=subprocess.PIPE)
        out, _err = child.communicate()
        assert child.returncode == 0
        tid, fd = (int(v) for v in out.split())
        time.sleep(0.2)  # gone, its threads too, before anything is read
        events = collect(stream, lambda ev: any(isinstance(e, OpenEvent) and e.tid == tid
                                                for e in ev))
    got = [e for e in events if isinstance(e, OpenEvent) and e.tid == tid]
    assert tid != child.pid and len(got) == 1 and got[0].fd == fd
    assert got[0].pid == child.pid  # from its task_newtask record
    assert all(e.pid == child.pid for e in events if isinstance(e, OpenEvent)
               and e.tid in (tid, child.pid))


@pytest.mark.parametrize("setting,value", [("tracing_on", "0"), ("buffer_size_kb", "64")])
def test_tampering_with_our_instance_is_reported_and_undone(caps: Capabilities, tier: str,
                                                            setting: str, value: str) -> None:
    """The kernel counts nothing lost when someone switches our recording off or shrinks our
    buffer: the session notices within a second, says so, and puts it back."""
    with hybridtrace.trace("open", "ftrace", tier=tier) as session:
        path = tracefs.find()
        assert path is not None
        (name,) = kernel_state.instances(path, owner=os.getpid())
        inst = os.path.join(path, "instances", name)
        with open(os.path.join(inst, "buffer_size_kb")) as f:
            size = f.read().strip()
        with open(os.path.join(inst, setting), "w") as f:
            f.write(value)
        changed = time.monotonic()
        gaps: List[LostEvent] = []
        while not gaps and time.monotonic() < changed + 5:
            gaps = [e for e in session.poll(0.1) if isinstance(e, LostEvent) and e.count is None]
        took = time.monotonic() - changed
        assert gaps, f"{setting}={value} went unnoticed"
        assert took < 1.5 * TIME_SCALE, f"noticed after {took:.2f} s"
        assert f"{setting} was" in gaps[0].where and "restored" in gaps[0].where
        assert not gaps[0].exact and session.stats.lost_unknown == 1
        with open(os.path.join(inst, "tracing_on")) as f:
            assert f.read().strip() == "1"
        with open(os.path.join(inst, "buffer_size_kb")) as f:
            assert f.read().strip() == size
