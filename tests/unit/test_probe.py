"""probe() over recorded and derived kernel trees, the live seam, and odd roots."""

from __future__ import annotations

import errno
import gzip
import os
import re
from typing import Any, Dict, List, Optional

import pytest

from hybridtrace.capabilities import probe
from hybridtrace.capabilities.files import Tree
from hybridtrace.capabilities.live import RecordedLive, SystemLive
from hybridtrace.capabilities.model import Bcc, Library
from hybridtrace.doctor import build_report
from hybridtrace.doctor.render_json import report_to_dict
from hybridtrace.vocabulary import TRACEPOINTS
from tests.unit.kernel_trees import (
    hermetic_env,
    probe_tree,
    tree_file,
    tree_json,
    tree_names,
    tree_root,
)

TREES = tree_names()
__all__ = ["hermetic_env"]


def _read(name: str, path: str) -> Optional[str]:
    try:
        with open(tree_file(name, path)) as f:
            return f.read()
    except OSError:
        return None


def test_there_are_recorded_and_derived_trees() -> None:
    assert any(n.startswith("host-") for n in TREES)
    assert len(TREES) >= 6


@pytest.mark.parametrize("name", TREES)
def test_kernel_identity_matches_tree_files(name: str) -> None:
    caps = probe_tree(name)
    release = (_read(name, "/proc/sys/kernel/osrelease") or "").strip()
    assert caps.kernel.release == release
    assert ".".join(map(str, caps.kernel.version)).startswith(
        ".".join(re.findall(r"\d+", release)[:2]))
    arch = _read(name, "/proc/sys/kernel/arch")
    expected_arch = arch.strip() if arch else tree_json(name, "live.json")["uname_machine"]
    assert caps.kernel.arch == expected_arch


@pytest.mark.parametrize("name", TREES)
def test_btf_headers_config_match_tree_files(name: str) -> None:
    caps = probe_tree(name)
    has_btf = os.path.exists(tree_file(name, "/sys/kernel/btf/vmlinux"))
    assert (caps.btf.path == "/sys/kernel/btf/vmlinux") is has_btf
    assert caps.btf.searched[0] == "/sys/kernel/btf/vmlinux"
    build = tree_file(name, f"/lib/modules/{caps.kernel.release}/build")
    assert (caps.headers.build is not None) is os.path.islink(build)
    if os.path.exists(tree_file(name, "/proc/config.gz")):
        assert caps.config.source == "/proc/config.gz"
        with gzip.open(tree_file(name, "/proc/config.gz"), "rt") as f:
            config = f.read()
    else:
        assert caps.config.source == f"/boot/config-{caps.kernel.release}"
        config = _read(name, caps.config.source) or ""
    for item, value in caps.config.items.items():
        line = re.search(rf"^{item}=(.*)$", config, re.M)
        unset = re.search(rf"^# {item} is not set$", config, re.M)
        assert value == (line.group(1) if line else "n" if unset else None), item


@pytest.mark.parametrize("name", TREES)
def test_privileges_and_sysctls_match_tree_files(name: str) -> None:
    caps = probe_tree(name)
    status = _read(name, "/proc/self/status") or ""
    capeff = re.search(r"^CapEff:\s*([0-9a-f]+)", status, re.M)
    assert capeff is not None
    assert caps.privileges.cap_effective == int(capeff.group(1), 16)
    assert caps.privileges.euid == tree_json(name, "live.json")["euid"]
    ubd = _read(name, "/proc/sys/kernel/unprivileged_bpf_disabled")
    assert caps.bpf.unprivileged_bpf_disabled == (int(ubd) if ubd else None)
    nspid = re.search(r"^NSpid:\s*(.*)$", status, re.M)
    assert nspid is not None
    link = tree_file(name, "/proc/self/ns/pid")
    if os.path.islink(link):  # recorded since doctor compares it with the host's inode
        assert caps.container.pid_namespace_nested is (os.readlink(link) != "pid:[4026531836]")
    else:  # older recordings: only more than one NSpid level proves it
        levels = len(nspid.group(1).split())
        assert caps.container.pid_namespace_nested is (True if levels > 1 else None)
    assert caps.container.dockerenv is (os.path.exists(tree_file(name, "/.dockerenv"))
                                        or os.path.exists(tree_file(name, "/run/.containerenv")))


@pytest.mark.parametrize("name", TREES)
def test_bpf_results_come_from_the_live_seam(name: str) -> None:
    caps = probe_tree(name)
    live = tree_json(name, "live.json")
    assert caps.bpf.prog_load_errno == live["bpf_prog_load_errno"]
    if live["bpf_prog_load_errno"] != 0:
        assert caps.bpf.ringbuf_errno is None and caps.bpf.kernel_read_errno is None
        assert any(u.startswith("ringbuf:") for u in caps.unchecked)
        assert any(u.startswith("kernel reads:") for u in caps.unchecked)
    else:
        assert caps.bpf.ringbuf_errno == live["ringbuf_errno"]
        assert caps.bpf.kernel_read_errno == live["kernel_read_errno"]
    assert caps.bcc.version == live["bcc"]["version"]
    assert (caps.libbpf is None) is (live["libbpf"] is None)


@pytest.mark.parametrize("name", TREES)
def test_lockdown_matches_tree_files(name: str) -> None:
    caps = probe_tree(name)
    text = _read(name, "/sys/kernel/security/lockdown")
    if text is None:
        assert caps.lockdown is None
        assert any(u.startswith("lockdown:") for u in caps.unchecked)
    else:
        match = re.search(r"\[(\w+)\]", text)
        assert match is not None
        assert caps.lockdown == match.group(1)


@pytest.mark.parametrize("name", TREES)
def test_tracefs_matches_tree_files(name: str) -> None:
    caps = probe_tree(name)
    tfs = caps.tracefs
    found = [p for p in ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")
             if os.path.isdir(tree_file(name, p + "/events"))]
    if found:
        assert tfs.path == found[0]
        assert tfs.via == ("tracefs" if found[0] == "/sys/kernel/tracing" else "debugfs")
        for tp in TRACEPOINTS:
            present = os.path.exists(tree_file(name, f"{found[0]}/events/{tp}/format"))
            assert tfs.tracepoints[tp] is present, tp
        assert tfs.uprobe_events is os.path.exists(tree_file(name, found[0] + "/uprobe_events"))
        assert tfs.kprobe_events is os.path.exists(tree_file(name, found[0] + "/kprobe_events"))
        readme = _read(name, found[0] + "/README") or ""
        assert ("ustring" in tfs.fetch_types) is (", ustring" in readme)
        assert tfs.user_deref is ("[u]<offset>" in readme)
        assert tfs.writable == tree_json(name, "live.json")["tracefs_writable"][found[0]]
    elif tfs.path is None:
        assert tfs.tracepoints == {}
        assert tfs.uprobe_events is None
    else:  # mounted but unreadable (unprivileged recording)
        assert tfs.writable is False
        assert any("not readable by us" in u for u in caps.unchecked)
    filesystems = _read(name, "/proc/filesystems") or ""
    if "tracefs" not in filesystems or not caps.privileges.has(21):
        assert tfs.mountable is False


def test_eprobes_need_the_config_not_just_the_readme() -> None:
    """6.x READMEs list "e[:" even without CONFIG_EPROBE_EVENTS (this host)."""
    caps = probe_tree("host-6.18-root")
    readme = _read("host-6.18-root", "/sys/kernel/tracing/README") or ""
    assert "e[:[" in readme
    assert caps.config.enabled("CONFIG_EPROBE_EVENTS") is False
    assert caps.tracefs.eprobes is False


def test_recorded_host_facts() -> None:
    """The facts the issue's "done when" names, as recorded on this machine kind."""
    caps = probe_tree("host-6.18-root")
    assert caps.btf.path == "/sys/kernel/btf/vmlinux"
    assert caps.tracefs.kprobe_events is False
    assert caps.tracefs.uprobe_events is True
    assert caps.bpf.permitted is True
    assert caps.headers.build is None and not caps.headers.kheaders
    assert [lib.version for lib in caps.c_libraries if lib.path.endswith("libc.so.6")] != [None]


@pytest.mark.parametrize("name", TREES)
def test_doctor_json_checks_reproduce_from_the_tree(name: str) -> None:
    """The recorded doctor.json facts are what probe finds in the tree today."""
    recorded = tree_json(name, "doctor.json")
    now = report_to_dict(build_report(probe_tree(name)))
    assert [c["data"] for c in now["checks"]] == [c["data"] for c in recorded["checks"]]
    assert now["unchecked"] == recorded["unchecked"]


class _BrokenLive:
    """Every live check fails the way a strange system might make it fail."""

    def euid(self) -> int:
        raise OSError(errno.EIO, "euid broke")

    def uname_machine(self) -> str:
        raise RuntimeError("no uname")

    def bpf_prog_load_errno(self) -> int:
        raise OSError(errno.ENOSYS, "no bpf")

    def ringbuf_errno(self) -> int:
        raise AssertionError("must not be asked when the program load is unknown")

    def kernel_read_errno(self) -> int:
        raise AssertionError("must not be asked when the program load is unknown")

    def libbpf(self) -> Optional[Library]:
        raise OSError("dlopen exploded")

    def bcc(self) -> Bcc:
        raise ValueError("bad version file")

    def tracefs_writable(self, path: str) -> bool:
        raise PermissionError(path)

    def io_uring_tracepoints(self) -> Dict[str, bool]:
        raise ValueError("not little-endian BTF")

    def io_uring_layout(self) -> Optional[Dict[str, int]]:
        raise OSError(errno.EIO, "BTF unreadable")


def test_failing_live_checks_become_unchecked_not_exceptions() -> None:
    caps = probe(tree_root("host-6.18-root"), _BrokenLive())
    assert caps.bpf.prog_load_errno is None and caps.bpf.permitted is None
    assert caps.libbpf is None
    assert caps.bcc.version is None
    assert caps.tracefs.writable is None
    assert caps.io_uring.tracepoints is None and caps.io_uring.layout is None
    for what in ("euid", "bpf", "libbpf", "bcc", "tracefs writable", "io_uring tracepoints",
                 "io_uring request layout"):
        assert any(u.startswith(what + ":") for u in caps.unchecked), what
    assert caps.kernel.release.startswith("6.18")  # file facts still read


def test_recorded_live_without_answers() -> None:
    caps = probe(tree_root("host-6.18-root"), RecordedLive({}))
    assert caps.bpf.permitted is None
    assert any("was not recorded" in u for u in caps.unchecked)


def test_empty_root_never_raises(tmp_path: Any) -> None:
    caps = probe(str(tmp_path), RecordedLive({}))
    assert caps.kernel.release == "unknown"
    assert caps.btf.path is None
    assert caps.tracefs.path is None
    assert caps.config.source is None
    assert caps.c_libraries == ()
    assert len(caps.unchecked) >= 4
    report = build_report(caps)
    assert report.exit_status == 1


def test_unreadable_and_garbage_files(tmp_path: Any) -> None:
    proc = tmp_path / "proc"
    (proc / "sys" / "kernel").mkdir(parents=True)
    (proc / "self").mkdir()
    (proc / "sys" / "kernel" / "osrelease").write_text("5.10.0-30-amd64\n")
    (proc / "sys" / "kernel" / "perf_event_paranoid").write_text("not a number\n")
    (proc / "self" / "status").write_text("CapEff:\tzzz\nNSpid:\t7\t1\n")
    (proc / "config.gz").write_bytes(b"not gzip at all")
    (tmp_path / "sys" / "kernel" / "btf").mkdir(parents=True)
    (tmp_path / "sys" / "kernel" / "btf" / "vmlinux").write_bytes(b"junk")
    caps = probe(str(tmp_path), RecordedLive({"euid": 1000}))
    assert caps.kernel.version == (5, 10, 0)
    assert caps.bpf.perf_event_paranoid is None
    assert caps.privileges.cap_effective == 0
    assert caps.container.pid_namespace_nested is True
    assert caps.btf.path is None  # neither raw BTF nor ELF
    assert caps.config.source is None
    assert any("CapEff" in u for u in caps.unchecked)


def test_tree_follows_absolute_links_inside_root(tmp_path: Any) -> None:
    (tmp_path / "usr" / "src" / "linux-headers-1").mkdir(parents=True)
    (tmp_path / "usr" / "src" / "linux-headers-1" / "Makefile").write_text("all:\n")
    (tmp_path / "lib" / "modules" / "1").mkdir(parents=True)
    os.symlink("/usr/src/linux-headers-1", tmp_path / "lib" / "modules" / "1" / "build")
    os.symlink("loop", tmp_path / "loop")
    tree = Tree(str(tmp_path))
    assert tree.resolve("/lib/modules/1/build/Makefile") == "/usr/src/linux-headers-1/Makefile"
    assert tree.isfile("/lib/modules/1/build/Makefile")
    assert tree.resolve("/loop") is None
    assert not tree.exists("/loop/x")
    assert tree.resolve("/lib/../lib/modules/./1") == "/lib/modules/1"


def _status_capeff() -> int:
    with open("/proc/self/status") as f:
        match = re.search(r"^CapEff:\s*([0-9a-f]+)", f.read(), re.M)
    assert match is not None
    return int(match.group(1), 16)


def test_probe_of_this_machine() -> None:
    """Whatever our privileges, probing the live system works and agrees with /proc."""
    caps = probe()
    assert caps.kernel.release == os.uname().release
    assert caps.kernel.arch == os.uname().machine
    assert caps.privileges.euid == os.geteuid()
    assert caps.privileges.cap_effective == _status_capeff()
    live = SystemLive()
    if caps.privileges.can_bpf:
        assert live.bpf_prog_load_errno() == 0
        assert live.kernel_read_errno() == caps.bpf.kernel_read_errno
    elif caps.bpf.unprivileged_bpf_disabled:
        assert live.bpf_prog_load_errno() in (errno.EPERM, errno.EACCES)


def test_bcc_is_found_without_importing_it() -> None:
    import subprocess
    import sys

    # In a fresh interpreter: other tests in this process may have imported bcc.
    code = ("import sys; from hybridtrace.capabilities.live import SystemLive;"
            " SystemLive().bcc(); print('bcc' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    bcc = SystemLive().bcc()
    if os.path.isfile("/usr/lib/python3/dist-packages/bcc/libbcc.py"):
        assert bcc.location == "/usr/lib/python3/dist-packages/bcc"
        with open("/usr/lib/python3/dist-packages/bcc/version.py") as f:
            assert repr(bcc.version)[1:-1] in f.read()
    else:
        assert bcc.version is None and bcc.error


def test_records_list() -> None:
    names: List[str] = [n for n in TREES if n.startswith("derived-")]
    for name in names:
        recorded: Dict[str, Any] = tree_json(name, "live.json")["recorded"]
        assert recorded["derived_from"] and recorded["changes"], name
