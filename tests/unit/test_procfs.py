"""hybridtrace.procfs against processes this test starts (no root needed)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

from hybridtrace import procfs

ARGV = [b"with space", b"new\nline", b"\xff\xfe", b""]


def test_live_child_facts() -> None:
    code = b"import sys; print(flush=True); sys.stdin.read()"
    child = subprocess.Popen([os.fsencode(sys.executable), b"-c", code, *ARGV],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert child.stdout is not None
    child.stdout.readline()  # its exec is complete (a vfork parent may run on earlier)
    try:
        assert procfs.cmdline(child.pid) == (os.fsencode(sys.executable), b"-c", code, *ARGV)
        assert procfs.uid(child.pid) == os.getuid()
        assert procfs.ppid(child.pid) == os.getpid()
        assert procfs.tgid(child.pid) == child.pid
        assert procfs.exe(child.pid) == os.fsencode(os.path.realpath(sys.executable))
        assert procfs.cwd(child.pid) == os.fsencode(os.getcwd())
        assert procfs.alive(child.pid)
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait()
        child.stdout.close()
    # reaped: every reader says "unknown", none guesses
    assert not procfs.alive(child.pid)
    assert procfs.cmdline(child.pid) is None and procfs.uid(child.pid) is None
    assert procfs.ppid(child.pid) is None and procfs.exe(child.pid) is None


def test_zombie_keeps_uid_but_not_argv() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped
    try:
        assert procfs.uid(child.pid) == os.getuid()
        assert procfs.cmdline(child.pid) is None
        assert procfs.alive(child.pid)
    finally:
        child.wait()


def test_fd_path_and_flags() -> None:
    with tempfile.NamedTemporaryFile(prefix="ht-procfs-\n\xff-") as tmp:
        fd = os.open(tmp.name, os.O_WRONLY | os.O_APPEND)
        try:
            assert procfs.fd_path(os.getpid(), fd) == os.fsencode(tmp.name)
            flags = procfs.fd_flags(os.getpid(), fd)
            assert flags is not None
            assert flags & os.O_ACCMODE == os.O_WRONLY and flags & os.O_APPEND
        finally:
            os.close(fd)
        assert procfs.fd_path(os.getpid(), fd) is None
    read_end, write_end = os.pipe()
    try:
        assert procfs.fd_path(os.getpid(), read_end) is None  # "pipe:[N]" is no path
    finally:
        os.close(read_end)
        os.close(write_end)


def test_comm_and_tgid_of_self() -> None:
    with open("/proc/self/comm", "rb") as handle:
        assert procfs.comm(os.getpid()) == handle.read().rstrip(b"\n")
    assert procfs.tgid(os.getpid()) == os.getpid()


def test_task_state_and_threads_now_name_one_task() -> None:
    import threading

    renamed = b"ht) x(\n"  # a comm with what stat's parentheses and lines could hide
    done = threading.Event()
    tids = []

    def run() -> None:
        tid = threading.get_native_id()
        with open(f"/proc/self/task/{tid}/comm", "wb") as handle:
            handle.write(renamed)
        tids.append(tid)
        done.wait()

    thread = threading.Thread(target=run)
    thread.start()
    try:
        while not tids:
            time.sleep(0.001)
        listing = procfs.threads_now()
        state = procfs.task_state(tids[0])
        assert state is not None and state[1:] == (renamed[:15], os.getuid())
        now = listing[tids[0]]
        assert (now.tgid, now.comm, now.uid, now.start) == (os.getpid(), renamed[:15],
                                                             os.getuid(), state[0])
        assert listing[os.getpid()].tgid == os.getpid()
    finally:
        done.set()
        thread.join()
    # join() returns once the thread's Python state is released; the task itself
    # leaves /proc moments later.
    deadline = time.monotonic() + 5
    while procfs.task_state(tids[0]) is not None and time.monotonic() < deadline:
        time.sleep(0.001)
    assert procfs.task_state(tids[0]) is None  # gone: nothing, not another task's
