"""hybridtrace doctor: text and JSON over kernel trees, exit status, unprivileged runs."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from typing import Any, Dict, List

import attrs
import jsonschema
import pytest

from hybridtrace.capabilities import probe
from hybridtrace.capabilities.live import RecordedLive
from hybridtrace.doctor import build_report
from hybridtrace.doctor.render_json import report_to_dict
from hybridtrace.doctor.render_text import render_text
from tests.unit.kernel_trees import (
    HOST_ENV,
    TREES_DIR,
    hermetic_env,
    probe_tree,
    tree_json,
    tree_names,
    tree_root,
)

TREES = tree_names()
__all__ = ["hermetic_env"]
SCHEMA_PATH = os.path.join(os.path.dirname(__file__), "..", "..", "hybridtrace", "schemas",
                           "doctor.schema.json")
NOBODY = 65534


def _schema() -> Dict[str, Any]:
    with open(SCHEMA_PATH) as f:
        schema: Dict[str, Any] = json.load(f)
    return schema


def run_doctor(args: List[str], as_nobody: bool = False) -> subprocess.CompletedProcess[str]:
    def drop() -> None:
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)

    env = {k: v for k, v in os.environ.items() if k not in HOST_ENV}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "hybridtrace", "doctor", *args], capture_output=True, text=True,
        timeout=60, env=env, cwd="/",
        preexec_fn=drop if as_nobody and os.geteuid() == 0 else None,
    )


@pytest.mark.parametrize("name", TREES)
def test_json_validates_and_matches_the_decisions(name: str) -> None:
    report = build_report(probe_tree(name))
    data = report_to_dict(report)
    jsonschema.validate(data, _schema())
    both = all(data["decisions"][k]["chosen"] is not None for k in ("exec", "open"))
    assert data["exit_status"] == (0 if both else 1)
    ids = [c["id"] for c in data["checks"]]
    for needed in ("btf", "bpf", "bpf_kernel_read", "privileges", "lockdown", "headers",
                   "tracefs", "kprobes", "uprobes", "libbpf", "bcc"):
        assert needed in ids


@pytest.mark.parametrize("name", TREES)
def test_text_report(name: str) -> None:
    report = build_report(probe_tree(name))
    text = render_text(report)
    assert text.startswith(f"hybridtrace doctor: kernel {report.caps.kernel.release}")
    assert f"exit status {report.exit_status}:" in text
    for kind, decision in report.decisions.items():
        head = f"{kind}: " + (decision.chosen.label if decision.chosen else "NOTHING USABLE")
        assert head + "\n" in text
        for cand in decision.candidates:
            for reason in cand.reasons:
                assert reason.message in text
    if report.exit_status:
        fixes = text.split("\nto make it work\n", 1)[1].split("\n\n", 1)[0].splitlines()
        assert fixes and len(fixes) == len(set(fixes))
        remedies = {r.remedy for d in report.decisions.values() if d.chosen is None
                    for c in d.candidates for r in c.reasons if r.blocking and r.remedy}
        assert {f.split("  [needed by")[0][4:] for f in fixes} == remedies
    for item in report.caps.unchecked:
        assert f"  - {item}\n" in text


def test_host_text_says_what_the_issue_asks() -> None:
    report = build_report(probe_tree("host-6.18-root"))
    text = render_text(report)
    rows = _rows(text)
    assert rows["BTF"][0] == "ok" and rows["BTF"][1].startswith("yes")
    assert rows["kprobes"] == ("NO", "no")
    assert rows["uprobes"] == ("ok", "yes")
    assert rows["bpf permitted"] == ("ok", "yes")
    assert rows["kernel headers"] == ("NO", "no")
    assert "exec: ebpf-core/tracepoint\n" in text and "open: ebpf-core/tracepoint\n" in text
    assert "ebpf-bcc            not usable" in text  # the alternatives, explained


def _rows(text: str) -> Dict[str, Any]:
    rows = {}
    for line in text.splitlines():
        if line.startswith("  [") and "]" in line:
            mark, rest = line[3:].split("]", 1)
            title, value = rest.strip().split("  ", 1)
            rows[title] = (mark.strip(), value.strip())
    return rows


def test_fresh_boot_text_falls_back_to_the_kernel_config() -> None:
    """At boot tracefs is not mounted here; doctor still answers kprobes no, uprobes yes."""
    text = render_text(build_report(probe_tree("host-6.18-tracefs-unmounted")))
    rows = _rows(text)
    assert rows["tracefs"] == ("--", "not mounted, mountable")
    assert rows["kprobes"][0] == "NO" and rows["kprobes"][1].startswith("no (CONFIG_KPROBE_")
    assert rows["uprobes"][0] == "ok" and rows["uprobes"][1].startswith("yes (CONFIG_UPROBE_")
    # eBPF no longer mounts tracefs: raw tracepoints by BTF name need none; only the
    # ftrace backend would mount it, and says so.
    assert "exec: ebpf-core/tp_btf\n" in text and "open: ebpf-core/tp_btf\n" in text
    assert "tracefs is not mounted (hybridtrace does not mount it for eBPF)" in text
    assert "hybridtrace will mount it" in text


def test_unprivileged_tree_says_what_the_gaps_mean() -> None:
    text = render_text(build_report(probe_tree("host-6.18-nobody")))
    gaps = text.split("\ncould not check\n", 1)[1].split("\n\n", 1)[0]
    assert "  - ringbuf: not tested, bpf() is denied to us\n      so: only matters once" in gaps
    assert "not readable by us (root only)" in gaps
    assert "judged from the kernel config" in gaps
    assert "NOTHING USABLE" in text and "run as root" in text


def test_lockdown_confidentiality_is_named() -> None:
    text = render_text(build_report(probe_tree("derived-lockdown-confidentiality")))
    assert "kernel lockdown     confidentiality" in text
    assert "lockdown=confidentiality denies" in text
    assert "boot with lockdown=integrity or none" in text


@pytest.mark.parametrize("name", ["host-6.18-root", "derived-container-no-caps",
                                  "derived-kernel-4.19"])
def test_cli_over_a_tree(name: str) -> None:
    as_json = run_doctor(["--root", tree_root(name), "--json"])
    assert "Traceback" not in as_json.stderr
    data = json.loads(as_json.stdout)
    jsonschema.validate(data, _schema())
    assert as_json.returncode == data["exit_status"]
    with open(os.path.join(TREES_DIR, name, "doctor.json")) as f:
        recorded = json.load(f)
    assert data["decisions"]["exec"]["chosen"] == recorded["decisions"]["exec"]["chosen"]
    text = run_doctor(["--root", os.path.dirname(tree_root(name))])  # the tree's directory
    assert text.returncode == as_json.returncode
    assert f"exit status {text.returncode}:" in text.stdout


@pytest.mark.parametrize("args", [["--root", "/nonexistent-tree"], ["--root", "/"],
                                  ["--backend", "dtrace"]])
def test_cli_bad_input_is_one_line(args: List[str], tmp_path: Any) -> None:
    if args == ["--root", "/"]:
        args = ["--root", str(tmp_path)]  # a directory without live.json
    result = run_doctor(args)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr


def test_unprivileged_run_reports_and_exits_with_its_status() -> None:
    """As uid 65534 (when we are root) or as ourselves: no traceback, says what it missed."""
    result = run_doctor(["--json"], as_nobody=True)
    assert "Traceback" not in result.stderr, result.stderr
    data = json.loads(result.stdout)
    jsonschema.validate(data, _schema())
    assert result.returncode == data["exit_status"]
    privileges = next(c for c in data["checks"] if c["id"] == "privileges")
    if os.geteuid() == 0:
        assert privileges["data"]["euid"] == NOBODY
        assert privileges["data"]["held"] == []
        assert data["exit_status"] == 1
        core = data["decisions"]["exec"]["candidates"][0]
        assert [r["code"] for r in core["reasons"] if r["blocking"]][:1] == ["bpf-denied"]
        assert any(u.startswith("ringbuf:") for u in data["unchecked"])
    text = run_doctor([], as_nobody=True)
    assert "Traceback" not in text.stderr
    assert text.returncode == data["exit_status"]
    if data["unchecked"]:
        assert "could not check" in text.stdout


def test_tracefs_that_will_not_mount_is_not_called_mountable() -> None:
    """CAP_SYS_ADMIN is not enough in a container or user namespace: the trial mount in a
    private mount namespace decides, and ftrace is then blocked with the real reason."""
    live = tree_json("host-6.18-tracefs-unmounted", "live.json")
    refused = probe(tree_root("host-6.18-tracefs-unmounted"),
                    RecordedLive(dict(live, tracefs_mount_errno=errno.EPERM)))
    assert refused.tracefs.mountable is False
    assert any("mounting it failed (EPERM)" in note for note in refused.unchecked)
    text = render_text(build_report(refused))
    assert "not mounted, mountable" not in text
    assert "tracefs is not mounted and cannot be mounted by us" in text
    mounts = probe(tree_root("host-6.18-tracefs-unmounted"),
                   RecordedLive(dict(live, tracefs_mount_errno=0)))
    assert mounts.tracefs.mountable is True


def test_text_shows_the_fields_of_every_usable_candidate() -> None:
    report = build_report(probe_tree("host-6.18-root"))
    lines = render_text(report).splitlines()
    for decision in report.decisions.values():
        start = lines.index(f"{decision.kind}: {decision.chosen.label}")  # type: ignore[union-attr]
        block = lines[start + 1:start + 1 + next(
            i for i, ln in enumerate([*lines[start + 1:], ""]) if not ln.startswith("  "))]
        for cand in decision.usable_candidates:
            mine = [i for i, ln in enumerate(block) if ln[4:].startswith(f"{cand.label} ")]
            assert len(mine) == 1, cand.label
            rest = block[mine[0] + 1:]
            own = rest[:next((i for i, ln in enumerate(rest) if ln[2] in "*+-"), len(rest))]
            want = "; ".join(f"{k} {v}" for k, v in cand.fields.items())
            assert f"      fields: {want}" in own, cand.label


@pytest.mark.parametrize(("arch", "value", "absent"), [
    ("x86_64", "exec: execve, execveat; open: open, openat, openat2, creat", []),
    ("aarch64", "exec: execve, execveat; open: openat, openat2", ["open", "creat"]),
])
def test_doctor_says_which_syscalls_this_architecture_traces(arch: str, value: str,
                                                             absent: List[str]) -> None:
    caps = probe_tree("host-6.18-root")
    caps = attrs.evolve(caps, kernel=attrs.evolve(caps.kernel, arch=arch))
    check = next(c for c in build_report(caps).checks if c.id == "syscalls")
    assert check.value == value and check.data["absent_on_arch"] == absent
    assert ("has no open or creat" in check.why) == bool(absent)


def test_a_recorded_arm64_kernel_misses_no_tracepoint_of_a_syscall_it_has() -> None:
    """Debian 6.1 arm64 (recorded in the kernel matrix): no open/creat tracepoints exist
    there, and doctor neither traces nor misses them."""
    caps = probe_tree("vm-debian-6.1-arm64-default")
    assert caps.kernel.arch == "aarch64"
    assert caps.tracefs.tracepoints["syscalls/sys_enter_openat"]
    assert not caps.tracefs.tracepoints["syscalls/sys_enter_open"]
    checks = {c.id: c for c in build_report(caps).checks}
    assert checks["syscalls"].data["absent_on_arch"] == ["open", "creat"]
    tracepoints = checks["tracepoints"]
    assert tracepoints.ok is True and tracepoints.value.startswith("all present")
    assert "aarch64" in tracepoints.value
    # on x86_64 the same tree would be missing them
    x86 = attrs.evolve(caps, kernel=attrs.evolve(caps.kernel, arch="x86_64"))
    tp_x86 = next(c for c in build_report(x86).checks if c.id == "tracepoints")
    assert tp_x86.ok is None and "syscalls/sys_enter_open" in tp_x86.value
