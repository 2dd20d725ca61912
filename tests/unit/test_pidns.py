"""Pids in the tracer's own pid namespace (hybridtrace.pidns)."""

from __future__ import annotations

import os

from hybridtrace.backends.ebpf.core_stream import config_bytes
from hybridtrace.backends.ebpf.records import CONFIG
from hybridtrace.pidns import nested, own_pidns
from hybridtrace.request import TraceRequest
from hybridtrace.vocabulary import INIT_PIDNS_INODE

OURS = 4026532245


def test_host_namespace_is_not_nested() -> None:
    assert not nested(INIT_PIDNS_INODE) and not nested(None) and nested(OURS)


def test_own_pidns_is_the_inode_or_none() -> None:
    assert own_pidns() == os.stat("/proc/self/ns/pid").st_ino
    assert own_pidns("/nonexistent/ns/pid") is None


def test_the_kernel_is_given_the_namespace_to_number_pids_in() -> None:
    """The programs give events the tracer's namespace's pids only when asked
    (bpf/common.h ht_cfg.view_pidns, 0: the host's)."""
    host = CONFIG.unpack(config_bytes(TraceRequest("exec"), 1234))
    inside = CONFIG.unpack(config_bytes(TraceRequest("exec", pid_view=OURS), 5))
    assert host[0] == 1234 and host[-1] == 0
    assert inside[0] == 5 and inside[-1] == OURS  # self_tgid is then that namespace's too
