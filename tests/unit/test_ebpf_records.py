"""Decoding of the ebpf-core ring-buffer records: cuts, flags and None, no kernel needed.

Records are packed here with the same struct layouts the decoder reads; the
kernel side of the layout is checked by the root tests in
tests/integration/test_ebpf_core.py.
"""

from __future__ import annotations

from typing import Optional

from hybridtrace.backends.ebpf import records
from hybridtrace.events import Source
from hybridtrace.origin import CgroupNames, Name
from hybridtrace.request import ARG_SIZE, PATH_SIZE

ORIGIN = (42, 4026531832, 4026531836, 3, 3, 1)


def _exec_record(name: bytes, args: bytes, flags: int = 0, argv_src: int = 1,
                 name_src: int = 1) -> memoryview:
    name_len = len(name) + 1 if name_src else 0
    head = records.EXEC.pack(7, 1, 10, 11, 9, 0, flags, b"comm\0junk", 42, 4026531832,
                             4026532245, 1, 2, 0, -2, 1, name_len, len(args), name_src, argv_src)
    return memoryview(head + (name + b"\0" if name_src else b"") + args + b"\xaa" * 8)


def test_split_argv_flags_cut_args_and_missing_terminator() -> None:
    big = b"x" * (ARG_SIZE + 1)
    assert records.split_argv(b"a\0\0b c\0", 20) == ((b"a", b"", b"b c"), False)
    assert records.split_argv(b"a\0" + big + b"\0", 20) == ((b"a", big[:ARG_SIZE]), True)
    assert records.split_argv(b"a\0par", 20) == ((b"a", b"par"), True)
    assert records.split_argv(b"a\0b\0c\0", 2) == ((b"a", b"b"), True)
    assert records.split_argv(b"", 20) == ((), False)


def test_exec_record_decodes_exact_bytes_and_sources() -> None:
    ev = records.decode_exec(_exec_record(b"/bin/\xff", b"/bin/\xff\0new\nline\0"), 0, 20)
    assert ev.filename == b"/bin/\xff" and ev.argv == (b"/bin/\xff", b"new\nline")
    assert ev.comm == b"comm" and ev.retval == -2 and ev.failed and ev.syscall == "execveat"
    assert (ev.pid, ev.tid, ev.ppid) == (10, 11, 9)
    assert ev.filename_source is Source.SYSCALL_ENTRY and ev.argv_source is Source.SYSCALL_ENTRY
    assert not ev.argv_truncated


def test_exec_record_fault_means_none_not_empty() -> None:
    ev = records.decode_exec(_exec_record(b"", b"", flags=records.F_ARGV_FAULT | 4,
                                          name_src=0), 0, 20)
    assert ev.filename is None and ev.filename_source is None
    assert ev.argv is None and ev.argv_source is None
    partial = records.decode_exec(_exec_record(b"/x", b"/x\0", flags=records.F_ARGV_FAULT),
                                  0, 20)
    assert partial.argv == (b"/x",) and partial.argv_truncated


def test_exec_filename_longer_than_path_size_is_none_not_cut() -> None:
    # Ground truth (tools/groundtruth): a 600-byte execve path came out as its first
    # PATH_SIZE bytes with nothing to say so. ExecEvent has no flag for it: None.
    exact = b"/" + b"e" * (PATH_SIZE - 1)
    ok = records.decode_exec(_exec_record(exact, b"x\0"), 0, 20)
    assert ok.filename == exact and ok.filename_source is Source.SYSCALL_ENTRY
    over = records.decode_exec(_exec_record(exact + b"e", b"x\0"), 0, 20)
    assert over.filename is None and over.filename_source is None
    assert over.argv == (b"x",)


def test_new_image_argv_is_capped_by_max_args() -> None:
    args = b"".join(b"a%d\0" % i for i in range(30))
    ev = records.decode_exec(_exec_record(b"/bin/true", args, argv_src=2), 0, 20)
    assert ev.argv_source is Source.NEW_IMAGE
    assert ev.argv == tuple(b"a%d" % i for i in range(20)) and ev.argv_truncated


def test_open_record_fd_errno_split_and_long_path() -> None:
    path = b"/" + b"p" * PATH_SIZE  # one byte over: the kernel read PATH_SIZE + 1
    head = records.OPEN.pack(5, 2, 3, 3, 1, 1000, 0, b"cat", *ORIGIN, -13, -100, 0o101,
                             0o644, 3, len(path) + 1)
    ev = records.decode_open(memoryview(head + path + b"\0"), 0)
    assert ev.errno == 13 and ev.fd is None and ev.failed
    assert ev.path == path[:PATH_SIZE] and ev.path_truncated
    assert (ev.flags, ev.mode, ev.dfd, ev.syscall, ev.uid) == (0o101, 0o644, -100, "creat", 1000)
    head = records.OPEN.pack(5, 2, 3, 3, 1, 0, 4, b"cat", *ORIGIN, 3, 7, 0, 0, 1, 0)
    ok = records.decode_open(memoryview(head), 0)
    assert ok.fd == 3 and ok.errno is None and ok.path is None and ok.path_source is None
    assert ok.dfd == 7


def test_config_is_the_whole_rodata_struct() -> None:
    # struct ht_config in bpf/common.h: 6 u32, 8 flags, comm[16], u32, 4 flags, u32
    assert records.CONFIG.size == 60


def test_no_pid_in_the_tracer_s_namespace_is_none_not_a_number() -> None:
    """A tracer in a pid namespace of its own: the kernel gave that namespace's ids, and
    flags where the task has none there (outside it): those are None, not 0."""
    here = records.decode_exec(_exec_record(b"/bin/sh", b"sh\0"), 0, 20)
    assert (here.pid, here.tid, here.ppid) == (10, 11, 9)
    outside = records.decode_exec(_exec_record(b"/bin/sh", b"sh\0", flags=(
        records.F_VIEW_PID_NONE | records.F_VIEW_TID_NONE | records.F_VIEW_PPID_NONE)), 0, 20)
    assert (outside.pid, outside.tid, outside.ppid) == (None, None, None)
    assert (outside.ns_pid, outside.ns_tid) == (1, 2)  # its own namespace's ids stay
    orphan = records.decode_exec(_exec_record(b"/bin/sh", b"sh\0",
                                              flags=records.F_VIEW_PPID_NONE), 0, 20)
    assert (orphan.pid, orphan.tid, orphan.ppid) == (10, 11, None)
    for flags in (records.F_VIEW_PID_NONE | records.F_VIEW_TID_NONE, records.F_VIEW_TID_NONE):
        head = records.OPEN.pack(5, 2, 3, 4, 1, 0, flags, b"cat", *ORIGIN, 3, 7, 0, 0, 1, 0)
        ev = records.decode_open(memoryview(head), 0)
        assert ev.tid is None and ev.pid == (None if flags & records.F_VIEW_PID_NONE else 3)
        assert ev.ns_pid == 3 and ev.fd == 3


def test_exec_origin_fields_and_unknowns() -> None:
    ev = records.decode_exec(_exec_record(b"/bin/sh", b"sh\0"), 0, 20)
    assert (ev.cgroup_id, ev.mntns, ev.pidns) == (42, 4026531832, 4026532245)
    assert (ev.ns_pid, ev.ns_tid, ev.ns_ppid) == (1, 2, 0)  # 0: parent outside, not unknown
    assert ev.cgroup is None and ev.container_id is None  # no names without a tree
    flags = (records.F_MNTNS_UNKNOWN | records.F_PIDNS_UNKNOWN | records.F_NSPID_UNKNOWN
             | records.F_NSPPID_UNKNOWN | records.F_CGROUP_UNKNOWN)
    none = records.decode_exec(_exec_record(b"/bin/sh", b"sh\0", flags=flags), 0, 20)
    assert (none.cgroup_id, none.mntns, none.pidns, none.ns_pid, none.ns_tid,
            none.ns_ppid) == (None,) * 6


def test_names_come_from_the_cgroup_names() -> None:
    class Names(CgroupNames):
        def lookup(self, cgroup_id: Optional[int], recorded_ns: Optional[int] = None) -> Name:
            assert (cgroup_id, recorded_ns) == (42, 7)
            return (b"/docker/" + b"a" * 64, "a" * 64)

    ev = records.decode_exec(_exec_record(b"/bin/sh", b"sh\0"), 0, 20, Names())
    assert ev.cgroup == b"/docker/" + b"a" * 64 and ev.container_id == "a" * 64


def _uring(flags: int, ret: int, path: bytes = b"/p") -> memoryview:
    head = records.OPEN.pack(5, 2, 30, 31, 0, 1000, records.F_IO_URING | flags, b"gt", 100,
                             4026531832, 4026531836, 30, 31, 0, ret, -100, 0o101, 0o644, 1,
                             len(path) + 1 if path else 0)
    return memoryview(head + (path + b"\0" if path else b""))


def test_io_uring_record_is_no_syscall_and_says_what_it_cannot_know() -> None:
    ev = records.decode_open(_uring(records.F_KERNEL_COPY, 4), 0)
    assert ev.via == "io_uring" and ev.syscall is None
    assert (ev.pid, ev.tid, ev.uid, ev.comm, ev.fd, ev.errno) == (30, 31, 1000, b"gt", 4, None)
    assert ev.path == b"/p" and ev.path_source is Source.KERNEL_COPY
    assert (ev.flags, ev.mode, ev.dfd) == (0o101, 0o644, -100)
    # The SQPOLL thread submitted it: the process only; a kernel thread: not even that.
    sq = records.decode_open(_uring(records.F_NO_THREAD, -2), 0)
    assert (sq.pid, sq.tid, sq.uid, sq.comm, sq.errno) == (30, None, None, None, 2)
    kthread = records.decode_open(_uring(records.F_NO_THREAD | records.F_NO_PROCESS, 4), 0)
    assert kthread.pid is None and kthread.tid is None
    # A fixed file slot is no fd; a success that posts no completion has no known result.
    slot = records.decode_open(_uring(records.F_FIXED_SLOT, 0), 0)
    assert slot.fd is None and slot.errno is None
    assert records.decode_open(_uring(records.F_FIXED_SLOT, -22), 0).errno == 22
    skip = records.decode_open(_uring(records.F_NO_RESULT, 0), 0)
    assert skip.fd is None and skip.errno is None and not skip.failed
    args = records.decode_open(_uring(records.F_ARGS_FAULT, 3), 0)
    assert args.flags is None and args.mode is None and args.dfd == -100
    nameless = records.decode_open(_uring(records.F_NAME_FAULT, 3, b""), 0)
    assert nameless.path is None and nameless.path_source is None
