"""Root integration tests: real kernel, real processes, nothing left behind."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from typing import Iterator, List

import pytest

import hybridtrace
from hybridtrace import kernel_state, tracefs
from hybridtrace.api import Session
from hybridtrace.capabilities import probe
from hybridtrace.selector import decide
from tests.conftest import require_backend, require_root
from tests.integration.uring_job import UringJob

# ebpf-core's classic tracepoints, like libbpf-tools, need a mounted tracefs, which
# hybridtrace never mounts for eBPF; a fresh boot here has none. The tests ask for it.
EBPF_ATTACH = ["tracepoint", "tp_btf"]


def mount_tracefs_for(attach: str) -> None:
    if attach == "tracepoint":
        # Not ours to mount under least privilege: the selector then says why it skips.
        with contextlib.suppress(tracefs.TracefsUnavailable):
            tracefs.ensure_mounted()


def leftovers(owner: int) -> List[str]:
    """Kernel state of ours that names ``owner`` (tracefs) or is held by it (BPF)."""
    return [str(item) for item in kernel_state.leftovers(owner)]


@pytest.fixture(autouse=True)
def _root_and_clean() -> Iterator[None]:
    require_root()
    yield
    left = leftovers(os.getpid())
    assert not left, f"kernel state left behind: {left}"


@pytest.fixture(scope="module")
def uring_job() -> Iterator[UringJob]:
    """gt built once per module: opens through io_uring that log what they did."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc not found (the io_uring workload is built on the fly)")
    workdir = tempfile.mkdtemp(prefix="ht-uring-")
    os.chmod(workdir, 0o777)  # a job may setuid(65534) and still create files here
    try:
        yield UringJob(workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


# The where-tests' backends (test_containers.py, test_podman.py): every ebpf-core mode
# that reads a task's cgroup and namespaces, and every ftrace tier (kprobe and eprobe
# run in the kernel matrix's VMs: this host has neither).
FTRACE_TIERS = ["uprobe", "tracepoint", "kprobe", "eprobe"]


@pytest.fixture(scope="module", params=EBPF_ATTACH)
def attach(request: pytest.FixtureRequest) -> str:
    mount_tracefs_for(request.param)
    decision = decide(probe(), "exec", "ebpf-core", None, request.param)
    if decision.chosen is None:
        require_backend(f"ebpf-core/{request.param}", decision.failure())
    return str(request.param)


# The backends that read where a task lives in the kernel and filter by it there:
# every ebpf-core mode above, and ebpf-bcc (which compiles per session: slower).
WHERE_BACKENDS = [f"ebpf-core/{mode}" for mode in EBPF_ATTACH] + ["ebpf-bcc"]


@pytest.fixture(scope="module", params=WHERE_BACKENDS)
def where_backend(request: pytest.FixtureRequest) -> str:
    """"ebpf-core/MODE" or "ebpf-bcc", when it can run here."""
    backend, _, mode = str(request.param).partition("/")
    if mode:
        mount_tracefs_for(mode)
    decision = decide(probe(), "exec", backend, None, mode or None)
    if decision.chosen is None:
        require_backend(request.param, decision.failure())
    return str(request.param)


def open_where(kind: str, where: str, **filters: object) -> Session:
    """A session of ``where`` (a where_backend value, or a bare ebpf-core attach mode)."""
    if where == "ebpf-bcc":
        return hybridtrace.trace(kind, backend="ebpf-bcc", **filters)  # type: ignore
    return hybridtrace.trace(kind, backend="ebpf-core",  # type: ignore
                             ebpf_attach=where.rpartition("/")[2], **filters)


@pytest.fixture(scope="module", params=FTRACE_TIERS)
def ftrace_tier(request: pytest.FixtureRequest) -> str:
    decision = decide(probe(), "open", "ftrace", request.param)
    if decision.chosen is None:
        require_backend(f"ftrace/{request.param}", decision.failure())
    return str(request.param)
