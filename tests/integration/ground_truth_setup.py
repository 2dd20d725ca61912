"""What a ground-truth test needs before it runs a target (both the API's and the CLI's)."""

from __future__ import annotations

import contextlib
import shutil

import pytest

from hybridtrace import tracefs
from tests.conftest import LEAST_PRIVILEGE, require_backend
from tools.groundtruth import check


def ready(target: check.Target) -> None:
    """Skip (or fail, where CI requires the backend) when ``target`` cannot run here."""
    if LEAST_PRIVILEGE:
        pytest.skip("the workload changes uids and needs root")
    if shutil.which("gcc") is None:
        pytest.skip("gcc not found (the workload is built on the fly)")
    with contextlib.suppress(tracefs.TracefsUnavailable):
        tracefs.ensure_mounted()  # ebpf-core/tracepoint's ids, ftrace
    ok, why = check.available(target)
    if not ok:
        require_backend(target.label, why)
