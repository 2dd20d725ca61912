"""Root integration tests: real kernel, real processes, nothing left behind."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from typing import Iterator, List

import pytest

from hybridtrace import kernel_state, tracefs
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
# that reads a task's cgroup and namespaces, and the ftrace tiers this host has.
FTRACE_TIERS = ["uprobe", "tracepoint"]


@pytest.fixture(scope="module", params=EBPF_ATTACH)
def attach(request: pytest.FixtureRequest) -> str:
    mount_tracefs_for(request.param)
    decision = decide(probe(), "exec", "ebpf-core", None, request.param)
    if decision.chosen is None:
        require_backend(f"ebpf-core/{request.param}", decision.failure())
    return str(request.param)


@pytest.fixture(scope="module", params=FTRACE_TIERS)
def ftrace_tier(request: pytest.FixtureRequest) -> str:
    decision = decide(probe(), "open", "ftrace", request.param)
    if decision.chosen is None:
        require_backend(f"ftrace/{request.param}", decision.failure())
    return str(request.param)
