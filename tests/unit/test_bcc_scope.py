"""ebpf-bcc's origin reads and where-filters: which reads a kernel allows, and the -D
flags (or the one-line refusal) a request becomes."""

from __future__ import annotations

from typing import Dict, List, Tuple

import attrs
import pytest

from hybridtrace.backends.base import BackendError
from hybridtrace.backends.ebpf.bcc import bcc_scope
from hybridtrace.btf_offsets import ORIGIN_OFFSETS, ORIGIN_SIZES
from hybridtrace.request import Filters, Kind, TraceRequest
from hybridtrace.scope import CGROUP_SLOT, CONTAINER_SLOT, CgroupRoot, Scope

EVERY = {macro: 8 * i for i, macro in enumerate([*ORIGIN_OFFSETS, *ORIGIN_SIZES])}
NEW = (6, 1, 0)


def _choose(monkeypatch: pytest.MonkeyPatch, found: Dict[str, int], *, exact: bool = False,
            task_reads: bool = True, version: Tuple[int, int, int] = NEW) -> bcc_scope.Origin:
    monkeypatch.setattr(bcc_scope, "origin_offsets", lambda _path: dict(found))
    return bcc_scope.choose(exact, task_reads, "/sys/kernel/btf/vmlinux", version)


def test_every_offset_from_btf_reads_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    origin = _choose(monkeypatch, EVERY)
    assert (origin.cgroup_id, origin.mntns, origin.pidns) == (True, True, True)
    assert origin.note() == "origin: cgroup id, mntns, pidns and ns pids"


def test_a_missing_offset_leaves_only_its_read_out(monkeypatch: pytest.MonkeyPatch) -> None:
    no_mnt = {k: v for k, v in EVERY.items() if k != "HT_OFF_MNT_NS_NS"}
    origin = _choose(monkeypatch, no_mnt)
    assert (origin.mntns, origin.pidns) == (False, True)
    no_upid = {k: v for k, v in EVERY.items() if k != "HT_SIZE_UPID"}
    assert _choose(monkeypatch, no_upid).pidns is False
    # The ns pids need the parent: no task reads, no pid namespace reads.
    assert _choose(monkeypatch, EVERY, task_reads=False).pidns is False


def test_exact_headers_give_all_but_the_mount_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    origin = _choose(monkeypatch, {}, exact=True)
    assert (origin.mntns, origin.pidns) == (False, True)
    # Before 4.19 there is no task_struct.thread_pid for offsetof to name.
    assert _choose(monkeypatch, {}, exact=True, version=(4, 18, 0)).pidns is False
    assert _choose(monkeypatch, {"HT_OFF_MNT_NS_NS": 0}, exact=True).mntns is True


def test_no_btf_and_an_old_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    origin = bcc_scope.choose(False, True, None, (4, 17, 0))
    assert (origin.cgroup_id, origin.mntns, origin.pidns) == (False, False, False)
    assert origin.note() == "origin: none"
    assert "-DHT_CGROUP_HELPER" not in bcc_scope.cflags(TraceRequest(Kind.EXEC), origin)


NO_SCOPE = Scope()


def _flags(filters: Filters, origin: bcc_scope.Origin, scope: Scope = NO_SCOPE) -> List[str]:
    return bcc_scope.cflags(TraceRequest(Kind.OPEN, filters, scope=scope), origin)


ALL = bcc_scope.Origin(EVERY, True, True, True)


def test_where_filters_become_macros() -> None:
    assert not any(f.startswith(("-DHT_WHERE", "-DHT_MNTNS", "-DHT_CGROUP_SLOT"))
                   for f in _flags(Filters(), ALL))
    roots = (CgroupRoot(CGROUP_SLOT, b"/a", 5, b"/sys/fs/cgroup/a"),
             CgroupRoot(CONTAINER_SLOT, b"/a/b", 6, b"/sys/fs/cgroup/a/b"))
    flags = _flags(Filters(cgroup="/a", container="ab", mntns=4026531840), ALL, Scope(roots))
    assert {"-DHT_CGROUP_SLOT0", "-DHT_CGROUP_SLOT1", "-DHT_MNTNS=4026531840",
            "-DHT_WHERE", "-DHT_CGROUP_HELPER"} <= set(flags)
    assert "-DHT_OFF_MNT_NS_NS=16" in flags  # the offsets themselves, as macros
    follow = _flags(Filters(descendants_of=1), ALL)
    assert "-DHT_FOLLOW" in follow and "-DHT_WHERE" not in follow
    assert any(f.startswith("-DHT_FOLLOW_MAX=") for f in follow)


def test_what_cannot_be_read_cannot_filter() -> None:
    blind = attrs.evolve(ALL, mntns=False)
    with pytest.raises(BackendError, match="cannot filter by --mntns here"):
        _flags(Filters(mntns=1), blind)
    with pytest.raises(BackendError, match="cannot filter by --mntnsmap here"):
        _flags(Filters(mntnsmap="/sys/fs/bpf/x"), blind)
    with pytest.raises(BackendError, match=r"--cgroupmap on a kernel before 4\.18"):
        _flags(Filters(cgroupmap="/sys/fs/bpf/x"), attrs.evolve(ALL, cgroup_id=False))


def test_a_pin_path_that_would_break_the_program_text_is_refused() -> None:
    with pytest.raises(BackendError, match="quote, backslash or newline"):
        _flags(Filters(cgroupmap='/sys/fs/bpf/a"b'), ALL)
