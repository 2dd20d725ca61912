"""The output formats of BCC 0.26's and libbpf-tools 0.26's execsnoop and opensnoop.

Written with the printf-style format strings those tools use (BCC:
tools/execsnoop.py and tools/opensnoop.py; libbpf-tools: execsnoop.c and
opensnoop.c, as Debian bookworm ships them), so that a test compares our
output with theirs cell for cell. The tests assume strings that need no
escaping: BCC prints raw bytes (only "\\n" is escaped), hybridtrace escapes
every control byte and the backslash.
"""

# ruff: noqa: UP031  (printf-style on purpose: the reference tools' own format strings)
from __future__ import annotations

from typing import List, Optional, Sequence


def bcc_exec_header(time: bool, timestamp: bool, uid: bool) -> str:
    out = ""
    if time:
        out += "%-9s" % ("TIME",)
    if timestamp:
        out += "%-8s" % ("TIME(s)",)
    if uid:
        out += "%-6s" % ("UID",)
    return out + "%-16s %-7s %-7s %3s %s" % ("PCOMM", "PID", "PPID", "RET", "ARGS")


def bcc_exec_args(words: Sequence[bytes], quote: bool) -> str:
    """BCC's ARGS: the words (path, argv[1:], "..." when cut), each quoted with -q."""
    if quote:
        words = [b'"' + w.replace(b'"', b'\\"') + b'"' for w in words]
    return b" ".join(words).replace(b"\n", b"\\n").decode()


def bcc_exec_line(hhmmss: Optional[str], seconds: Optional[float], uid: Optional[int],
                  comm: str, pid: int, ppid: Optional[int], retval: int, args: str) -> str:
    out = ""
    if hhmmss is not None:
        out += "%-9s" % hhmmss
    if seconds is not None:
        out += "%-8.3f" % seconds
    if uid is not None:
        out += "%-6d" % uid
    ppid_text = "%d" % ppid if ppid else "?"
    return out + "%-16s %-7d %-7s %3d %s" % (comm, pid, ppid_text, retval, args)


def bcc_open_header(timestamp: bool, uid: bool, tid: bool, extended: bool) -> str:
    out = ""
    if timestamp:
        out += "%-14s" % ("TIME(s)",)
    if uid:
        out += "%-6s" % ("UID",)
    out += "%-6s %-16s %4s %3s " % ("TID" if tid else "PID", "COMM", "FD", "ERR")
    if extended:
        out += "%-9s" % ("FLAGS",)
    return out + "PATH"


def bcc_open_line(delta_us: Optional[int], uid: Optional[int], pid: int, comm: str,
                  ret: int, flags: Optional[int], path: str) -> str:
    """``ret`` is the syscall's return: an fd, or a negative errno."""
    out = ""
    if delta_us is not None:
        out += "%-14.9f" % (float(delta_us) / 1000000)
    if uid is not None:
        out += "%-6d" % uid
    fd, err = (ret, 0) if ret >= 0 else (-1, -ret)
    out += "%-6d %-16s %4d %3d " % (pid, comm, fd, err)
    if flags is not None:
        out += "%08o " % flags
    return out + path


# libbpf-tools 0.26 (header, then the cells it prints for one event)

def libbpf_exec_header(time: bool, timestamp: bool, uid: bool) -> str:
    out = ""
    if time:
        out += "%-9s" % ("TIME",)
    if timestamp:
        out += "%-8s " % ("TIME(s)",)
    if uid:
        out += "%-6s " % ("UID",)
    return out + "%-16s %-6s %-6s %3s %s" % ("PCOMM", "PID", "PPID", "RET", "ARGS")


def libbpf_open_header(timestamp: bool, uid: bool, extended: bool) -> str:
    out = ""
    if timestamp:
        out += "%-8s " % ("TIME",)
    if uid:
        out += "%-7s " % ("UID",)
    out += "%-6s %-16s %3s %3s " % ("PID", "COMM", "FD", "ERR")
    if extended:
        out += "%-8s " % ("FLAGS",)
    return out + "PATH"


def column_starts(header: str) -> List[int]:
    """Where each header word starts: the column boundaries a script cuts at."""
    starts = []
    for i, ch in enumerate(header):
        if ch != " " and (i == 0 or header[i - 1] == " "):
            starts.append(i)
    return starts
