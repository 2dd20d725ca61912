"""ebpf-core's raw_tp mode: raw tracepoints by name on kernels without BTF.

Here the kernel has BTF, so it is also hidden (an empty tmpfs over
/sys/kernel/btf in a private mount namespace) to show that nothing needs it.
Without struct layouts the mode cannot know a parent or re-read a new image's
argv: those fields must come out None, never guessed, and a ppid filter must
fall to another backend rather than drop every exec.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Dict, Iterator

import attrs
import pytest

import hybridtrace
from hybridtrace.api import Session
from hybridtrace.backends.base import BackendError
from hybridtrace.capabilities import Capabilities, probe
from hybridtrace.events import ExecEvent, Source
from hybridtrace.selector import SelectionError, decide
from tests.conftest import require_backend
from tests.integration.polling import collect, exec_of
from tests.integration.test_ebpf_core import FORKEXEC_C, LONG_ARG, cbin  # noqa: F401

LABEL = "ebpf-core/raw_tp"
NO_BTF = ("unshare", "--mount", "--propagation", "private", "sh", "-c",
          'mount -t tmpfs -o ro,size=4k hybridtrace-no-btf /sys/kernel/btf && exec "$@"', "sh")


@pytest.fixture(scope="module")
def caps() -> Iterator[Capabilities]:
    found = probe()
    decision = decide(found, "exec", "ebpf-core", None, "raw_tp")
    if decision.chosen is None:
        require_backend(LABEL, decision.failure())
    yield found


def trace(kind: str, **filters: object) -> Session:
    return hybridtrace.trace(kind, "ebpf-core", ebpf_attach="raw_tp",  # type: ignore[arg-type]
                             **filters)


def test_untouched_argv_pages_give_none_never_a_part(caps: object,
                                                     cbin: Dict[str, str]) -> None:  # noqa: F811
    """The hard case for every tracer reading argv at entry: here no re-read is possible."""
    with trace("exec") as session:
        parent = subprocess.Popen([cbin["forkexec"]], stdout=subprocess.PIPE)
        out, _ = parent.communicate()
        assert parent.returncode == 0
        pids = {int(line) for line in out.split()}  # the workload prints its children
        assert len(pids) == 40
        events = collect(session, lambda ev: sum(
            1 for e in ev if isinstance(e, ExecEvent) and e.pid in pids) >= 40)
    kids = [e for e in events if isinstance(e, ExecEvent) and e.pid in pids]
    assert len(kids) == 40
    long_arg = LONG_ARG.encode()[:256]
    want = {(b"/bin/true", b"slot-%d" % i, b"with space", b"untouched\nnewline %d" % i,
             long_arg, b"tail-%d" % i) for i in range(40)}
    for kid in kids:
        assert kid.retval == 0 and kid.ppid is None and kid.comm == b"true"
        assert kid.filename in (None, b"/bin/true")
        assert kid.argv is None or kid.argv in want, kid.argv
        assert kid.argv is None or kid.argv_source is Source.SYSCALL_ENTRY


def test_ppid_filter_is_refused_before_anything_loads(caps: Capabilities) -> None:
    """In the kernel it would drop every exec: the API moves on to the next backend."""
    with pytest.raises(BackendError, match="cannot filter by ppid"):
        trace("exec", ppid=os.getpid())
    no_btf = attrs.evolve(caps, btf=attrs.evolve(caps.btf, path=None))
    with pytest.raises(SelectionError, match=r"ebpf-core/raw_tp: .*cannot filter by ppid"):
        hybridtrace.trace("exec", "ebpf-core", ppid=os.getpid(), capabilities=no_btf)


def test_traces_with_btf_hidden(caps: object) -> None:
    probe_doctor = subprocess.run([*NO_BTF, sys.executable, "-m", "hybridtrace", "doctor",
                                   "--json"], capture_output=True, text=True, timeout=120)
    data = json.loads(probe_doctor.stdout)
    assert data["decisions"]["open"]["chosen"] in (LABEL, "ebpf-bcc"), data["decisions"]
    btf = next(c for c in data["checks"] if c["id"] == "btf")
    assert btf["data"]["path"] is None

    marker = f"/nonexistent-raw-tp-{os.getpid()}".encode()
    tracer = subprocess.Popen([*NO_BTF, sys.executable, "-m", "hybridtrace", "opensnoop",
                               "--json", "-x", "--ebpf-attach", "raw_tp", "-d", "6"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert tracer.stderr is not None
    start = tracer.stderr.readline()
    assert "raw_tp" in start, start + tracer.stderr.read()
    child = subprocess.run(["/bin/cat", marker], capture_output=True)
    out, err = tracer.communicate(timeout=60)
    assert tracer.returncode == 0, err
    mine = [json.loads(line) for line in out.splitlines() if marker.decode() in line]
    assert len(mine) == 1, out[-2000:]
    assert mine[0]["errno"] == 2 and mine[0]["path"] == marker.decode()
    assert child.returncode != 0


def test_exec_fields_it_can_know_are_exact(caps: object) -> None:
    argv = [b"/bin/sh", b"-c", b"exit 0", b"sh", b"new\nline", b"\xff"]
    with trace("exec") as session:
        ev = exec_of(session, argv)
    assert ev.argv == tuple(argv) and ev.filename == b"/bin/sh"
    assert ev.ppid is None and ev.retval == 0 and ev.uid == os.getuid()
