"""The shipped ebpf-core objects: one per kind x attach mode x transport x machine, each
built for its machine (its own pt_regs), and found by the name core_stream asks for."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from hybridtrace.backends.base import BackendError
from hybridtrace.backends.ebpf.core_stream import TRANSPORTS, object_name
from hybridtrace.request import Kind
from hybridtrace.vocabulary import CORE_ARCHES, CORE_ATTACH_MODES

BPF_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
                       "hybridtrace", "backends", "ebpf", "bpf")
# What only that machine's struct pt_regs has (x86: orig_ax; arm64: syscallno, pstate).
MACHINE_FIELD = {"x86_64": ("orig_ax", "syscallno"), "aarch64": ("syscallno", "orig_ax")}


def test_every_object_core_stream_names_is_shipped() -> None:
    names = {object_name(kind, "perf" if t == "perf" else "ring", attach, machine)
             for kind in Kind for t in TRANSPORTS for attach in CORE_ATTACH_MODES
             for machine in CORE_ARCHES}
    shipped = {n for n in os.listdir(BPF_DIR) if n.endswith(".bpf.o")}
    assert names == shipped


def test_an_unknown_machine_is_one_clear_error() -> None:
    with pytest.raises(BackendError, match="riscv64"):
        object_name(Kind.OPEN, "ring", "tp_btf", "riscv64")


@pytest.mark.skipif(shutil.which("bpftool") is None, reason="bpftool not installed")
@pytest.mark.parametrize("machine", sorted(CORE_ARCHES))
def test_tp_btf_objects_read_their_own_machines_registers(machine: str) -> None:
    has, lacks = MACHINE_FIELD[machine]
    for kind in Kind:
        path = os.path.join(BPF_DIR, object_name(kind, "ring", "tp_btf", machine))
        btf = subprocess.run(["bpftool", "btf", "dump", "file", path], capture_output=True,
                             text=True, check=True).stdout
        assert f"'{has}'" in btf and f"'{lacks}'" not in btf
