"""tools/record_kernel_tree.py and tools/derive_kernel_trees.py produce usable trees."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from typing import Any

from tests.unit.kernel_trees import TREES_DIR

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _tool(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, os.path.join(REPO, "tools", name), *args],
                          capture_output=True, text=True, timeout=120, cwd=REPO)


def test_record_this_machine_reproduces_it(tmp_path: Any) -> None:
    """The recorder itself checks that probe over the copy equals probe of the machine."""
    result = _tool("record_kernel_tree.py", "--name", "here", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    tree = tmp_path / "here"
    live = json.loads((tree / "live.json").read_text())
    assert live["euid"] == os.geteuid()
    assert live["uname_machine"] == os.uname().machine
    assert (tree / "root" / "proc" / "sys" / "kernel" / "osrelease").read_text().strip() == \
        os.uname().release
    doctor = json.loads((tree / "doctor.json").read_text())
    assert doctor["schema"] == "hybridtrace.doctor/2"
    total = sum(f.stat().st_size for f in (tree / "root").rglob("*") if f.is_file())
    assert total < 1 << 20  # only what probe reads, truncated


def test_record_as_an_unprivileged_user() -> None:
    """Recording works without root too (uid 65534 when we are root)."""
    out = tempfile.mkdtemp(prefix="ht-record-")
    try:
        os.chmod(out, 0o777)
        drop = None
        if os.geteuid() == 0:
            def drop() -> None:
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
        result = subprocess.run(
            [sys.executable, os.path.join(REPO, "tools", "record_kernel_tree.py"), "--name",
             "user", "--out", out], capture_output=True, text=True, timeout=120, cwd="/",
            preexec_fn=drop)
        assert result.returncode == 0, result.stderr
        with open(os.path.join(out, "user", "live.json")) as f:
            live = json.load(f)
        assert live["euid"] == (65534 if drop else os.geteuid())
        if drop:
            assert live["bpf_prog_load_errno"] != 0
            assert "ringbuf_errno" not in live
    finally:
        shutil.rmtree(out)


def test_record_rejects_a_bad_name(tmp_path: Any) -> None:
    result = _tool("record_kernel_tree.py", "--name", "../escape", "--out", str(tmp_path))
    assert result.returncode == 2
    assert "bad tree name" in result.stderr
    assert not os.listdir(tmp_path)


def test_derive_labels_every_variant(tmp_path: Any) -> None:
    shutil.copytree(os.path.join(TREES_DIR, "host-6.18-root"), tmp_path / "host-6.18-root",
                    symlinks=True)
    result = _tool("derive_kernel_trees.py", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    derived = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("derived-"))
    assert len(derived) >= 6
    for name in derived:
        live = json.loads((tmp_path / name / "live.json").read_text())
        assert live["recorded"]["derived_from"] == "host-6.18-root"
        assert live["recorded"]["changes"]
        shipped = os.path.join(TREES_DIR, name, "doctor.json")
        if os.path.exists(shipped):  # the shipped variant has the facts the script makes today
            with open(shipped) as f:
                before = json.load(f)
            now = json.loads((tmp_path / name / "doctor.json").read_text())
            assert before["checks"] == now["checks"] and before["unchecked"] == now["unchecked"]
