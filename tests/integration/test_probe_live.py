"""probe() and doctor on the real kernel, as root: facts, no leftovers, no mounting."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from hybridtrace.capabilities import probe
from hybridtrace.capabilities.live import SystemLive
from hybridtrace.tracefs import find

UNSHARE = shutil.which("unshare")


def test_live_checks_leave_nothing_behind() -> None:
    """The trivial program and the ring buffer are closed at once (autouse fixture checks)."""
    live = SystemLive()
    assert live.bpf_prog_load_errno() == 0
    assert live.ringbuf_errno() == 0
    caps = probe()
    if caps.lockdown != "confidentiality":
        assert live.kernel_read_errno() == 0
    assert caps.bpf.permitted is True
    assert caps.privileges.euid == 0
    assert caps.kernel.release == os.uname().release
    assert caps.tracefs.path == find()


def test_doctor_json_here() -> None:
    result = subprocess.run([sys.executable, "-m", "hybridtrace", "doctor", "--json"],
                            capture_output=True, text=True, timeout=60)
    data = json.loads(result.stdout)
    assert result.returncode == data["exit_status"]
    checks = {c["id"]: c for c in data["checks"]}
    caps = probe()
    assert checks["btf"]["ok"] is (caps.btf.path is not None)
    assert checks["bpf"]["ok"] is True
    assert checks["uprobes"]["data"]["present"] is caps.tracefs.uprobe_events


@pytest.mark.skipif(UNSHARE is None, reason="needs unshare(1)")
def test_probe_never_mounts_tracefs() -> None:
    """In a private mount namespace without tracefs, probe says mountable and mounts nothing."""
    script = (
        "import json, sys\n"
        "from hybridtrace.capabilities import probe\n"
        "c = probe()\n"
        "mounts = [l for l in open('/proc/self/mountinfo') if ' - tracefs ' in l]\n"
        "print(json.dumps([c.tracefs.path, c.tracefs.mountable, len(mounts)]))\n"
    )
    cmd = ("umount /sys/kernel/tracing 2>/dev/null; umount /sys/kernel/debug 2>/dev/null;"
           f" exec {sys.executable} -c \"$0\"")
    result = subprocess.run([str(UNSHARE), "--mount", "--propagation", "private", "sh", "-c",
                             cmd, script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    path, mountable, mounts = json.loads(result.stdout)
    assert path is None
    assert mountable is True
    assert mounts == 0


def test_tracefs_writable_is_tried_in_a_throwaway_instance() -> None:
    """Root may write a new instance's files; a user who may only enter tracefs may not."""
    path = find()
    assert path is not None
    assert SystemLive().tracefs_writable(path) is True
    assert not [n for n in os.listdir(os.path.join(path, "instances")) if "doctor" in n]
    script = ("import sys; from hybridtrace.capabilities.live import SystemLive;"
              f" print(SystemLive().tracefs_writable({path!r}))")
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.fail("setpriv (util-linux) missing")
    result = subprocess.run([setpriv, "--reuid", "65534", "--regid", "65534", "--clear-groups",
                             sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=60, cwd="/")
    assert result.stdout.strip() == "False", result.stderr


@pytest.mark.skipif(UNSHARE is None, reason="unshare (util-linux) is needed")
def test_tracefs_that_will_not_mount_is_said_so() -> None:
    """In a user namespace CapEff shows CAP_SYS_ADMIN, yet tracefs will not mount there:
    the trial mount (in a private mount namespace of a child) finds out; ours stay as is."""
    hide = ("mount -t tmpfs none /sys/kernel/tracing && mount -t tmpfs none /sys/kernel/debug"
            ' && exec "$@"')
    done = subprocess.run([str(UNSHARE), "--user", "--map-root-user", "--mount", "sh", "-c", hide,
                           "sh", sys.executable, "-m", "hybridtrace", "doctor", "--json"],
                          capture_output=True, text=True, timeout=120)
    data = json.loads(done.stdout)
    tracefs = next(c for c in data["checks"] if c["id"] == "tracefs")
    assert tracefs["data"]["path"] is None and tracefs["data"]["mountable"] is False
    assert any("mounting it failed (EPERM)" in note for note in data["unchecked"])
    assert find() is None or os.path.isdir(os.path.join(find() or "", "events"))
