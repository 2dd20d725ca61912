"""Format-file parsing over every format recorded from real kernels, plus old layouts."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Tuple

import pytest

from hybridtrace.backends.ftrace.format import (
    EventFormat,
    FormatError,
    parse_format,
    read_format,
)
from hybridtrace.backends.ftrace.trace_record import ENTER
from tests.unit.ftrace_fixtures import Recording, recordings

FORMATS: List[Tuple[Recording, Dict[str, str]]] = [
    (rec, f) for rec in recordings() for f in rec.manifest["formats"]
]
_ids = [f"{rec.name}/{f['system']}/{f['name']}" for rec, f in FORMATS]
_SIZES = {"s8": 1, "u8": 1, "x8": 1, "s16": 2, "u16": 2, "x16": 2, "s32": 4, "u32": 4,
          "x32": 4, "s64": 8, "u64": 8, "x64": 8}


def _probe_args(definition: str) -> List[Tuple[str, str]]:
    """(name, type) of each fetch argument of a probe definition."""
    out = []
    for token in definition.split()[2:]:
        name, _, fetch = token.partition("=")
        out.append((name, fetch.rsplit(":", 1)[1]))
    return out


@pytest.mark.parametrize(("rec", "info"), FORMATS, ids=_ids)
def test_recorded_format_parses(rec: Recording, info: Dict[str, str]) -> None:
    fmt = read_format(rec.formats_dir, info["system"], info["name"])
    assert (fmt.system, fmt.name) == (info["system"], info["name"])
    assert fmt.id > 0
    assert fmt.fields[0].name == "common_type" and fmt.fields[0].offset == 0
    assert {"common_type", "common_pid"} <= {f.name for f in fmt.common_fields}
    ordered = sorted(fmt.fields, key=lambda f: f.offset)
    for a, b in zip(ordered, ordered[1:]):
        assert a.offset + a.size <= b.offset, (a, b)
    assert fmt.common_fields + fmt.own_fields == fmt.fields
    assert fmt.print_fmt.startswith('"')
    for fld in fmt.fields:
        assert fmt.field(fld.name) == fld
    assert fmt.field("no_such_field") is None


def _syscall_formats() -> List[Tuple[Recording, EventFormat]]:
    return [(rec, fmt) for rec in recordings() for fmt in rec.formats
            if fmt.system == "syscalls"]


@pytest.mark.parametrize(("rec", "fmt"), _syscall_formats(),
                         ids=lambda v: v.name if isinstance(v, (Recording, EventFormat)) else "")
def test_syscall_fields_match_what_trace_pipe_prints(rec: Recording, fmt: EventFormat) -> None:
    nr = fmt.syscall_nr_field
    assert nr is not None and nr.size == 4 and nr.signed
    own = [f.name for f in fmt.own_fields if f is not nr]
    if fmt.name.startswith("sys_exit_"):
        assert own == ["ret"]
        assert fmt.field("ret") is not None and fmt.field("ret").signed  # type: ignore[union-attr]
        return
    printed = "sys_" + fmt.name[len("sys_enter_"):]
    seen = [r for phase in rec.phases for r in rec.parse(phase, hinted=False)
            if r.event == printed and r.style == ENTER]
    for r in seen:
        assert list(r.args) == own, r.raw  # the generic split found exactly these names
    assert any(f.is_pointer for f in fmt.own_fields)  # the path: a user pointer


def _sched(name: str) -> List[EventFormat]:
    return [fmt for rec in recordings() for fmt in rec.formats if fmt.name == name]


@pytest.mark.parametrize("fmt", _sched("sched_process_exec"), ids=lambda f: f.name)
def test_sched_process_exec_has_a_string_filename(fmt: EventFormat) -> None:
    filename = fmt.field("filename")
    assert filename is not None and filename.is_string
    assert fmt.print_labels == ("filename", "pid", "old_pid")


@pytest.mark.parametrize("fmt", _sched("sched_process_fork"), ids=lambda f: f.name)
def test_sched_process_fork_fields(fmt: EventFormat) -> None:
    comm = fmt.field("parent_comm")
    assert comm is not None and comm.is_string
    assert fmt.field("child_pid") is not None
    assert fmt.print_labels[:2] == ("comm", "pid")  # printed labels differ from field names


def _probe_formats() -> List[Tuple[Recording, Dict[str, str]]]:
    return [(rec, p) for rec in recordings() for p in rec.manifest["probes"]]


@pytest.mark.parametrize(("rec", "probe"), _probe_formats(),
                         ids=lambda v: v["name"] if isinstance(v, dict) else v.name)
def test_probe_format_matches_its_definition(rec: Recording, probe: Dict[str, str]) -> None:
    fmt = read_format(rec.formats_dir, "probes", probe["name"])
    args = _probe_args(probe["definition"])
    location = [f.name for f in fmt.own_fields if f.name.startswith("__probe")]
    if probe["kind"] != "eprobe":  # eprobes: whatever their kernel puts first
        assert location in (["__probe_ip"], ["__probe_func", "__probe_ret_ip"])
    assert [f.name for f in fmt.own_fields if not f.name.startswith("__probe")] == [
        name for name, _ in args
    ]
    assert fmt.print_labels == tuple(name for name, _ in args)
    for name, kind in args:
        fld = fmt.field(name)
        assert fld is not None
        if kind in ("string", "ustring"):
            assert fld.is_string and fld.data_loc and fld.size == 4
        else:
            assert fld.size == _SIZES[kind] and fld.signed == kind.startswith("s")
            assert not fld.is_string


_OLD_KERNEL = """name: sys_enter_openat
ID: 614
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:int nr;\toffset:8;\tsize:4;\tsigned:1;
\tfield:int dfd;\toffset:16;\tsize:8;\tsigned:0;
\tfield:const char * filename;\toffset:24;\tsize:8;\tsigned:0;
\tfield:char comm[16];\toffset:32;\tsize:16;\tsigned:1;
\tfield:const char *const * argv;\toffset:48;\tsize:8;\tsigned:0;
\tfield:__rel_loc char[] name;\toffset:56;\tsize:4;\tsigned:0;
\tfield:unsigned long long big;\toffset:64;\tsize:8;

print fmt: "dfd: 0x%08lx, filename: 0x%08lx", ((unsigned long)(REC->dfd)), REC->filename
"""


def test_old_layouts() -> None:
    fmt = parse_format(_OLD_KERNEL, "syscalls")
    nr = fmt.syscall_nr_field
    assert nr is not None and nr.name == "nr"
    comm = fmt.field("comm")
    assert comm is not None and comm.ctype == "char[16]" and comm.array_len == 16
    assert comm.is_string and not comm.data_loc
    argv = fmt.field("argv")
    assert argv is not None and argv.ctype == "const char *const *" and argv.is_pointer
    name = fmt.field("name")
    assert name is not None and name.data_loc and name.rel_loc and name.is_string
    big = fmt.field("big")
    assert big is not None and big.ctype == "unsigned long long" and big.signed is False
    assert fmt.print_labels == ("dfd", "filename") and fmt.print_separator == ": "


@pytest.mark.parametrize("text", [
    "",
    "name: x\nformat:\n",
    "name: x\nID: nope\n",
    "name: x\nID: 1\nformat:\n\tfield:;\toffset:0;\tsize:2;\tsigned:0;\n",
    "name: x\nID: 1\nformat:\n\tfield:int a;\toffset:zero;\n",
])
def test_malformed_format_is_a_clear_error(text: str) -> None:
    with pytest.raises(FormatError):
        parse_format(text, "sys")


def test_missing_event_names_it(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match="syscalls/sys_enter_nothing"):
        read_format(str(tmp_path), "syscalls", "sys_enter_nothing")
