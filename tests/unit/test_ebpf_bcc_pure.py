"""The pure parts of the BCC engine: BTF member offsets, record decoding, -D
flags, header lookup, the assessment, and importing BCC from the system."""

from __future__ import annotations

import os
import struct
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple

import attrs
import pytest

from hybridtrace import vocabulary
from hybridtrace.backends.base import BackendError
from hybridtrace.backends.ebpf.bcc import (
    bcc_import,
    bcc_program,
    bcc_records,
    bcc_uring,
    headers,
)
from hybridtrace.backends.ebpf.requirements import assess_bcc
from hybridtrace.btf_offsets import Btf, BtfError, io_uring_open_layout
from hybridtrace.events import Source
from hybridtrace.origin import UNNAMED, CgroupNames, Name
from hybridtrace.request import ARG_SIZE, PATH_SIZE, Filters, Kind, TraceRequest
from tests.unit.kernel_trees import probe_tree

# --- BTF ------------------------------------------------------------------------------------


class BtfBuilder:
    """Writes a BTF blob type by type, in the kernel's format (include/uapi/linux/btf.h)."""

    def __init__(self) -> None:
        self.strings = b"\0"
        self.types = b""
        self.count = 0

    def name(self, text: str) -> int:
        if not text:
            return 0
        off = len(self.strings)
        self.strings += text.encode() + b"\0"
        return off

    def add(self, name: str, kind: int, vlen: int, ref: int, extra: bytes = b"",
            kind_flag: bool = False) -> int:
        info = (int(kind_flag) << 31) | (kind << 24) | vlen
        self.types += struct.pack("<III", self.name(name), info, ref) + extra
        self.count += 1
        return self.count

    def struct(self, name: str, size: int, members: Sequence[Tuple[str, int, int]],
               kind_flag: bool = False) -> int:
        extra = b"".join(struct.pack("<III", self.name(m), t, off) for m, t, off in members)
        return self.add(name, 4, len(members), size, extra, kind_flag)

    def blob(self) -> bytes:
        hdr = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(self.types), len(self.types),
                          len(self.strings))
        return hdr + self.types + self.strings


def sample_btf() -> bytes:
    b = BtfBuilder()
    u64 = b.add("u64", 1, 0, 8, struct.pack("<I", 64))  # INT with its encoding word
    b.add("", 13, 2, u64, struct.pack("<IIII", 0, u64, 0, u64))  # FUNC_PROTO, 2 params
    b.add("e", 6, 3, 4, struct.pack("<IiIiIi", 0, 1, 0, 2, 0, 3))  # ENUM, 3 values
    anon = b.struct("", 16, [("arg_start", u64, 0), ("arg_end", u64, 64)])
    const_anon = b.add("", 10, 0, anon)  # CONST -> the anonymous struct
    b.struct("mm_struct", 64, [("pgd", u64, 0), ("", const_anon, 128)])
    b.struct("bits", 8, [("whole", u64, (0 << 24) | 32), ("part", u64, (3 << 24) | 35)],
             kind_flag=True)
    b.add("mm_struct", 7, 0, 0)  # a FWD of the same name must not be taken
    return b.blob()


def test_btf_offsets_through_anonymous_members_and_modifiers() -> None:
    btf = Btf(sample_btf())
    assert btf.member_offset("mm_struct", "pgd") == 0
    assert btf.member_offset("mm_struct", "arg_start") == 16
    assert btf.member_offset("mm_struct", "arg_end") == 24
    assert btf.member_offset("bits", "whole") == 4  # kind_flag: low 24 bits are the offset


def test_btf_refuses_what_it_cannot_answer() -> None:
    btf = Btf(sample_btf())
    with pytest.raises(BtfError, match="bit field"):
        btf.member_offset("bits", "part")
    with pytest.raises(BtfError, match="no member"):
        btf.member_offset("mm_struct", "arg_middle")
    with pytest.raises(BtfError, match="not in BTF"):
        btf.member_offset("task_struct", "tgid")
    with pytest.raises(BtfError, match="not a little-endian BTF"):
        Btf(b"\0" * 64)
    bad = bytearray(sample_btf())
    struct.pack_into("<I", bad, 24 + 4, 31 << 24)  # first type: kind 31 does not exist
    with pytest.raises(BtfError, match="unknown BTF kind"):
        Btf(bytes(bad))


def uring_btf(member: str, handler: bool) -> bytes:
    """io_kiocb holding its command as ``cmd`` (6.0+) or ``open`` (before), at 8 here."""
    b = BtfBuilder()
    u64 = b.add("u64", 1, 0, 8, struct.pack("<I", 64))
    io_open = b.struct("io_open", 32, [("file", u64, 0), ("dfd", u64, 64),
                                       ("filename", u64, 128)])
    b.struct("io_kiocb", 64, [("flags", u64, 0), (member, io_open, 64)])
    b.struct("filename", 16, [("name", u64, 0), ("uptr", u64, 64)])
    if handler:
        b.add("io_openat2", 12, 0, 0)  # FUNC
        b.add("io_openat_prep", 12, 0, 0)
    return b.blob()


def test_io_uring_open_layout_from_either_request_shape() -> None:
    preps = ("io_openat_prep", "io_openat2_prep")
    for member in ("cmd", "open"):
        layout = io_uring_open_layout(Btf(uring_btf(member, True)), "io_openat2")
        assert layout == {"filename": 24, "dfd": 16, "name": 0, "handler": 1, "prep": 0}
        # both preparation functions, or the layout says kprobes reach none
        assert io_uring_open_layout(Btf(uring_btf(member, True)), "io_openat2",
                                    preps[:1])["prep"] == 1
        assert io_uring_open_layout(Btf(uring_btf(member, True)), "io_openat2",
                                    preps)["prep"] == 0
    assert io_uring_open_layout(Btf(uring_btf("cmd", False)), "io_openat2")["handler"] == 0
    with pytest.raises(BtfError, match="no member"):
        io_uring_open_layout(Btf(uring_btf("other", True)), "io_openat2")


# --- records --------------------------------------------------------------------------------


# struct ht_origin: cgroup_id, mntns, pidns, ns_pid, ns_tid, ns_ppid
ORIGIN = (77, 4026532174, 4026532175, 2, 2, 0)


def exec_record(*, flags: int = 0, ppid: int = 7, retval: int = 0, filename: bytes = b"",
                argv: bytes = b"", syscall: int = 0, comm: bytes = b"sh",
                origin: Tuple[int, ...] = ORIGIN) -> bytes:
    name_len = len(filename) + 1 if filename else 0
    hdr = bcc_records.EXEC_HDR.pack(123, 10, 11, ppid, 1000, retval, flags, len(argv),
                                    name_len, syscall, comm, *origin)
    name = (filename + b"\0").ljust(PATH_SIZE + 1, b"\0") if filename else b"\0" * (
        PATH_SIZE + 1)
    return hdr + name + argv


def test_exec_record_from_entry() -> None:
    ev = bcc_records.decode_exec(exec_record(filename=b"/bin/sh", argv=b"sh\0-c\0a b\0"), 20)
    assert ev.argv == (b"sh", b"-c", b"a b") and not ev.argv_truncated
    assert ev.filename == b"/bin/sh" and ev.filename_source is Source.SYSCALL_ENTRY
    assert ev.argv_source is Source.SYSCALL_ENTRY
    assert (ev.pid, ev.tid, ev.ppid, ev.uid, ev.comm) == (10, 11, 7, 1000, b"sh")
    assert ev.syscall == "execve" and not ev.failed


def test_exec_record_flags() -> None:
    image = bcc_records.decode_exec(exec_record(
        flags=bcc_records.F_ARGV_FROM_IMAGE | bcc_records.F_FILENAME_FROM_TP
        | bcc_records.F_NO_ENTRY, filename=b"/bin/true", argv=b"/bin/true\0x\0",
        syscall=1), 20)
    assert image.argv == (b"/bin/true", b"x") and image.argv_source is Source.NEW_IMAGE
    assert image.filename_source is Source.TRACEPOINT and image.syscall == "execveat"

    unread = bcc_records.decode_exec(exec_record(
        flags=bcc_records.F_ARGV_READ_FAILED | bcc_records.F_TASK_READS_OFF, retval=-2), 20)
    assert unread.argv is None and unread.argv_source is None and unread.filename is None
    assert unread.ppid is None and unread.failed

    partial = bcc_records.decode_exec(exec_record(
        flags=bcc_records.F_ARGV_READ_FAILED, argv=b"only-first\0"), 20)
    assert partial.argv == (b"only-first",) and partial.argv_truncated

    missed = bcc_records.decode_exec(exec_record(
        flags=bcc_records.F_NO_ENTRY | bcc_records.F_IMAGE_READ_FAILED), 20)
    assert missed.argv is None


def test_exec_record_cut_filename_is_none() -> None:
    # The kernel side flags a filename longer than its slot; the value must not be used.
    cut = bcc_records.decode_exec(exec_record(
        flags=bcc_records.F_FILENAME_TRUNCATED, filename=b"/" + b"f" * (PATH_SIZE - 1),
        argv=b"a\0"), 20)
    assert cut.filename is None and cut.filename_source is None and cut.argv == (b"a",)


def test_exec_record_image_argv_is_cut_to_limits() -> None:
    long_arg = b"L" * (ARG_SIZE + 10)
    ev = bcc_records.decode_exec(exec_record(
        flags=bcc_records.F_ARGV_FROM_IMAGE, argv=b"a\0" + long_arg + b"\0b\0c\0"), 3)
    assert ev.argv == (b"a", long_arg[:ARG_SIZE], b"b") and ev.argv_truncated

    # At entry the kernel reads one byte past ARG_SIZE: that byte means "cut".
    exact, over = b"E" * ARG_SIZE, b"O" * (ARG_SIZE + 1)
    ok = bcc_records.decode_exec(exec_record(argv=b"a\0" + exact + b"\0"), 20)
    assert ok.argv == (b"a", exact) and not ok.argv_truncated
    cut = bcc_records.decode_exec(exec_record(argv=b"a\0" + over + b"\0"), 20)
    assert cut.argv == (b"a", over[:ARG_SIZE]) and cut.argv_truncated


def open_record(*, ret: int, path: Optional[bytes], flags: int = 0, syscall: int = 1) -> bytes:
    path_len = len(path) + 1 if path is not None else 0
    hdr = bcc_records.OPEN_HDR.pack(5, 20, 21, 0, ret, -100, 0o101, 0o644, syscall, path_len,
                                    flags, 0xDEAD, b"cat", *ORIGIN)
    return hdr + ((path + b"\0") if path is not None else b"")


class _Names(CgroupNames):
    """cgroup id 77 is a podman container's cgroup; nothing else is named."""

    PATH = b"/machine.slice/libpod-" + b"ab" * 32 + b".scope"

    def lookup(self, cgroup_id: Optional[int], recorded_ns: Optional[int] = None) -> Name:
        return (self.PATH, "ab" * 32) if cgroup_id == 77 else UNNAMED


def test_origin_fields_and_what_the_kernel_could_not_read() -> None:
    """Read fields pass through (ns_ppid 0 is a real value: the parent is outside the
    namespace), the cgroup path and container id come from the id, and each field the
    program flagged unknown is None, never its zeroed slot."""
    ev = bcc_records.decode_exec(exec_record(filename=b"/bin/sh"), 20, _Names())
    assert (ev.cgroup_id, ev.cgroup, ev.container_id) == (77, _Names.PATH, "ab" * 32)
    assert (ev.mntns, ev.pidns, ev.ns_pid, ev.ns_tid, ev.ns_ppid) == ORIGIN[1:]
    op = bcc_records.decode_open(open_record(ret=3, path=b"/x"), _Names())
    assert (op.cgroup_id, op.container_id, op.mntns, op.pidns, op.ns_pid, op.ns_tid) == (
        77, "ab" * 32, *ORIGIN[1:5])
    unknown = (bcc_records.F_CGROUP_UNKNOWN | bcc_records.F_MNTNS_UNKNOWN
               | bcc_records.F_PIDNS_UNKNOWN | bcc_records.F_NSPID_UNKNOWN
               | bcc_records.F_NSPPID_UNKNOWN)
    none = bcc_records.decode_exec(exec_record(filename=b"/bin/sh", flags=unknown), 20, _Names())
    assert (none.cgroup_id, none.cgroup, none.container_id, none.mntns, none.pidns,
            none.ns_pid, none.ns_tid, none.ns_ppid) == (None,) * 8
    only_parent = bcc_records.decode_exec(exec_record(
        filename=b"/bin/sh", flags=bcc_records.F_NSPPID_UNKNOWN), 20)
    assert only_parent.ns_ppid is None and only_parent.ns_pid == 2
    assert only_parent.cgroup is None  # no names given: the id alone
    sqpoll = bcc_records.decode_open(open_record(
        ret=3, path=b"/x", flags=bcc_records.F_IO_URING | bcc_records.F_NO_THREAD | unknown))
    assert (sqpoll.cgroup_id, sqpoll.mntns, sqpoll.pidns, sqpoll.ns_pid) == (None,) * 4


def test_open_records() -> None:
    ok = bcc_records.decode_open(open_record(ret=3, path=b"/etc/\xff\nx"))
    assert ok.path == b"/etc/\xff\nx" and ok.fd == 3 and ok.errno is None
    assert (ok.flags, ok.mode, ok.dfd, ok.syscall) == (0o101, 0o644, -100, "openat")
    assert ok.path_source is Source.SYSCALL_ENTRY and not ok.path_truncated

    bad = bcc_records.decode_open(open_record(
        ret=-36, path=b"/" + b"L" * (PATH_SIZE - 1), flags=bcc_records.F_PATH_TRUNCATED,
        syscall=2))
    assert bad.errno == 36 and bad.fd is None and bad.path_truncated
    assert bad.syscall == "openat2"

    unread = bcc_records.decode_open(open_record(
        ret=-14, path=None, flags=bcc_records.F_PATH_READ_FAILED | bcc_records.F_HOW_READ_FAILED,
        syscall=2))
    assert unread.path is None and unread.path_source is None
    assert unread.flags is None and unread.mode is None


def test_io_uring_open_records() -> None:
    """The submitter's thread, or None for an SQPOLL submission; no fd for a fixed slot
    or an unknown result; the kernel's copy of the path; never a syscall."""
    r = bcc_records
    inline = r.decode_open(open_record(ret=4, path=b"/etc/x", flags=(
        r.F_IO_URING | r.F_KERNEL_COPY | r.F_HOW_READ_FAILED)))
    assert (inline.via, inline.syscall, inline.fd, inline.tid, inline.comm) == (
        vocabulary.VIA_IO_URING, None, 4, 21, b"cat")
    assert inline.path_source is Source.KERNEL_COPY and inline.flags is None
    sqpoll = r.decode_open(open_record(ret=-2, path=b"/x", flags=(
        r.F_IO_URING | r.F_NO_THREAD | r.F_KERNEL_COPY | r.F_HOW_READ_FAILED)))
    assert (sqpoll.pid, sqpoll.tid, sqpoll.uid, sqpoll.comm, sqpoll.errno) == (
        20, None, None, None, 2)
    slot = r.decode_open(open_record(ret=0, path=b"/x", flags=r.F_IO_URING | r.F_FIXED_SLOT))
    assert slot.fd is None and slot.errno is None
    skipped = r.decode_open(open_record(ret=0, path=b"/x", flags=r.F_IO_URING | r.F_NO_RESULT))
    assert skipped.fd is None and skipped.errno is None
    failed = r.decode_open(open_record(ret=-22, path=b"/x", flags=r.F_IO_URING | r.F_NO_DFD))
    assert failed.dfd is None and failed.errno == 22 and failed.flags == 0o101
    assert failed.path_source is Source.SYSCALL_ENTRY


def test_io_uring_programs_need_the_tracepoints_and_btf(tmp_path: Any) -> None:
    every = bcc_uring.uring_flags(lambda tp: True, None)
    assert every[0] == [] and "BTF" in str(every[1])
    no_complete = bcc_uring.uring_flags(lambda tp: not tp.endswith("complete"), "/nonexistent")
    assert no_complete[0] == [] and "io_uring_complete" in str(no_complete[1])
    no_submit = bcc_uring.uring_flags(lambda tp: "submit" not in tp, "/nonexistent")
    assert no_submit[0] == [] and "io_uring_submit_req" in str(no_submit[1])
    unreadable = bcc_uring.uring_flags(lambda tp: True, str(tmp_path / "none"))
    assert unreadable[0] == [] and "does not describe" in str(unreadable[1])


# --- program flags --------------------------------------------------------------------------


def test_cflags_compile_filters_and_features_in() -> None:
    request = TraceRequest(Kind.OPEN, Filters(pid=42, uid=0, comm=b"cat", failed_only=True),
                           max_args=7)
    flags = bcc_program.cflags(request, bcc_program.Layout(False, {"HT_OFF_TGID": 1268}),
                               ["syscalls/sys_enter_openat2"], 99, 64)
    assert "-DHT_SELF_PID=99" in flags and "-DHT_MAX_ARGS=7" in flags
    assert "-DHT_PID=42" in flags and "-DHT_UID=0" in flags and "-DHT_FAILED_ONLY" in flags
    assert not any(f.startswith("-DHT_TID") for f in flags)
    assert "-DHT_RINGBUF_PAGES=64" in flags and "-DHT_PERFBUF" not in flags
    assert "-DHT_OFF_TGID=1268" in flags and "-DHT_EXACT_HEADERS" not in flags
    assert "-DHT_HAVE_OPENAT2" in flags and "-DHT_HAVE_CREAT" not in flags
    assert f"-DHT_ARG_SIZE={ARG_SIZE}" in flags and f"-DHT_PATH_SIZE={PATH_SIZE}" in flags
    lo, hi = bcc_program.comm_words(b"cat")
    assert f"-DHT_COMM0={lo:#x}ULL" in flags and f"-DHT_COMM1={hi:#x}ULL" in flags
    assert struct.pack("<QQ", lo, hi) == b"cat".ljust(16, b"\0")

    exact = bcc_program.cflags(TraceRequest(Kind.EXEC), bcc_program.Layout(True, None),
                               [], 1, None)
    assert "-DHT_EXACT_HEADERS" in exact and "-DHT_PERFBUF" in exact
    by_ppid = TraceRequest(Kind.EXEC, Filters(ppid=5))
    assert "-DHT_PPID=5" in bcc_program.cflags(by_ppid, bcc_program.Layout(True, None), [], 1, 8)
    # Without task_struct reads the kernel cannot judge ppid: user space does.
    assert not any(f.startswith("-DHT_PPID") for f in bcc_program.cflags(
        by_ppid, bcc_program.Layout(False, None), [], 1, 8))
    assert not any(f.startswith("-DHT_OFF_") for f in exact)
    assert not any(f.startswith("-DHT_HAVE_") for f in exact)
    assert bcc_program.Layout(False, None).task_reads is False


def test_program_text_has_every_tracepoint_it_attaches() -> None:
    for kind in Kind:
        text = bcc_program.source(kind)
        for tp in list(vocabulary.required_tracepoints(kind.value)) + list(
                bcc_program.OPTIONAL_TRACEPOINTS[kind].values()):
            category, event = tp.split("/")
            assert f"TRACEPOINT_PROBE({category}, {event})" in text


# --- headers and the assessment -------------------------------------------------------------


def make_tree(root: str, release: Optional[str], complete: bool = True) -> str:
    os.makedirs(os.path.join(root, "include", "linux"))
    os.makedirs(os.path.join(root, "include", "generated"))
    if complete:
        open(os.path.join(root, "include", "linux", "kconfig.h"), "w").close()
        open(os.path.join(root, "include", "generated", "autoconf.h"), "w").close()
    if release:
        with open(os.path.join(root, "include", "generated", "utsrelease.h"), "w") as f:
            f.write(f'#define UTS_RELEASE "{release}"\n')
    return root


def test_headers_lookup(tmp_path: os.PathLike[str]) -> None:
    base = str(tmp_path)
    borrowed = make_tree(os.path.join(base, "b"), "6.1.0-56-amd64")
    exact = make_tree(os.path.join(base, "e"), "6.18.0")
    env: Dict[str, str] = {headers.ENV_VAR: borrowed}
    tree = headers.locate("6.18.0", None, False, env)
    assert (tree.source, tree.release, tree.exact) == (borrowed, "6.1.0-56-amd64", False)
    assert headers.ENV_VAR in tree.origin
    tree = headers.locate("6.18.0", None, False, {headers.BCC_ENV_VAR: exact})
    assert tree.exact and tree.source == exact
    tree = headers.locate("6.18.0", exact, False, {})
    assert tree.exact and tree.source is None  # BCC finds /lib/modules itself
    assert headers.locate("6.18.0", None, True, {}).origin.endswith("kheaders.tar.xz")
    with pytest.raises(headers.HeadersError, match=r"linux-headers-6\.18\.0"):
        headers.locate("6.18.0", None, False, {})
    broken = make_tree(os.path.join(base, "x"), None, complete=False)
    with pytest.raises(headers.HeadersError, match="linux-headers-R-common") as info:
        headers.locate("6.18.0", None, False, {headers.ENV_VAR: broken})
    assert "tools/" not in str(info.value)  # a user of the wheel has no repository


def test_assessment_with_borrowed_headers(tmp_path: os.PathLike[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    caps = probe_tree("host-6.18-root")
    for var in (headers.ENV_VAR, headers.BCC_ENV_VAR):
        monkeypatch.delenv(var, raising=False)
    plain = assess_bcc(caps, "exec")
    assert not plain.usable and "no-headers" in [r.code for r in plain.reasons]
    monkeypatch.setenv(headers.ENV_VAR, make_tree(str(tmp_path), "6.1.0-56-amd64"))
    with_btf = assess_bcc(caps, "exec")
    codes = [r.code for r in with_btf.reasons]
    assert "no-headers" not in codes and "borrowed-headers" in codes
    assert with_btf.fields["ppid"] == "complete"
    no_btf = assess_bcc(attrs.evolve(caps, btf=attrs.evolve(caps.btf, path=None)), "exec")
    assert "borrowed-headers" in [r.code for r in no_btf.reasons]
    assert no_btf.fields["ppid"].startswith("partial")
    assert no_btf.fields["argv"].startswith("partial")


# --- importing BCC --------------------------------------------------------------------------


def fake_package(root: str, body: str) -> str:
    os.makedirs(os.path.join(root, "bcc"))
    with open(os.path.join(root, "bcc", "__init__.py"), "w") as f:
        f.write(body)
    return os.path.join(root, "bcc")


@pytest.fixture
def no_bcc_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in sys.modules if n == "bcc" or n.startswith("bcc.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(bcc_import, "SYSTEM_DIRS", ())


def test_import_takes_the_reported_location_only_for_the_import(
        tmp_path: os.PathLike[str], no_bcc_loaded: None) -> None:
    location = fake_package(str(tmp_path), "class BPF:\n    pass\n")
    before: List[str] = list(sys.path)
    module = bcc_import.import_bcc(location)
    assert hasattr(module, "BPF") and sys.path == before
    sys.modules.pop("bcc", None)


def test_pypi_namesake_is_refused_with_the_remedy(tmp_path: os.PathLike[str],
                                                  no_bcc_loaded: None) -> None:
    location = fake_package(str(tmp_path), "NOT_BCC = True\n")
    before = list(sys.path)
    with pytest.raises(BackendError, match="install python3-bpfcc") as info:
        bcc_import.import_bcc(location)
    assert "\n" not in str(info.value) and sys.path == before
    assert "bcc" not in sys.modules
