"""Run a command as an unprivileged user that may use tracefs but not bpf():
the "unprivileged" variant. Setup (as root, guest only) gives group GID read
and write access to every tracefs file and sets kernel.unprivileged_bpf_disabled
to 1; the wrapper then drops to UID/GID, with no capabilities left.

    python -m tools.vm.unpriv COMMAND [ARG...]
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import stat
import struct
import sys
from typing import List, Optional

from tools.vm.nobpf import run_wrapped

UID = 4321  # no passwd entry needed: the guest's /etc is the host's, left alone
GID = 4321
TRACEFS = "/sys/kernel/tracing"
BPF_SYSCALL = {"x86_64": 321, "aarch64": 280}
BPF_MAP_CREATE = 0
BPF_MAP_TYPE_ARRAY = 2


def drop() -> None:
    """Become UID/GID with no supplementary groups (and so no capabilities)."""
    os.setgroups([GID])
    os.setgid(GID)
    os.setuid(UID)
    os.environ["HOME"] = "/tmp"
    os.environ["USER"] = os.environ["LOGNAME"] = f"uid{UID}"


def grant_tracefs(root: str = TRACEFS) -> int:
    """chgrp GID and g+rw(x) every tracefs entry; returns how many were changed."""
    count = 0
    for top, _dirs, files in os.walk(root):  # each directory is a "top" once
        for name in [top, *(os.path.join(top, f) for f in files)]:
            try:
                mode = os.lstat(name).st_mode
                os.chown(name, -1, GID)
                extra = stat.S_IRGRP | stat.S_IWGRP
                if stat.S_ISDIR(mode):
                    extra |= stat.S_IXGRP
                os.chmod(name, stat.S_IMODE(mode) | extra)
                count += 1
            except OSError:
                continue  # vanished or refused: not counted
    return count


def bpf_errno() -> Optional[int]:
    """errno of a harmless bpf(BPF_MAP_CREATE) in this process (None: it worked)."""
    nr = BPF_SYSCALL.get(os.uname().machine)
    if nr is None:
        return errno.ENOSYS
    attr = ctypes.create_string_buffer(struct.pack("IIII", BPF_MAP_TYPE_ARRAY, 4, 8, 1), 64)
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.syscall(nr, BPF_MAP_CREATE, attr, 64)
    if fd < 0:
        return ctypes.get_errno()
    os.close(fd)
    return None


def new_instance() -> str:
    """Who owns the files of an instance this user creates (tracefs makes them new)."""
    path = os.path.join(TRACEFS, "instances", f"ht_unpriv_check_{os.getpid()}")
    try:
        os.mkdir(path)
    except OSError as exc:
        return f"mkdir of an instance fails: {exc.strerror}"
    try:
        st = os.stat(os.path.join(path, "buffer_size_kb"))
        writable = os.access(os.path.join(path, "buffer_size_kb"), os.W_OK)
        return (f"a new instance's buffer_size_kb is uid {st.st_uid} gid {st.st_gid} mode "
                f"{stat.S_IMODE(st.st_mode):04o}, writable by us: {writable}")
    except OSError as exc:
        return f"a new instance's buffer_size_kb: {exc.strerror}"
    finally:
        with contextlib.suppress(OSError):  # the guest is thrown away after the run
            os.rmdir(path)


def check_as_user() -> str:
    """What bpf() and tracefs look like to UID/GID (in a forked child)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: drop, probe, report one line, exit without cleanup
        os.close(read)
        try:
            drop()
            err = bpf_errno()
            result = "succeeded" if err is None else f"fails with {errno.errorcode.get(err, err)}"
            line = (f"as uid {UID}: bpf(BPF_MAP_CREATE) {result}"
                    + f"; write access to {TRACEFS}/instances: "
                    + str(os.access(os.path.join(TRACEFS, "instances"), os.W_OK))
                    + "; " + new_instance())
        except Exception as exc:  # the line is the evidence, whatever it is
            line = f"as uid {UID}: check failed: {type(exc).__name__}: {exc}"
        os.write(write, line.encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        text = f.read().decode(errors="replace")
    os.waitpid(pid, 0)
    return text


def main(argv: List[str]) -> int:
    return run_wrapped("unpriv", drop, argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
