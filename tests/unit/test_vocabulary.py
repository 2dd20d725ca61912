"""The kernel vocabulary is one source: the BPF side and every layer agree with it."""

from __future__ import annotations

import os
import re

import pytest

from hybridtrace import vocabulary
from hybridtrace.backends.ebpf.bcc import bcc_program
from hybridtrace.request import Kind, TraceRequest

BPF_DIR = os.path.join(os.path.dirname(vocabulary.__file__), "backends", "ebpf", "bpf")


def test_core_record_syscall_indexes_match_vocabulary() -> None:
    """The shipped objects write enum ht_syscall; decoding reads vocabulary's order."""
    with open(os.path.join(BPF_DIR, "common.h")) as f:
        text = f.read()
    enum = re.search(r"enum ht_syscall \{(.*?)\};", text, re.S)
    assert enum is not None
    pairs = re.findall(r"HT_SYS_(\w+) = (\d+)", enum.group(1))
    values = {name.lower(): int(v) for name, v in pairs}
    for kind in ("exec", "open"):
        for i, name in enumerate(vocabulary.syscalls_for(kind)):
            assert values.pop(name) == i
    assert values == {}


@pytest.mark.parametrize("kind", list(Kind))
def test_bcc_programs_get_indexes_and_optional_syscalls_from_vocabulary(kind: Kind) -> None:
    names = vocabulary.syscalls_for(kind.value)
    with open(os.path.join(os.path.dirname(bcc_program.__file__), f"{kind.value}.c")) as f:
        source = f.read()
    used = set(re.findall(r"HT_SYS_(\w+)[,)]", source))
    assert used == {n.upper() for n in names}
    assert set(bcc_program.OPTIONAL_TRACEPOINTS[kind].values()) == set(
        vocabulary.OPTIONAL_TRACEPOINTS[kind.value])
    for macro in bcc_program.OPTIONAL_TRACEPOINTS[kind]:
        assert f"#ifdef {macro}" in source or f"defined({macro})" in source, macro
    assert TraceRequest(kind) is not None


def test_syscall_at_never_guesses() -> None:
    assert vocabulary.syscall_at("open", 2) == "openat2"
    assert vocabulary.syscall_at("open", 4) is None
    assert vocabulary.syscall_at("exec", -1) is None


def test_generic_syscall_arches_have_no_open_or_creat() -> None:
    assert "open" not in vocabulary.syscalls_on("aarch64")
    assert "creat" not in vocabulary.syscalls_on("aarch64")
    assert set(vocabulary.syscalls_on("x86_64")) == set(vocabulary.SYSCALL_ARGS)


def test_required_tracepoints_are_reported_by_doctor() -> None:
    for kind in ("exec", "open"):
        assert set(vocabulary.required_tracepoints(kind)) <= set(vocabulary.TRACEPOINTS)
        assert set(vocabulary.OPTIONAL_TRACEPOINTS[kind]) <= set(vocabulary.TRACEPOINTS)


def test_owned_names_round_trip() -> None:
    name = vocabulary.owned_name("7", pid=1234)
    assert name == "hybridtrace_1234_7"
    assert vocabulary.owner_of(name) == 1234
    assert vocabulary.owner_of(vocabulary.owned_name("doctor")) == os.getpid()
    assert vocabulary.owner_of("hybridtrace_x_1") is None
    with pytest.raises(ValueError):
        vocabulary.owned_name("a/b")
