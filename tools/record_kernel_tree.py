#!/usr/bin/env python3
"""Record the files hybridtrace.probe() reads from this kernel into a kernel tree.

    python tools/record_kernel_tree.py --name NAME --out tests/fixtures/kernels
        [--mount-tracefs | --unmount-tracefs] [--mount-securityfs]

Writes OUT/NAME/root/... (exactly the paths probe looked at), OUT/NAME/live.json
(the live-seam results: bpf() load, ring buffer, libbpf, BCC, euid, ...) and
OUT/NAME/doctor.json (hybridtrace doctor --json over the recording), then checks
that probe over the recording equals probe of this machine.

What is copied: files probe reads, truncated to what it uses (BTF: the 4-byte
magic; the C library: its version banner; /proc/cmdline: its lockdown=
option; mountinfo: its tracefs, debugfs, securityfs, cgroup2 and root lines); files it only
tests for existence as empty files (tracefs control files, tracepoint format
files, kheaders); directories it lists as directories; symlinks it follows
(outside /proc) as symlinks. Nothing but the hybridtrace package is needed.
The mount options (root only) act in a private mount namespace of this
process, so the machine's mounts are never changed: --mount-tracefs records
with tracefs mounted, --unmount-tracefs as after boot (tracefs and debugfs not
mounted), --mount-securityfs with /sys/kernel/security (the lockdown mode).
"""

from __future__ import annotations

import argparse
import ctypes
import datetime
import os
import re
import shutil
import sys
from typing import Any, Callable, Dict, List, Optional, Tuple, TypeVar

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import attrs

from hybridtrace import tracefs
from hybridtrace.capabilities import eprobe_selftest, probe_tree
from hybridtrace.capabilities.files import LISTED_EMPTY, Tree
from hybridtrace.capabilities.live import SystemLive
from hybridtrace.capabilities.model import Bcc, Library
from tools.kernel_tree import differences, replay, write_doctor, write_json

T = TypeVar("T")
_BIG = 1 << 20
_GLIBC_BANNER = re.compile(rb"GNU C Library[^\n\0]*")


class LoggingTree(Tree):
    """A Tree over "/" that remembers every access, for copying afterwards."""

    def __init__(self) -> None:
        super().__init__("/")
        self.log: List[Tuple[str, str, int]] = []  # (kind, machine path, byte limit)

    def followed(self, path: str, real: str) -> None:
        self.log.append(("link", path, 0))

    def _resolved(self, path: str) -> str:
        return self.resolve(path) or path

    def exists(self, path: str) -> bool:
        self.log.append(("stat", self._resolved(path), 0))
        return super().exists(path)

    def isdir(self, path: str) -> bool:
        self.log.append(("stat", self._resolved(path), 0))
        return super().isdir(path)

    def isfile(self, path: str) -> bool:
        self.log.append(("stat", self._resolved(path), 0))
        return super().isfile(path)

    def read_bytes(self, path: str, limit: int = 1 << 20) -> Optional[bytes]:
        self.log.append(("read", self._resolved(path), limit))
        return super().read_bytes(path, limit)

    def read_gzip_text(self, path: str, limit: int = 8 << 20) -> Optional[str]:
        self.log.append(("read", self._resolved(path), 64 << 20))
        return super().read_gzip_text(path, limit)

    def readlink(self, path: str) -> Optional[str]:
        self.log.append(("link", path, 0))
        return super().readlink(path)

    def listdir(self, path: str) -> Optional[List[str]]:
        self.log.append(("stat", self._resolved(path), 0))
        listed = super().listdir(path)
        if listed is not None:
            self.log.append(("listed", self._resolved(path), 0))
        return listed


class CachingLive:
    """SystemLive, asked once per question; the answers become live.json."""

    def __init__(self) -> None:
        self.system = SystemLive()
        self.answers: Dict[str, Any] = {"tracefs_writable": {}}

    def _once(self, key: str, call: Callable[[], T], encode: Callable[[T], Any]) -> T:
        value = call()
        self.answers[key] = encode(value)
        return value

    def euid(self) -> int:
        return self._once("euid", self.system.euid, int)

    def uname_machine(self) -> str:
        return self._once("uname_machine", self.system.uname_machine, str)

    def bpf_prog_load_errno(self) -> int:
        return self._once("bpf_prog_load_errno", self.system.bpf_prog_load_errno, int)

    def ringbuf_errno(self) -> int:
        return self._once("ringbuf_errno", self.system.ringbuf_errno, int)

    def kernel_read_errno(self) -> int:
        return self._once("kernel_read_errno", self.system.kernel_read_errno, int)

    def libbpf(self) -> Optional[Library]:
        return self._once("libbpf", self.system.libbpf,
                          lambda v: None if v is None else {"path": v.path, "version": v.version})

    def bcc(self) -> Bcc:
        return self._once("bcc", self.system.bcc, lambda v: {
            "version": v.version, "location": v.location, "error": v.error})

    def tracefs_writable(self, path: str) -> bool:
        value = self.system.tracefs_writable(path)
        self.answers["tracefs_writable"][path] = value
        return value

    def io_uring_tracepoints(self) -> Dict[str, bool]:
        return self._once("io_uring_tracepoints", self.system.io_uring_tracepoints, dict)

    def io_uring_layout(self) -> Optional[Dict[str, int]]:
        return self._once("io_uring_layout", self.system.io_uring_layout,
                          lambda v: None if v is None else dict(v))

    def tracefs_mount_errno(self) -> Optional[int]:
        return self._once("tracefs_mount_errno", self.system.tracefs_mount_errno,
                          lambda v: v)

    def eprobe_strings(self, path: str) -> Optional[bool]:
        """The verdict, and the trace it came from (unit tests replay the judgement)."""
        test = eprobe_selftest.run(path)
        value = None if test is None else test.reads_strings
        self.answers.setdefault("eprobe_strings", {})[path] = value
        if test is not None:
            self.answers["eprobe_selftest"] = attrs.asdict(test)
        return value


def _dest(out_root: str, path: str) -> str:
    return os.path.join(out_root, path.lstrip("/"))


def _only_lockdown(data: bytes) -> bytes:
    return b" ".join(t for t in data.split() if t.startswith(b"lockdown=")) + b"\n"


def _only_our_mounts(data: bytes) -> bytes:
    """tracefs, debugfs, securityfs and cgroup2 mounts, and whatever is mounted over them
    (a mount at or above one hides it: probe drops what a later mount covers); and the
    root's mount, which tells probe the list is complete (older recordings have none)."""
    keep = (b" - tracefs ", b" - debugfs ", b" - securityfs ", b" - cgroup2 ")

    def covers(line: bytes) -> bool:
        fields = line.split(b" - ")[0].split()
        point = fields[4] if len(fields) >= 5 else b""
        return point in (b"/", b"/sys", b"/sys/kernel") or point.startswith(b"/sys/kernel/")

    lines = data.splitlines(True)
    first = next((i for i, line in enumerate(lines) if any(k in line for k in keep)), len(lines))
    def root(line: bytes) -> bool:
        fields = line.split(b" - ")[0].split()
        return len(fields) >= 5 and fields[4] == b"/"

    return b"".join(line for i, line in enumerate(lines)
                    if any(k in line for k in keep) or root(line)
                    or (i > first and covers(line)))


# Files of which probe uses only a part: the rest (other mounts, boot options)
# says nothing about tracing and stays off the record.
TRIM = {"/proc/cmdline": _only_lockdown, "/proc/self/mountinfo": _only_our_mounts}


def _read_host(path: str, limit: int) -> Optional[bytes]:
    try:
        with open(path, "rb") as f:
            data = f.read(limit)
    except OSError:
        return None
    if path in TRIM:
        return TRIM[path](data)
    if len(data) > _BIG:  # only the C library is read whole: keep its banner
        match = _GLIBC_BANNER.search(data)
        return match.group(0) if match else data[:4096]
    return data


def copy_accessed(log: List[Tuple[str, str, int]], out_root: str) -> None:
    """Recreate under out_root what each logged access saw on this machine."""
    for kind, path, _ in log:  # symlinks first, so later writes land behind them
        if kind == "link" and os.path.islink(path) and not os.path.lexists(
                _dest(out_root, path)):
            os.makedirs(os.path.dirname(_dest(out_root, path)), exist_ok=True)
            os.symlink(os.readlink(path), _dest(out_root, path))
    reads: Dict[str, int] = {}
    for kind, path, limit in log:
        if kind == "read":
            reads[path] = max(reads.get(path, 0), limit)
    for path, limit in reads.items():
        data = _read_host(path, limit)
        if data is not None:
            os.makedirs(os.path.dirname(_dest(out_root, path)), exist_ok=True)
            with open(_dest(out_root, path), "wb") as f:
                f.write(data)
    for kind, path, _ in log:
        dest = _dest(out_root, path)
        if kind != "stat" or path in reads or os.path.lexists(dest):
            continue
        if os.path.isdir(path):
            os.makedirs(dest, exist_ok=True)
        elif os.path.exists(path):
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            open(dest, "wb").close()


def keep_listed_dirs(log: List[Tuple[str, str, int]], out_root: str) -> None:
    """A directory probe could list stays listable in the recording (an empty one, or
    one none of whose entries was read, would otherwise be pruned: "absent")."""
    for kind, path, _ in log:
        dest = _dest(out_root, path)
        if kind == "listed" and not os.path.islink(dest):
            os.makedirs(dest, exist_ok=True)
            if not os.listdir(dest):
                open(os.path.join(dest, LISTED_EMPTY), "wb").close()


def prune_empty_dirs(out_root: str) -> None:
    """git keeps no empty directories, so the recording must not depend on them."""
    for dirpath, _, _ in sorted(os.walk(out_root), key=lambda w: -len(w[0])):
        if dirpath != out_root and not os.path.islink(dirpath) and not os.listdir(dirpath):
            os.rmdir(dirpath)


_CLONE_NEWNS = 0x00020000
_MS_REC, _MS_PRIVATE = 0x4000, 0x40000


def _libc_call(name: str, *args: object) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if getattr(libc, name)(*args) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{name}{args[:2]}: {os.strerror(err)}")


def private_mounts(mount_tracefs: bool, unmount_tracefs: bool, securityfs: bool) -> None:
    """Change mounts for this process only (a private mount namespace)."""
    _libc_call("unshare", _CLONE_NEWNS)
    _libc_call("mount", None, b"/", None, _MS_REC | _MS_PRIVATE, None)
    if unmount_tracefs:
        for path in ("/sys/kernel/debug/tracing", "/sys/kernel/tracing", "/sys/kernel/debug"):
            if os.path.ismount(path):
                _libc_call("umount2", path.encode(), 0)
    if mount_tracefs:
        tracefs.ensure_mounted()
    if securityfs and not os.path.ismount("/sys/kernel/security"):
        _libc_call("mount", b"none", b"/sys/kernel/security", b"securityfs", 0, None)


def record(name: str, out: str, mounts: Dict[str, bool]) -> int:
    tree_dir = os.path.join(out, name)
    if any(mounts.values()):
        try:
            private_mounts(mounts["mount_tracefs"], mounts["unmount_tracefs"],
                           mounts["mount_securityfs"])
        except (OSError, tracefs.TracefsUnavailable) as exc:
            print(f"record_kernel_tree: cannot set up mounts: {exc}", file=sys.stderr)
            return 1
    if os.path.exists(tree_dir):
        shutil.rmtree(tree_dir)
    os.makedirs(os.path.join(tree_dir, "root"))
    log_tree, live = LoggingTree(), CachingLive()
    caps = probe_tree(log_tree, live)
    if "uname_machine" not in live.answers:  # so derived trees may drop /proc/sys/kernel/arch
        live.uname_machine()
    copy_accessed(log_tree.log, os.path.join(tree_dir, "root"))
    keep_listed_dirs(log_tree.log, os.path.join(tree_dir, "root"))
    prune_empty_dirs(os.path.join(tree_dir, "root"))
    live.answers["recorded"] = {
        "by": "tools/record_kernel_tree.py",
        "utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "kernel": caps.kernel.release,
        "private_mounts": sorted(k for k, v in mounts.items() if v),
    }
    write_json(os.path.join(tree_dir, "live.json"), live.answers)
    write_doctor(tree_dir)
    diff = differences(caps, replay(tree_dir))
    if diff:
        print("record_kernel_tree: the recording does not reproduce this machine:",
              *diff, sep="\n  ", file=sys.stderr)
        return 1
    print(f"recorded {caps.kernel.release} into {tree_dir}")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", required=True, help="tree name, e.g. debian-6.1-root")
    parser.add_argument("--out", default="tests/fixtures/kernels", help="trees directory")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--mount-tracefs", action="store_true",
                       help="record with tracefs mounted (private mount namespace)")
    group.add_argument("--unmount-tracefs", action="store_true",
                       help="record with tracefs and debugfs unmounted (private mount namespace)")
    parser.add_argument("--mount-securityfs", action="store_true",
                        help="record with securityfs mounted (private mount namespace)")
    args = parser.parse_args(argv)
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*$", args.name):
        parser.error(f"bad tree name {args.name!r}: letters, digits, '.', '_', '-'")
    mounts = {k: getattr(args, k) for k in ("mount_tracefs", "unmount_tracefs",
                                            "mount_securityfs")}
    return record(args.name, args.out, mounts)


if __name__ == "__main__":
    sys.exit(main())
