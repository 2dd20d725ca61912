"""Every execsnoop/opensnoop flag not covered by test_cli.py, against real processes.

Each test starts the command, waits until it is tracing, runs known processes
(unique names and paths in a tmp dir) and checks the flag's effect both ways:
what must be shown and what must not.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator, List, Sequence

import pytest

from hybridtrace import buffer_size, tracefs
from hybridtrace.capabilities import probe
from hybridtrace.selector import decide
from tests.conftest import require_backend
from tests.integration.conftest import leftovers
from tests.integration.polling import release
from tests.integration.test_cli import Tracer

BACKENDS = ["ebpf-core", "ftrace/uprobe"]
NOBODY = 65534
HHMMSS = re.compile(r"^\d\d:\d\d:\d\d$")

# Each thread of this process opens its own path in a loop; prints "PID TID0 TID1".
THREADS = """
import os, sys, threading, time
tids = {}
def loop(i):
    tids[i] = threading.get_native_id()
    while True:
        try:
            open(sys.argv[1 + i]).close()
        except OSError:
            pass
        time.sleep(0.05)
for i in range(2):
    threading.Thread(target=loop, args=(i,), daemon=True).start()
while len(tids) < 2:
    time.sleep(0.01)
print(os.getpid(), tids[0], tids[1], flush=True)
sys.stdin.read()
"""


def backend_for(label: str, kind: str) -> List[str]:
    backend, _, tier = label.partition("/")
    decision = decide(probe(), kind, backend, tier or None)
    if decision.chosen is None:
        require_backend(label, decision.failure())
    return ["--backend", backend] + (["--tier", tier] if tier else [])


@pytest.fixture(params=BACKENDS)
def exec_backend(request: pytest.FixtureRequest) -> Iterator[List[str]]:
    yield backend_for(str(request.param), "exec")


@pytest.fixture(params=BACKENDS)
def open_backend(request: pytest.FixtureRequest) -> Iterator[List[str]]:
    yield backend_for(str(request.param), "open")


def finish(tracer: Tracer) -> str:
    time.sleep(0.8)  # let the last events drain
    if tracer.proc.poll() is None:
        os.kill(tracer.proc.pid, signal.SIGTERM)
    # ftrace/uprobe exec sessions take seconds to remove their probes on a loaded machine
    raw_out, raw_err = tracer.proc.communicate(timeout=90)
    out, err = raw_out.decode("utf-8", "strict"), raw_err.decode()
    assert tracer.proc.returncode == 0, err
    assert not leftovers(tracer.proc.pid)
    return out


def rows(out: str, pid: int, pid_col: int) -> List[List[str]]:
    """Data lines (header skipped) whose PID column is ``pid``, split in columns."""
    return [ln.split() for ln in out.splitlines()[1:] if ln.split()[pid_col:pid_col + 1]
            == [str(pid)]]


def run(argv: Sequence[str], **kw: object) -> subprocess.Popen[bytes]:
    child: subprocess.Popen[bytes] = subprocess.Popen(  # type: ignore[call-overload]
        list(argv), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)
    child.wait()
    return child


def close_to_now(hhmmss: str) -> bool:
    now = time.time()
    return hhmmss in {time.strftime("%H:%M:%S", time.localtime(now - d)) for d in range(0, 60)}


def stop_worker(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


# ---------------------------------------------------------------- execsnoop


def test_execsnoop_wall_clock(exec_backend: List[str]) -> None:
    tracer = Tracer(["execsnoop", "-T", *exec_backend])
    child = run(["/bin/sleep", "0.1"])
    out = finish(tracer)
    assert out.splitlines()[0].split()[:3] == ["TIME", "PCOMM", "PID"], out
    mine = rows(out, child.pid, 2)
    assert mine, out
    assert HHMMSS.match(mine[0][0]) and close_to_now(mine[0][0]), mine
    assert mine[0][1] == "sleep" and mine[0][5:] == ["/bin/sleep", "0.1"]


def test_execsnoop_relative_time(exec_backend: List[str]) -> None:
    tracer = Tracer(["execsnoop", "-t", *exec_backend])
    first = run(["/bin/sleep", "0.1"])
    time.sleep(0.5)
    second = run(["/bin/sleep", "0.1"])
    out = finish(tracer)
    assert out.splitlines()[0].split()[:3] == ["TIME(s)", "PCOMM", "PID"], out
    a, b = rows(out, first.pid, 2), rows(out, second.pid, 2)
    assert a and b, out
    t1, t2 = float(a[0][0]), float(b[0][0])
    assert not HHMMSS.match(a[0][0])
    assert 0 <= t1 < 60 and t2 - t1 >= 0.4, (t1, t2)  # seconds since start, increasing


def test_execsnoop_both_time_columns(exec_backend: List[str]) -> None:
    tracer = Tracer(["execsnoop", "-T", "-t", "-U", *exec_backend])
    child = run(["/bin/sleep", "0.1"])
    out = finish(tracer)
    assert out.splitlines()[0].split()[:4] == ["TIME", "TIME(s)", "UID", "PCOMM"], out
    mine = rows(out, child.pid, 4)
    assert mine, out
    assert HHMMSS.match(mine[0][0]) and close_to_now(mine[0][0]), mine
    assert 0 <= float(mine[0][1]) < 60 and mine[0][2] == "0" and mine[0][3] == "sleep"


def test_execsnoop_name_regex(exec_backend: List[str], tmp_path: Path) -> None:
    tag = f"{os.getpid() % 100000}"
    yes, no = tmp_path / f"htyes{tag}", tmp_path / f"htno{tag}"
    yes.symlink_to("/bin/sleep")
    no.symlink_to("/bin/sleep")
    tracer = Tracer(["execsnoop", "-n", f"^htyes{tag}$", *exec_backend])
    shown = run([str(yes), "0.1"])
    hidden = run([str(no), "0.1"])
    plain = run(["/bin/sleep", "0.1"])
    out = finish(tracer)
    assert [r[0] for r in rows(out, shown.pid, 1)] == [f"htyes{tag}"], out
    assert not rows(out, hidden.pid, 1) and not rows(out, plain.pid, 1), out
    assert all(ln.split()[0] == f"htyes{tag}" for ln in out.splitlines()[1:]), out


def test_execsnoop_parent_pid(exec_backend: List[str]) -> None:
    # waits for a go on stdin, so it exists before the tracer starts; ":" at the end keeps
    # sh from exec'ing the last command itself: both sleeps are its children
    parent = subprocess.Popen(["/bin/sh", "-c", "read go; /bin/sleep 0.11; /bin/sleep 0.12; :"],
                              stdin=subprocess.PIPE)
    tracer = Tracer(["execsnoop", "-P", str(parent.pid), *exec_backend])
    release(parent)
    sibling = run(["/bin/sleep", "0.13"])  # a child of this test, not of parent
    out = finish(tracer)
    data = [ln.split() for ln in out.splitlines()[1:]]
    mine = [r for r in data if r[2] == str(parent.pid)]
    assert sorted(r[-1] for r in mine) == ["0.11", "0.12"], out
    assert all(r[2] == str(parent.pid) for r in data), out
    assert not rows(out, sibling.pid, 1) and not rows(out, parent.pid, 1), out


def test_execsnoop_max_args(exec_backend: List[str]) -> None:
    marker = f"ht-max-{os.getpid()}"
    tracer = Tracer(["execsnoop", "--max-args", "3", *exec_backend])
    long = run(["/bin/echo", marker, "b2", "c3", "d4"])
    short = run(["/bin/echo", marker, "ok"])  # exactly 3: not cut
    out = finish(tracer)
    cut = [ln for ln in out.splitlines() if ln.split()[1:2] == [str(long.pid)]]
    whole = [ln for ln in out.splitlines() if ln.split()[1:2] == [str(short.pid)]]
    assert cut and whole, out
    assert cut[0].split(None, 4)[4] == f"/bin/echo {marker} b2 ..."
    assert "c3" not in cut[0] and "d4" not in cut[0]
    assert whole[0].split(None, 4)[4] == f"/bin/echo {marker} ok"


def test_execsnoop_quiet(exec_backend: List[str]) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "hybridtrace", "execsnoop", "-Q", *exec_backend],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    header = proc.stdout.readline().decode()  # written once the session is tracing
    assert header.split()[:2] == ["PCOMM", "PID"], header
    child = run(["/bin/sleep", "0.1"])
    time.sleep(0.8)
    os.kill(proc.pid, signal.SIGTERM)
    rest, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err
    assert rows(header + rest.decode(), child.pid, 1), rest  # events still shown
    assert err == b""  # no start line, no summary
    assert not leftovers(proc.pid)


# ---------------------------------------------------------------- opensnoop


def test_opensnoop_seconds_since_first_event(open_backend: List[str], tmp_path: Path) -> None:
    target = tmp_path / "clock"
    target.write_text("x")
    tracer = Tracer(["opensnoop", "-T", *open_backend])
    first = run(["/bin/cat", str(target)])
    time.sleep(0.5)
    second = run(["/bin/cat", str(target)])
    out = finish(tracer)
    assert out.splitlines()[0].split()[:3] == ["TIME(s)", "PID", "COMM"], out
    times = [float(ln.split()[0]) for ln in out.splitlines()[1:]]
    # events from different CPUs may arrive slightly out of order, as in BCC
    assert times and times[0] == 0.0 and min(times) > -0.1, out
    a = [r for r in rows(out, first.pid, 1) if r[-1] == str(target)]
    b = [r for r in rows(out, second.pid, 1) if r[-1] == str(target)]
    assert a and b, out
    assert re.fullmatch(r"\d+\.\d{9}", a[0][0]), a  # BCC's %-14.9f
    assert float(b[0][0]) - float(a[0][0]) >= 0.4


class Holder:
    """A shell that, once told, opens ``path`` itself and stays alive until ended.

    Alive, because ftrace reads a process's uid from /proc after the fact; told
    after it has blocked once, because ftrace's comm cache is only refreshed when
    a task is scheduled (on ftrace, a process that opens right after exec can show
    its pre-exec comm, or none once it is gone).
    """

    def __init__(self, path: Path, shell: str = "/bin/sh", uid: int = 0) -> None:
        self.proc = subprocess.Popen(
            [shell, "-c", 'echo ready; read go; read x <"$0"; read done', str(path)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            preexec_fn=(lambda: os.setuid(uid)) if uid else None,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        assert self.proc.stdout.readline() == b"ready\n"
        self.pid = self.proc.pid

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"go\n")
        self.proc.stdin.flush()

    def end(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


def hold_and_open(tracer_args: List[str], *holders: tuple[Path, str, int]) -> tuple[str, List[int]]:
    """Run ``hybridtrace tracer_args`` while each (path, shell, uid) holder opens its path."""
    tracer = Tracer(tracer_args)
    started: List[Holder] = []
    try:
        for path, shell, uid in holders:
            started.append(Holder(path, shell, uid))
        time.sleep(0.3)  # let them block in `read go`
        for holder in started:
            holder.go()
        time.sleep(0.5)
        out = finish(tracer)
    finally:
        for holder in started:
            holder.end()
    return out, [h.pid for h in started]


def test_opensnoop_uid_column(open_backend: List[str], tmp_path: Path) -> None:
    target = tmp_path / "uid"
    target.write_text("x")
    out, (nobody, root) = hold_and_open(["opensnoop", "-U", *open_backend],
                                        (target, "/bin/sh", NOBODY), (target, "/bin/sh", 0))
    assert out.splitlines()[0].split()[:3] == ["UID", "PID", "COMM"], out
    theirs = [r for r in rows(out, nobody, 1) if r[-1] == str(target)]
    mine = [r for r in rows(out, root, 1) if r[-1] == str(target)]
    assert theirs and mine, out
    assert theirs[0][0] == str(NOBODY) and mine[0][0] == "0"


def threads_worker(*paths: Path) -> tuple[subprocess.Popen[bytes], List[int]]:
    proc = subprocess.Popen([sys.executable, "-c", THREADS, *map(str, paths)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    return proc, [int(x) for x in proc.stdout.readline().split()]


def test_opensnoop_pid(open_backend: List[str], tmp_path: Path) -> None:
    a, b = tmp_path / "pid-a", tmp_path / "pid-b"
    a.write_text("a")
    b.write_text("b")
    traced, (pid, _, _) = threads_worker(a, a)
    other, (other_pid, _, _) = threads_worker(b, b)
    try:
        tracer = Tracer(["opensnoop", "-p", str(pid), *open_backend])
        time.sleep(0.5)
        run(["/bin/cat", str(a)])  # another process opening the same path
        out = finish(tracer)
    finally:
        stop_worker(traced)
        stop_worker(other)
    data = [ln.split() for ln in out.splitlines()[1:]]
    assert [r for r in data if r[-1] == str(a)], out
    assert all(r[0] == str(pid) for r in data), out
    assert not [r for r in data if r[-1] == str(b) or r[0] == str(other_pid)], out


def test_opensnoop_tid(open_backend: List[str], tmp_path: Path) -> None:
    a, b = tmp_path / "tid-a", tmp_path / "tid-b"
    a.write_text("a")
    b.write_text("b")
    worker, (pid, tid_a, _) = threads_worker(a, b)
    try:
        tracer = Tracer(["opensnoop", "-t", str(tid_a), *open_backend])
        time.sleep(0.5)
        out = finish(tracer)
    finally:
        stop_worker(worker)
    data = [ln.split() for ln in out.splitlines()[1:]]
    assert out.splitlines()[0].split()[0] == "TID", out  # BCC's header with -t
    assert [r for r in data if r[-1] == str(a) and r[0] == str(tid_a)], out
    assert not [r for r in data if r[-1] == str(b)], out  # same process, other thread
    assert pid != tid_a


def test_opensnoop_name(open_backend: List[str], tmp_path: Path) -> None:
    tag = f"{os.getpid() % 100000}"
    yes, no = tmp_path / f"xhtoyes{tag}x", tmp_path / f"htonope{tag}"
    yes.symlink_to("/bin/sh")
    no.symlink_to("/bin/sh")
    target = tmp_path / "name"
    target.write_text("x")
    out, (shown, hidden) = hold_and_open(["opensnoop", "-n", f"htoyes{tag}", *open_backend],
                                         (target, str(yes), 0), (target, str(no), 0))
    assert [r for r in rows(out, shown, 0) if r[-1] == str(target)], out
    assert not rows(out, hidden, 0), out
    assert all(f"htoyes{tag}" in ln.split()[1] for ln in out.splitlines()[1:]), out


def test_opensnoop_flag_filter(open_backend: List[str], tmp_path: Path) -> None:
    created, existing = tmp_path / "created", tmp_path / "existing"
    existing.write_text("x")
    tracer = Tracer(["opensnoop", "-f", "O_CREAT", "-e", *open_backend])
    shell = run(["/bin/sh", "-c", ': > "$0"; /bin/cat "$1"', str(created), str(existing)])
    out = finish(tracer)
    data = [ln.split() for ln in out.splitlines()[1:]]
    assert [r for r in data if r[0] == str(shell.pid) and r[-1] == str(created)], out
    assert not [r for r in data if r[-1] == str(existing)], out  # O_RDONLY open
    assert all(int(r[4], 8) & os.O_CREAT for r in data), out  # FLAGS column


def test_opensnoop_full_path(open_backend: List[str], tmp_path: Path) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    (cwd / "relative").write_text("x")
    absolute = tmp_path / "absolute"
    absolute.write_text("x")
    tracer = Tracer(["opensnoop", "-F", *open_backend])
    # the shell opens both itself and stays alive (its /proc/PID/cwd readable) until told
    shell = subprocess.Popen(["/bin/sh", "-c", 'exec 3<relative 4<"$0"; read done', str(absolute)],
                             cwd=str(cwd), stdin=subprocess.PIPE)
    try:
        time.sleep(1.0)
        out = finish(tracer)
    finally:
        assert shell.stdin is not None
        shell.stdin.close()
        shell.wait(timeout=10)
    paths = [r[-1] for r in rows(out, shell.pid, 0)]
    assert str(cwd / "relative") in paths and str(absolute) in paths, out
    assert "relative" not in paths, out


def test_opensnoop_user(open_backend: List[str], tmp_path: Path) -> None:
    theirs, mine = tmp_path / "user-nobody", tmp_path / "user-root"
    mine.write_text("x")  # theirs is left missing: tmp_path is root-only anyway
    out, (nobody, root) = hold_and_open(["opensnoop", "-u", "nobody", *open_backend],
                                        (theirs, "/bin/sh", NOBODY), (mine, "/bin/sh", 0))
    assert [r for r in rows(out, nobody, 0) if r[-1] == str(theirs)], out
    assert not rows(out, root, 0), out
    assert str(mine) not in out


def test_opensnoop_buffer_pages(open_backend: List[str]) -> None:
    """-b N: N pages per CPU, as BCC's perf buffers; the session says what it made of it."""
    tracer = Tracer(["opensnoop", "-b", "4", *open_backend])
    line = tracer.start_line
    if "ftrace" in open_backend:
        kb = buffer_size.ftrace_kb(4)
        assert f"{kb} KiB buffer per CPU" in line, line
        name = re.search(r"tracefs instance (hybridtrace_\d+_\d+)", line)
        assert name, line
        path = tracefs.find()
        assert path is not None
        with open(f"{path}/instances/{name.group(1)}/buffer_size_kb") as handle:
            assert int(handle.read()) >= kb  # the kernel may round up (6.1: 8195 for 8192)
    else:
        pages = buffer_size.ring_pages(4, buffer_size.possible_cpus())
        assert f"ring buffer {pages * buffer_size.PAGE_SIZE >> 10} KiB" in line, line
    finish(tracer)
