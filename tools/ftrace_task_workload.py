"""Children whose comm, uid and process change under the ftrace stream's eyes.

Used by tools/record_ftrace_stream.py (``--workload tasks``): each situation
is one the trace_pipe reader once reported wrongly (ground truth, issue 13),
and each child reports what it really was, which the recording keeps as the
expected values (bytes as hex):

- open: a process opens as root, calls setuid(65534), opens, renames itself
  to a name that fakes a ``task_rename`` field (``x newcomm=y``), opens, renames
  again, opens, then execs cat, which opens one more file; trace_pipe prints
  every one of those records with the comm its cache holds when the text is
  formatted (cat's), and /proc shows only the last uid;
- exec: a non-leader thread's failed execve (its process is not its tid), an
  fexecve (the new comm is the file's name, not /dev/fd/N's), and a process
  that exec's the same file twice in a row, whose /proc argv (read by the
  recorder while the second image waits) is the second exec's only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any, Dict, List

OPENER = r"""
import ctypes, json, os, sys
base = os.fsencode(sys.argv[1])
libc = ctypes.CDLL(None, use_errno=True)
out = []
def opened(name):
    path = base + b'/' + name
    fd = os.open(path, os.O_RDONLY)
    comm = open('/proc/self/comm', 'rb').read()[:-1]
    out.append({"path": path.hex(), "fd": fd, "uid": os.getuid(), "comm": comm.hex()})
opened(b'as-root')
os.setuid(65534)
opened(b'as-nobody')
libc.prctl(15, b'x newcomm=y', 0, 0, 0)  # PR_SET_NAME: a name that reads as a field
opened(b'renamed-hostile')
libc.prctl(15, b'z', 0, 0, 0)
opened(b'renamed-again')
print(json.dumps({"pid": os.getpid(), "opens": out}), flush=True)
sys.stdin.read()
os.execv('/bin/cat', ['cat', os.fsdecode(base + b'/by-cat')])
"""

THREAD_EXEC = r"""
import os, sys, threading
tids = []
def run():
    tids.append(threading.get_native_id())
    try:
        os.execv(sys.argv[1], [sys.argv[1], 'from-thread'])
    except OSError:
        pass
t = threading.Thread(target=run)
t.start()
t.join()
print(os.getpid(), tids[0], flush=True)
"""

FEXEC = "import os; fd = os.open('/bin/sleep', os.O_RDONLY); os.execve(fd, ['sleep', '0.5'], {})"
SECOND = [b"/bin/sh", b"-c", b"read x", b"second"]
FIRST = [b"/bin/sh", b"-c", b"exec /bin/sh -c 'read x' second", b"first"]


def open_workload(tmp: str) -> Dict[str, Any]:
    os.chmod(tmp, 0o755)  # the child reads on after setuid(65534)
    for name in ("as-root", "as-nobody", "renamed-hostile", "renamed-again", "by-cat"):
        with open(os.path.join(tmp, name), "w", encoding="ascii") as handle:
            handle.write(name)
        os.chmod(os.path.join(tmp, name), 0o644)
    child = subprocess.Popen([sys.executable, "-c", OPENER, tmp], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert child.stdout is not None and child.stdin is not None
    report: Dict[str, Any] = json.loads(child.stdout.readline())
    child.stdin.close()
    child.wait()
    child.stdout.close()
    report["opens"].append({"path": os.fsencode(os.path.join(tmp, "by-cat")).hex(),
                            "uid": 65534, "comm": b"cat".hex()})
    return {"tasks": "open", **report}


def exec_workload(tmp: str) -> Dict[str, Any]:
    missing = os.path.join(tmp, "no such", "prog")
    done = subprocess.run([sys.executable, "-c", THREAD_EXEC, missing], capture_output=True,
                          text=True, check=True)
    pid, tid = map(int, done.stdout.split())
    out: Dict[str, Any] = {"tasks": "exec", "thread_exec": {
        "pid": pid, "tid": tid, "filename": os.fsencode(missing).hex(), "retval": -2}}
    fexec = subprocess.Popen([sys.executable, "-c", FEXEC])
    out["fexec"] = {"pid": fexec.pid, "comm": _comm_once_exec_done(fexec.pid, b"sleep").hex()}
    fexec.wait()
    twice = subprocess.Popen(FIRST, stdin=subprocess.PIPE)
    assert twice.stdin is not None
    deadline = time.monotonic() + 5
    while _cmdline(twice.pid) != SECOND and time.monotonic() < deadline:
        time.sleep(0.01)
    exe = os.readlink(f"/proc/{twice.pid}/exe")
    cwd = os.readlink(f"/proc/{twice.pid}/cwd")
    argv = _cmdline(twice.pid)
    read_ns = time.monotonic_ns()
    twice.stdin.close()
    twice.wait()
    out["double_exec"] = {"pid": twice.pid, "first": [a.hex() for a in FIRST],
                          "second": [a.hex() for a in SECOND],
                          "proc": {"exe": os.fsencode(exe).hex(), "cwd": os.fsencode(cwd).hex(),
                                   "cmdline": [a.hex() for a in argv],
                                   "read_ns": read_ns}}
    return out


def _cmdline(pid: int) -> List[bytes]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().rstrip(b"\0").split(b"\0")
    except OSError:
        return []


def _comm_once_exec_done(pid: int, exe_name: bytes) -> bytes:
    """The comm of ``pid`` once it runs the exec'd file (read from /proc)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            if os.path.basename(os.readlink(f"/proc/{pid}/exe").encode()) == exe_name:
                with open(f"/proc/{pid}/comm", "rb") as handle:
                    return handle.read().rstrip(b"\n")
        except OSError:
            pass
        time.sleep(0.005)
    raise RuntimeError(f"pid {pid} never ran {exe_name!r}")
