"""Shared test plumbing.

CI sets HYBRIDTRACE_REQUIRE_BACKENDS (comma-separated, e.g. "ebpf-core,ftrace/uprobe")
so that a backend it expects can never be silently skipped: without the
variable, tests for a backend that cannot run here are skipped; with it, they
fail. Besides backends it names what those tests stand on: "root" (a real kernel
as root) and "podman" (a container runtime that runs containers here).
"""

from __future__ import annotations

import os
from typing import FrozenSet

import pytest


def required_backends() -> FrozenSet[str]:
    raw = os.environ.get("HYBRIDTRACE_REQUIRE_BACKENDS", "")
    return frozenset(part.strip() for part in raw.split(",") if part.strip())


def require(name: str, message: str) -> None:
    """Call when ``name`` is missing here: skip with ``message``, or fail if CI requires
    it (a backend "B/TIER" is also required by "B")."""
    if name in required_backends() or name.split("/")[0] in required_backends():
        pytest.fail(message + " (required by HYBRIDTRACE_REQUIRE_BACKENDS)")
    pytest.skip(message)


def require_backend(name: str, why_unavailable: str = "") -> None:
    """Call when ``name`` cannot run here: skip, or fail if CI requires it."""
    require(name, f"backend {name} cannot run here: {why_unavailable or 'unavailable'}")


# Wall-clock bounds in tests are for this host; a VM under TCG (tools/vm sets this) is slower.
TIME_SCALE = float(os.environ.get("HYBRIDTRACE_TEST_TIME_SCALE", "1"))

# Set by tools/test.sh for its run under tools/least_privilege.sh: not root, on purpose.
LEAST_PRIVILEGE = os.environ.get("HYBRIDTRACE_LEAST_PRIVILEGE") == "1"


def require_root() -> None:
    if os.geteuid() != 0 and not LEAST_PRIVILEGE:
        require_backend("root", "these tests need root and a real kernel")
