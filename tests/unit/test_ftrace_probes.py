"""Probe definitions: what the stream writes to uprobe/kprobe/dynamic events files.

The kernel is the real judge (tests/integration/test_ftrace.py creates them);
these checks hold the invariants the correlator and the text parser rely on.
"""

from __future__ import annotations

import os
import re
from typing import Dict, List

import pytest

from hybridtrace.backends.ftrace import debuginfo, probes
from hybridtrace.capabilities.libraries import TRIPLETS
from hybridtrace.elf import find_symbols

ARCH = os.uname().machine
LIBC = f"/lib/{TRIPLETS.get(ARCH, '')}/libc.so.6"
_LINE = re.compile(r"^(?P<type>[pe]):(?P<group>hybridtrace_\d+_\d+)/(?P<name>\w+) "
                   r"(?P<where>\S+) (?P<args>.*)$")


def _fields(pdef: probes.ProbeDef) -> List[str]:
    """Field names and types, without how they are fetched: ["k:x64", ...]."""
    return [a.split("=", 1)[0] + ":" + a.rsplit(":", 1)[1]
            for a in pdef.line.split(" ")[2:]]


def check_invariants(defs: List[probes.ProbeDef], shared: bool = False) -> None:
    names = [d.name for d in defs]
    if not shared:
        assert len(names) == len(set(names))  # unique within the group
    by_name: Dict[str, probes.ProbeDef] = {}
    for pdef in defs:
        # probes sharing an event: one kind of role, identical fields (the kernel insists)
        first = by_name.setdefault(pdef.name, pdef)
        assert first.role.what == pdef.role.what and _fields(first) == _fields(pdef)
        if first.role != pdef.role:  # argv slots in one event: the i field tells them apart
            assert pdef.role.what == probes.ARG and f" i=\\{pdef.role.index}:u16 " in pdef.line
        match = _LINE.match(pdef.line)
        assert match is not None, pdef.line
        assert match.group("name") == pdef.name and match.group("group") == pdef.group
        args = match.group("args").split(" ")
        assert args[0].startswith("k=") and args[0].endswith(":x64")  # the pairing key
        strings = [a for a in args if a.endswith("string")]
        # at most one string per record, and it is the last field
        assert len(strings) <= 1 and (not strings or args[-1] == strings[0])
        assert (pdef.role.what == probes.MORE) == (not strings)


@pytest.mark.skipif(ARCH not in probes.ARG_REGS or not os.path.exists(LIBC),
                    reason="needs this machine's glibc on a known architecture")
@pytest.mark.parametrize("shared,indexed", [(False, False), (True, False), (True, True)])
@pytest.mark.parametrize("kind", ["exec", "open"])
def test_uprobes_on_libc(kind: str, shared: bool, indexed: bool) -> None:
    deref = probes.Deref("+", "ustring")
    defs = probes.uprobe_defs("hybridtrace_1_0", [LIBC], ARCH, kind, 4, deref, shared,
                              indexed)
    check_invariants(defs, shared)
    names = {d.name for d in defs}
    roles = {d.role for d in defs}
    if indexed:  # every argv slot in one event
        assert len(names) == len({d.role.what for d in defs})
    elif shared:  # one event per role, however many call sites
        assert len(names) == len(roles)
    else:  # one per role and call site
        assert len(names) == len(defs)
    table = probes.LIBC_EXEC if kind == "exec" else probes.LIBC_OPEN
    offsets = find_symbols(LIBC, table)
    if kind == "open":  # hidden ones too, when debug symbols are installed
        for name, off in debuginfo.internal_functions(LIBC, probes.INTERNAL_OPEN).items():
            offsets.setdefault(name, off)
    where = {d.line.split(" ")[1] for d in defs}
    # one call site per distinct address: aliases such as open/open64 are probed once
    assert where == {f"{LIBC}:{off:#x}" for off in set(offsets.values())}
    if kind == "exec":
        execve = [d for d in defs if f":{offsets['execve']:#x} " in d.line]
        roles = sorted((d.role.what, d.role.index) for d in execve)
        assert roles == sorted([(probes.FN, 0), (probes.MORE, 4)]
                               + [(probes.ARG, i) for i in range(4)])


@pytest.mark.parametrize("arch", sorted(probes.ARG_REGS))
@pytest.mark.parametrize("wrapped", [True, False])
def test_kprobes_and_eprobes(arch: str, wrapped: bool) -> None:
    names = ("execve", "execveat", "open", "openat", "openat2", "creat")
    symbols = {(probes.WRAPPER_PREFIX[arch] if wrapped else "sys_") + n: True for n in names}
    deref = probes.Deref("+u", "ustring")
    for kind in ("exec", "open"):
        kdefs = probes.kprobe_defs("hybridtrace_1_0", arch, kind, 3, deref, symbols)
        check_invariants(kdefs)
        assert all(d.file == "kprobe_events" for d in kdefs)
        if wrapped:  # arguments are read from the pt_regs the wrapper receives
            assert all(f"({probes.ARG_REGS[arch][0]})" in d.line for d in kdefs)
        available = [f"sys_enter_{n}" for n in names]
        edefs = probes.eprobe_defs("hybridtrace_1_0", kind, 3, {"creat": "pathname"},
                                   available)
        check_invariants(edefs)
        assert all(d.line.split(" ")[1].startswith("syscalls.sys_enter_") for d in edefs)
    creat = [d for d in probes.eprobe_defs("hybridtrace_1_0", "open", 3, {"creat": "pathname"},
                                           ["sys_enter_creat"])]
    assert creat and all("$pathname" in d.line for d in creat)


@pytest.mark.skipif(not os.path.exists(LIBC), reason="needs this machine's glibc")
def test_debug_symbols_agree_with_the_exported_ones() -> None:
    if debuginfo.debug_file(os.path.realpath(LIBC)) is None:
        pytest.skip("no separate debug symbols for libc (Debian: libc6-dbg)")
    lib = os.path.realpath(LIBC)
    # __open64_nocancel is both exported (GLIBC_PRIVATE) and in the debug symbols:
    # two independent ways to the same file offset
    exported = find_symbols(lib, ["__open64_nocancel"])
    internal = debuginfo.internal_functions(lib, ["__open64_nocancel", "__openat64_nocancel"])
    assert exported and internal["__open64_nocancel"] == exported["__open64_nocancel"]
    assert "__openat64_nocancel" in internal
    assert internal["__openat64_nocancel"] not in exported.values()


def test_shared_events_from_5_5() -> None:
    assert not probes.shared_events("5.4.0-150-generic")
    assert probes.shared_events("5.10.0-30-amd64") and probes.shared_events("6.18.44-fc")


# Debian 6.1's (BTF): io_kiocb.cmd at 0, io_open.dfd at 8 and .filename at 16.
LAYOUT_6_1 = {"filename": 16, "dfd": 8, "name": 0, "handler": 1}


@pytest.mark.parametrize("arch", sorted(probes.ARG_REGS))
def test_io_uring_path_probes_read_the_request_they_name(arch: str) -> None:
    reg = probes.ARG_REGS[arch][0]
    kdef = probes.uring_kprobe_def("hybridtrace_1_0", arch, LAYOUT_6_1, {"io_openat2": True})
    assert kdef is not None and kdef.role.what == probes.URING and kdef.file == "kprobe_events"
    # the request's address, its dfd, then the string behind filename->name, last
    assert kdef.line == (f"p:hybridtrace_1_0/ht_uring_path io_openat2 r={reg}:x64"
                         f" d=+8({reg}):s32 s=+0(+0(+16({reg}))):string")
    assert _fields(kdef) == ["r:x64", "d:s32", "s:string"]
    # inlined handler, or a BTF without it: no probe rather than a guess
    assert probes.uring_kprobe_def("hybridtrace_1_0", arch, LAYOUT_6_1, {}) is None
    assert probes.uring_kprobe_def("hybridtrace_1_0", arch, dict(LAYOUT_6_1, handler=0),
                                   {"io_openat2": True}) is None


def test_io_uring_submit_eprobe_copies_the_tracepoint_and_adds_the_path() -> None:
    edef = probes.uring_eprobe_def("hybridtrace_1_0", "io_uring_submit_sqe", LAYOUT_6_1)
    assert edef.role.what == probes.URING and edef.file == "dynamic_events"
    assert edef.line == ("e:hybridtrace_1_0/ht_uring_submit io_uring.io_uring_submit_sqe"
                         " ctx=$ctx:x64 req=$req:x64 user_data=$user_data:u64"
                         " opcode=$opcode:u8 flags=$flags:u64 sq_thread=$sq_thread:u8"
                         " d=+8($req):s32 s=+0(+0(+16($req))):string")
    assert _fields(edef)[-1] == "s:string"  # the one string, last
