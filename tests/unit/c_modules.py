"""What the tests of an optional C module do where it is missing (setup.py builds them)."""

from __future__ import annotations

import shutil

import pytest

from hybridtrace import compiled


def require_built(built: bool, name: str) -> None:
    """Skip where the C modules are switched off or cannot be built here; fail where a
    compiler is here but ``name`` was not built (the tests would pass on nothing)."""
    if built:
        return
    if compiled.switched_off() or not (shutil.which("cc") or shutil.which("gcc")):
        pytest.skip("the C module is switched off or cannot be built here")
    pytest.fail(f"a C compiler is here but {name} is not built: run tools/setup.sh")
