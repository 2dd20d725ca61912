"""The exceptions of the API: every failure a caller can cause is a BackendError.

They live here, below every other module, so that request.py (validation)
and the backends share them without importing each other. The classes that
need a layer above (SelectionError in selector.py, StartError in api.py)
subclass these; hybridtrace/__init__.py exports them all.
"""

from __future__ import annotations

from typing import Optional


class BackendError(Exception):
    """A failure a user can cause or fix; shown as one line, never a traceback."""

    errno: Optional[int] = None  # the kernel's error number, where one was the cause


class RequestError(BackendError, ValueError):
    """The request itself is wrong (kind, backend, tier, a filter, max_args).

    Raised by ``trace()`` (and Filters, TraceRequest) before anything is
    probed or loaded into the kernel. Also a ValueError, since that is what
    a bad argument is.
    """
