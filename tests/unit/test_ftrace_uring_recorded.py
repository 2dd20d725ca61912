"""io_uring opens replayed from records a real kernel wrote (no root needed).

tests/fixtures/ftrace_uring/ holds what the kprobe and eprobe tiers' streams read
while tools/groundtruth's gt opened through io_uring (tools/record_ftrace_stream.py
--workload uring, in the Debian 6.1 VM), with what each open really did. Among them
are opens into a fixed file slot with O_CLOEXEC, which the kernel refuses while
preparing the request (EINVAL, io_uring_req_failed, no submission): their path is
the caller's, from the prep kprobes' or the failure eprobe's records.
"""

from __future__ import annotations

import errno
import os
from typing import List

import pytest

from hybridtrace.backends.ftrace.probes import Role
from hybridtrace.events import OpenEvent, Source
from hybridtrace.request import Kind
from hybridtrace.vocabulary import VIA_IO_URING
from tests.unit.test_ftrace_correlate import correlate, load_stream, only_recorder

URING_ROOT = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures",
                          "ftrace_uring")


def recordings() -> List[str]:
    if not os.path.isdir(URING_ROOT):
        return []
    return sorted(name for name in os.listdir(URING_ROOT)
                  if os.path.exists(os.path.join(URING_ROOT, name, "open.json")))


def test_recordings_exist() -> None:
    assert {name.split("-")[-2] for name in recordings()} >= {"kprobe", "eprobe"}


@pytest.mark.parametrize("name", recordings())
def test_every_recorded_io_uring_open_has_its_path(name: str) -> None:
    meta, lines = load_stream(name, "open", URING_ROOT)
    roles = {probe: Role(what, index) for probe, (what, index) in meta["roles"].items()}
    source = None if meta["probe_source"] is None else Source(meta["probe_source"])
    events = correlate(Kind.OPEN, lines, roles, source, meta["max_args"],
                       only_recorder(meta["recorder_pid"]))
    mine = [e for e in events if isinstance(e, OpenEvent) and e.via == VIA_IO_URING]
    refused = [want for want in meta["opens"] if want["errno"] == errno.EINVAL]
    assert len(refused) == 2  # the recording holds what the kernel refuses in preparation
    for want in meta["opens"]:
        path = bytes.fromhex(want["path"])
        got = [e for e in mine if e.path in (path, None) and e.errno == want["errno"]]
        assert len(got) == 1, (want, got)
        ev = got[0]
        assert ev.path == path and ev.tid == want["tid"], (want, ev)
        if want in refused:  # never submitted: the caller's path, the dfd in no record
            assert ev.path_source is Source.SYSCALL_ENTRY and ev.dfd is None
        else:
            assert ev.path_source is Source.KERNEL_COPY and ev.dfd == -100  # AT_FDCWD
