"""hybridtrace.kernel_state over a recording of this machine with sessions of ours open.

tests/fixtures/kernel_state/NAME was written by tools/record_kernel_state.py:
the tracefs control files, every fd's fdinfo, and a manifest with the kernel's
own label of each fd (/proc/self/fd/N) to judge the parsers by.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Dict

import pytest

from hybridtrace import kernel_state
from hybridtrace.vocabulary import owner_of

RECORDINGS = Path(__file__).resolve().parents[1] / "fixtures" / "kernel_state"
NAMES = sorted(p.name for p in RECORDINGS.iterdir() if (p / "manifest.json").exists())
# What the kernel calls each kind of BPF fd in /proc/PID/fd.
LABELS = {"anon_inode:bpf-prog": "prog", "anon_inode:bpf-map": "map",
          "anon_inode:bpf_link": "link", "anon_inode:btf": "btf"}


@pytest.fixture(params=NAMES)
def rec(request: pytest.FixtureRequest) -> Path:
    return RECORDINGS / str(request.param)


def manifest(rec: Path) -> Dict[str, Any]:
    with open(rec / "manifest.json") as f:
        return dict(json.load(f))


def fake_tracefs(rec: Path, tmp: Path, top_set_event: str = "set_event") -> Path:
    """A tracefs-like directory: the recorded control files and empty instance dirs."""
    root = tmp / "tracing"
    (root / "instances").mkdir(parents=True)
    for name in kernel_state.PROBE_FILES:
        if (rec / name).exists():
            shutil.copy(rec / name, root / name)
    shutil.copy(rec / top_set_event, root / "set_event")
    for name in [*manifest(rec)["instances"], "foreign", "hybridtrace_x_0"]:
        (root / "instances" / name).mkdir()
    return root


def fake_proc(rec: Path, tmp: Path) -> Path:
    proc = tmp / "proc"
    shutil.copytree(rec / "fdinfo", proc / str(manifest(rec)["pid"]) / "fdinfo")
    return proc


def test_recordings_exist() -> None:
    assert NAMES, f"no recording under {RECORDINGS} (tools/record_kernel_state.py)"


def test_fdinfo_kind_agrees_with_the_kernels_label(rec: Path) -> None:
    seen = set()
    for fd, label in manifest(rec)["fd_targets"].items():
        parsed = kernel_state.parse_fdinfo((rec / "fdinfo" / fd).read_text())
        if label in LABELS:
            assert parsed is not None and parsed[0] == LABELS[label], (fd, label, parsed)
            # a link names its program too: the id must be the link's own
            assert f"{parsed[0]}_id:\t{parsed[1]}\n" in (rec / "fdinfo" / fd).read_text()
            seen.add(parsed[0])
        else:
            assert parsed is None, (fd, label, parsed)
    assert {"prog", "map", "link"} <= seen


def test_bpf_held_lists_each_bpf_fd_once(rec: Path, tmp_path: Path) -> None:
    m = manifest(rec)
    proc = fake_proc(rec, tmp_path)
    held = kernel_state.bpf_held(m["pid"], str(proc))
    want = {f"fd {fd}": LABELS[t] for fd, t in m["fd_targets"].items() if t in LABELS}
    assert {item.where: item.kind for item in held} == {w: f"bpf-{k}" for w, k in want.items()}
    assert len(held) == len(want)
    assert kernel_state.bpf_held(m["pid"] + 1, str(proc)) == []  # no such process


def test_probe_lines_name_the_recording_process(rec: Path) -> None:
    pid = manifest(rec)["pid"]
    text = (rec / "dynamic_events").read_text()
    parsed = kernel_state.parse_probes(text)
    assert len(parsed) == len([line for line in text.splitlines() if line.strip()])
    assert parsed and {owner_of(g) for g, _e in parsed} == {pid}
    # uprobes show in both files, in the same order
    assert kernel_state.parse_probes((rec / "uprobe_events").read_text()) == parsed


def test_probes_are_listed_once_per_event_and_by_owner(rec: Path, tmp_path: Path) -> None:
    pid = manifest(rec)["pid"]
    root = str(fake_tracefs(rec, tmp_path))
    every = kernel_state.parse_probes((rec / "dynamic_events").read_text())
    listed = kernel_state.probes(root, pid)
    assert [(g, e) for _f, g, e in listed] == every
    assert {f for f, _g, _e in listed} == {"uprobe_events"}  # the first file that has it
    assert kernel_state.probes(root) == listed
    assert kernel_state.probes(root, pid + 1) == []


def test_instances_are_ours_by_name_and_owner(rec: Path, tmp_path: Path) -> None:
    m = manifest(rec)
    root = str(fake_tracefs(rec, tmp_path))
    assert m["instances"] and kernel_state.instances(root) == sorted(m["instances"])
    assert kernel_state.instances(root, m["pid"]) == sorted(m["instances"])
    assert kernel_state.instances(root, m["pid"] + 1) == []
    assert kernel_state.instances(str(tmp_path / "nowhere")) == []


def test_enabled_events_of_the_instance_are_its_probes(rec: Path) -> None:
    pid = manifest(rec)["pid"]
    pairs = kernel_state.parse_enabled((rec / "instance_set_event").read_text())
    ours = {(g, e) for g, e in pairs if owner_of(g) == pid}
    assert ours == set(kernel_state.parse_probes((rec / "dynamic_events").read_text()))
    others = {g for g, _e in pairs if owner_of(g) is None}
    assert "syscalls" in others


def test_leftovers_cover_tracefs_and_bpf(rec: Path, tmp_path: Path) -> None:
    m = manifest(rec)
    pid = m["pid"]
    # as if our probes were enabled in the top-level buffer too
    root = str(fake_tracefs(rec, tmp_path, top_set_event="instance_set_event"))
    proc = str(fake_proc(rec, tmp_path))
    items = kernel_state.leftovers(pid, root, proc)
    kinds = {item.kind for item in items}
    assert {"instance", "probe", "enabled", "bpf-prog", "bpf-map", "bpf-link"} <= kinds
    assert kernel_state.tracefs_items(root, pid) + kernel_state.bpf_held(pid, proc) == items
    assert f"instance {m['instances'][0]}" in [str(i) for i in items]
    assert kernel_state.leftovers(pid + 1, root, proc) == []
    # the recording's own top-level set_event: nothing of ours enabled there
    plain = fake_tracefs(rec, tmp_path / "plain")
    assert kernel_state.enabled(str(plain), pid) == []


@pytest.mark.parametrize("name, owner", [
    ("hybridtrace_123_0", 123), ("hybridtrace_7_ht0", 7), ("hybridtrace_x_0", None),
    ("hybridtrace_12", None), ("syscalls", None), ("xhybridtrace_1_0", None),
])
def test_owner_of(name: str, owner: object) -> None:
    assert owner_of(name) == owner


def test_parsers_skip_what_is_not_theirs() -> None:
    assert kernel_state.parse_probes("\n# comment\ngarbage line\n") == []
    assert kernel_state.parse_enabled("\nnot-a-pair\n:x\n") == []
    assert kernel_state.parse_fdinfo("pos:\t0\nflags:\t02\nprog_id:\tnot-a-number\n") is None
    assert kernel_state.parse_fdinfo("") is None
