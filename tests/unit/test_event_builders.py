"""make_open and make_exec: the hot loops' constructors give the very events the classes do."""

from __future__ import annotations

import pickle

import attrs
import pytest

from hybridtrace.events import (
    ORIGIN_FIELDS,
    ExecEvent,
    OpenEvent,
    Source,
    fill_origin,
    make_exec,
    make_open,
)

# Every field given a value no default has, positionally, in declaration order.
_OPEN_ARGS = (7, 10, 11, 0, b"cat", b"/etc/passwd", 0o2, 0o644, 3, None, Source.TRACEPOINT,
              "openat2", -100, True, 42, b"/user.slice", "a" * 64, 4026531840, 4026531836,
              5, 6, "io_uring")
_EXEC_ARGS = (8, 12, 12, 10, 1000, b"sh", b"/bin/sh", (b"sh", b"-c"), -2, True,
              Source.TRACEPOINT, Source.PROCFS, "execveat", 43, b"/system.slice", "b" * 64,
              4026531841, 4026531837, 2, 2, 0)


@pytest.mark.parametrize("cls, make, args", [
    (OpenEvent, make_open, _OPEN_ARGS),
    (ExecEvent, make_exec, _EXEC_ARGS),
])
def test_builder_makes_the_event_the_class_makes(cls, make, args) -> None:
    names = [f.name for f in attrs.fields(cls)]
    assert len(args) == len(names)  # the test sets every field
    built = make(*args)
    assert type(built) is cls
    assert built == cls(*args)
    assert [getattr(built, name) for name in names] == list(args)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        built.pid = 1
    copied = pickle.loads(pickle.dumps(built))  # e.g. handed to another process
    assert type(copied) is cls and copied == built
    # keywords and defaults as the class takes them
    required = [f.name for f in attrs.fields(cls) if f.default is attrs.NOTHING]
    kwargs = dict(zip(required, args))
    assert make(**kwargs) == cls(**kwargs)
    assert hash(make(**kwargs)) == hash(cls(**kwargs))


def test_builder_refuses_what_the_class_refuses() -> None:
    with pytest.raises(TypeError):
        make_open(1, 2, 3)  # missing fields
    with pytest.raises(TypeError):
        make_exec(*_EXEC_ARGS, bogus=1)


@pytest.mark.parametrize("cls, args", [(OpenEvent, _OPEN_ARGS), (ExecEvent, _EXEC_ARGS)])
def test_fill_origin_sets_the_origin_fields_and_nothing_else(cls, args) -> None:
    event = cls(*args)
    before = attrs.asdict(event, recurse=False)
    values = dict(pidns=1, ns_pid=2, ns_tid=3, mntns=4, cgroup=b"/x", cgroup_id=5,
                  container_id=None)
    fill_origin(event, **values)
    assert type(event) is cls
    after = attrs.asdict(event, recurse=False)
    assert {k: v for k, v in after.items() if k not in values} == \
        {k: v for k, v in before.items() if k not in values}
    assert {k: after[k] for k in values} == values
    assert set(values) == set(ORIGIN_FIELDS)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        event.mntns = 9
