"""A least-privileged tracer: uid 65534 with only CAP_BPF and CAP_PERFMON, no tracefs.

Runs only under tools/least_privilege.sh (tools/test.sh does that after the root
suite): doctor must say eBPF works and name what the ftrace backend would need,
the command line must trace, and Debian's libbpf-tools, which need tracefs for
their tracepoint ids, are run beside it to record what they do there.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from tests.conftest import LEAST_PRIVILEGE

pytestmark = pytest.mark.skipif(not LEAST_PRIVILEGE,
                                reason="runs under tools/least_privilege.sh (tools/test.sh)")

CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN = 39, 38, 21


def _cap_effective() -> int:
    with open("/proc/self/status") as f:
        line = next(ln for ln in f if ln.startswith("CapEff:"))
    return int(line.split()[1], 16)


def _hybridtrace(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hybridtrace", *args], capture_output=True,
                          text=True, timeout=timeout)


def test_the_setting_is_what_it_claims() -> None:
    caps = _cap_effective()
    assert os.geteuid() == 65534
    assert caps == (1 << CAP_BPF) | (1 << CAP_PERFMON)
    assert not os.path.isdir("/sys/kernel/tracing/events")
    assert not os.path.isdir("/sys/kernel/debug/tracing/events")


def test_doctor_says_ebpf_works_and_what_ftrace_would_need() -> None:
    result = _hybridtrace("doctor", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    for kind in ("exec", "open"):
        decision = data["decisions"][kind]
        assert decision["chosen"] == "ebpf-core/tp_btf"
        assert "tracefs is not mounted" in decision["why"]
        for cand in decision["candidates"]:
            if cand["backend"] == "ftrace":
                assert not cand["usable"]
                assert any(r["code"] == "tracefs-missing" and "mount -t tracefs" in r["remedy"]
                           for r in cand["reasons"])


def test_execsnoop_traces_where_libbpf_tools_cannot_attach() -> None:
    marker = f"ht-least-privilege-{os.getpid()}"
    tracer = subprocess.Popen([sys.executable, "-m", "hybridtrace", "execsnoop", "--json",
                               "-d", "6"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    assert tracer.stderr is not None
    start = tracer.stderr.readline()
    assert "ebpf-core/tp_btf" in start, start
    subprocess.run(["/bin/true", marker], check=True)
    out, err = tracer.communicate(timeout=30)
    assert tracer.returncode == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    mine = [e for e in events if e.get("argv") == ["/bin/true", marker]]
    assert len(mine) == 1 and mine[0]["retval"] == 0

    snoop = shutil.which("execsnoop") or "/usr/sbin/execsnoop"
    if not os.path.exists(snoop):
        pytest.fail("libbpf-tools' execsnoop is needed: tools/setup.sh installs it")
    began = time.monotonic()
    theirs = subprocess.run([snoop], capture_output=True, text=True, timeout=30)
    # What Debian's libbpf-tools do here (0.26): no tracepoint id without tracefs.
    assert theirs.returncode != 0 or "failed to attach" in theirs.stderr
    assert "perf event ID" in theirs.stderr, theirs.stderr
    assert time.monotonic() - began < 30
