"""The ftrace backend's settings that come from the environment, as fallbacks for
the request's typed options (trace(ftrace_reader=, buffer_pages=))."""

from __future__ import annotations

import os

from hybridtrace import vocabulary
from hybridtrace.backends.base import BackendError
from hybridtrace.backends.ftrace.instance import DEFAULT_BUFFER_KB
from hybridtrace.request import TraceRequest

READER_ENV = "HYBRIDTRACE_FTRACE_READER"  # "raw" (default) or "text"
BUFFER_ENV = "HYBRIDTRACE_FTRACE_BUFFER_KB"


def reader_choice(request: TraceRequest) -> str:
    """The request's ftrace_reader, else $HYBRIDTRACE_FTRACE_READER, else "raw"."""
    if request.ftrace_reader is not None:
        return request.ftrace_reader
    raw = os.environ.get(READER_ENV, "raw")
    if raw not in vocabulary.FTRACE_READERS:
        expected = ", ".join(vocabulary.FTRACE_READERS)
        raise BackendError(f"{READER_ENV}={raw!r}: expected one of {expected}")
    return raw


def buffer_kb() -> int:
    """Per-CPU buffer size: DEFAULT_BUFFER_KB, or the environment's choice."""
    raw = os.environ.get(BUFFER_ENV)
    if raw is None:
        return DEFAULT_BUFFER_KB
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 4:
        raise BackendError(f"{BUFFER_ENV}={raw!r}: expected a size in KiB per CPU (>= 4)")
    return value
