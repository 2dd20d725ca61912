"""The ground-truth check judges every event's origin fields (namespaces, cgroup, container,
the ids a process sees in its own pid namespace) against what the workload's thread said,
so a plausible wrong origin fails a run as any other wrong field does."""

from __future__ import annotations

import json
from typing import List, Optional, Sequence, Union

import attrs

from hybridtrace.events import ExecEvent, OpenEvent, Source
from tools.groundtruth import check, table, workload

DOCKER = "d" * 64
HERE = workload.Origin(pidns=4026531836, mntns=4026531832, cgroup=b"/user.slice",
                       cgroup_id=4242, ns_pid=10, ns_tid=11)
IN_CONTAINER = attrs.evolve(HERE, cgroup=b"/system.slice/docker-%s.scope" % DOCKER.encode(),
                            ns_pid=1, ns_tid=2, pidns=4026532000)


def _open_op(origin: Optional[workload.Origin] = HERE) -> workload.OpenOp:
    return workload.OpenOp(1, 10, 11, 1, 0, b"gt", "openat", "sys_openat", -100, b"/w/on-1",
                           0, 0, 3, None, b"/w/on-1", 1000, 2000, origin=origin)


def _open_event(op: workload.OpenOp, origin: Optional[workload.Origin] = HERE,
                cid: Optional[str] = None, **change: object) -> OpenEvent:
    ev = OpenEvent(1500, op.pid, op.tid, op.uid, op.comm, op.path, op.flags, op.mode, op.fd,
                   None, Source.SYSCALL_ENTRY, op.syscall, op.dfd)
    if origin is not None:
        ev = attrs.evolve(ev, pidns=origin.pidns, mntns=origin.mntns, cgroup=origin.cgroup,
                          cgroup_id=origin.cgroup_id, container_id=cid,
                          ns_pid=origin.ns_pid, ns_tid=origin.ns_tid)
    return attrs.evolve(ev, **change)


def _compare(ops: Sequence[object], events: Sequence[Union[OpenEvent, ExecEvent]]
             ) -> check.Result:
    result = check.Result("ftrace/tracepoint", 7, len(ops), 0.0)
    check.compare(result, ops, events, "n", arch="x86_64")
    return result


def _verdicts(result: check.Result, kind: str, field: str) -> List[str]:
    return sorted(result.fields.get((kind, field), {}).elements())


def test_the_origin_the_workload_logged_is_correct() -> None:
    op = _open_op()
    result = _compare([op], [_open_event(op)])
    for field in ("pidns", "mntns", "cgroup", "cgroup_id", "container_id", "ns_pid", "ns_tid"):
        assert _verdicts(result, "open", field) == [check.CORRECT], field
    assert result.passed and result.wrong_total == 0


def test_a_pid_namespace_off_by_one_is_wrong() -> None:
    op = _open_op()
    result = _compare([op], [_open_event(op, pidns=HERE.pidns + 1)])
    assert _verdicts(result, "open", "pidns") == [check.WRONG]
    assert result.wrong_total == 1 and not result.passed
    (m,) = result.wrong
    assert (m.field, m.expected, m.got) == ("pidns", HERE.pidns, HERE.pidns + 1)


def test_each_wrong_origin_field_is_flagged_and_none_is_counted() -> None:
    op = _open_op()
    for field, value in (("mntns", 1), ("cgroup", b"/other"), ("cgroup_id", 1),
                         ("ns_pid", 11), ("ns_tid", 10), ("container_id", DOCKER)):
        result = _compare([op], [_open_event(op, **{field: value})])
        assert _verdicts(result, "open", field) == [check.WRONG], field
        unknown = _compare([op], [_open_event(op, **{field: None})])
        want = check.CORRECT if field == "container_id" else check.NONE  # no container
        assert _verdicts(unknown, "open", field) == [want], field
        assert unknown.passed
    # no container and no path either: the backend did not know, not "none"
    result = _compare([op], [_open_event(op, cgroup=None)])
    assert _verdicts(result, "open", "container_id") == [check.NONE]


def test_container_id_is_what_the_logged_path_names() -> None:
    op = _open_op(IN_CONTAINER)
    right = _compare([op], [_open_event(op, IN_CONTAINER, cid=DOCKER)])
    assert _verdicts(right, "open", "container_id") == [check.CORRECT]
    unknown = _compare([op], [_open_event(op, IN_CONTAINER, cid=None)])
    assert _verdicts(unknown, "open", "container_id") == [check.NONE]
    other = _compare([op], [_open_event(op, IN_CONTAINER, cid="e" * 64)])
    assert _verdicts(other, "open", "container_id") == [check.WRONG]


def test_a_log_without_origins_judges_none_and_no_mount_leaves_cgroup_id_unjudged() -> None:
    op = _open_op(origin=None)
    result = _compare([op], [_open_event(op)])
    assert ("open", "pidns") not in result.fields
    no_mount = _open_op(attrs.evolve(HERE, cgroup_id=None))
    result = _compare([no_mount], [_open_event(no_mount, cgroup_id=7)])
    assert ("open", "cgroup_id") not in result.fields
    assert _verdicts(result, "open", "pidns") == [check.CORRECT]


def _exec(ns_tid: int, ns_ppid: Optional[int]) -> Sequence[object]:
    image = workload.Image(10, 10, 1, 0, b"x", (b"/w/x", b"a"), attrs.evolve(HERE, ns_tid=10))
    op = workload.ExecOp(2, 10, 11, 1, 0, b"gt", "execve", "execve", -100, 0, b"/w/x",
                         (b"/w/x", b"a"), 0, image, 1000, 2000, HERE)
    ev = ExecEvent(1500, 10, 10, 1, 0, b"x", b"/w/x", (b"/w/x", b"a"), 0,
                   filename_source=Source.SYSCALL_ENTRY, argv_source=Source.SYSCALL_ENTRY,
                   cgroup_id=HERE.cgroup_id, cgroup=HERE.cgroup, mntns=HERE.mntns,
                   pidns=HERE.pidns, ns_pid=HERE.ns_pid, ns_tid=ns_tid, ns_ppid=ns_ppid)
    return op, ev


def test_an_exec_from_a_thread_may_name_its_tid_or_the_leader_and_its_parent() -> None:
    for ns_tid in (HERE.ns_tid, HERE.ns_pid):  # the caller, or the leader it became
        op, ev = _exec(ns_tid, 1)
        result = _compare([op], [ev])  # type: ignore[list-item]
        assert _verdicts(result, "exec", "ns_tid") == [check.CORRECT]
        assert _verdicts(result, "exec", "ns_ppid") == [check.CORRECT]
    op, ev = _exec(12, 2)
    result = _compare([op], [ev])  # type: ignore[list-item]
    assert _verdicts(result, "exec", "ns_tid") == [check.WRONG]
    assert _verdicts(result, "exec", "ns_ppid") == [check.WRONG]
    assert not result.passed


def test_the_log_parses_origins_and_the_page_shows_their_rows() -> None:
    rec = {"k": "open", "seq": 1, "pid": 10, "tid": 11, "ppid": 1, "uid": 0, "euid": 0,
           "comm": b"gt".hex(), "pidns": 5, "mntns": 6, "cgroup": b"/a b".hex(), "cgid": 9,
           "nspid": 10, "nstid": 11, "sys": "openat", "method": "sys_openat", "dfd": -100,
           "path": b"/w/o".hex(), "flags": 0, "mode": 0, "ret": 3, "t0": 1, "t1": 2}
    (op,) = workload.parse_log(json.dumps(rec).encode() + b"\n")
    assert isinstance(op, workload.OpenOp)
    assert op.origin == workload.Origin(5, 6, b"/a b", 9, 10, 11)
    bare = {k: v for k, v in rec.items() if k not in ("cgroup", "cgid")}
    (op,) = workload.parse_log(json.dumps(bare).encode())
    assert isinstance(op, workload.OpenOp) and op.origin is not None
    assert (op.origin.cgroup, op.origin.cgroup_id) == (None, None)
    page = table.render([_compare([_open_op()], [_open_event(_open_op(), pidns=1)])], [],
                        "cmd", "m")
    assert "| pidns | 0 / 0 / **1 WRONG** |" in page and "| ns_tid | 1 / 0 |" in page
