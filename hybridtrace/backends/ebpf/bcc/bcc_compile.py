"""Run BCC's compiler quietly, against the chosen headers, and say clearly why it failed.

BCC and clang print to the process's stdout/stderr file descriptors (header
warnings, "Unable to find kernel headers", verifier logs). A tracer's own
output must stay clean, so both are captured while BCC works and the first
useful line becomes the error message.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from typing import Iterator, List, Optional

from hybridtrace.backends.base import BackendError
from hybridtrace.backends.ebpf.bcc.headers import BCC_ENV_VAR


@contextlib.contextmanager
def captured_output() -> Iterator[List[str]]:
    """Send fds 1 and 2 to a temporary file; the yielded list gets its lines after."""
    lines: List[str] = []
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            sink.seek(0)
            lines += sink.read().decode("utf-8", "replace").splitlines()


@contextlib.contextmanager
def kernel_source(path: Optional[str]) -> Iterator[None]:
    """Point BCC at ``path`` (BCC_KERNEL_SOURCE) for the duration only."""
    if path is None:
        yield
        return
    old = os.environ.get(BCC_ENV_VAR)
    os.environ[BCC_ENV_VAR] = path
    try:
        yield
    finally:
        if old is None:
            del os.environ[BCC_ENV_VAR]
        else:
            os.environ[BCC_ENV_VAR] = old


def explain(what: str, exc: BaseException, lines: List[str]) -> BackendError:
    """One line: what failed, and the most telling line BCC or clang printed."""
    useful = [ln.strip() for ln in lines if "error" in ln.lower() or "unable" in ln.lower()]
    detail = useful[0] if useful else str(exc).splitlines()[0][:200] if str(exc) else ""
    if "kernel headers" in detail.lower():
        detail += " (install linux-headers-$(uname -r))"
    return BackendError(f"{what}: {detail}" if detail else what)
