"""The optional C modules (setup.py): each one when built and not switched off.

Each has a pure-Python definition it must equal, so a missing module costs CPU,
never a field. HYBRIDTRACE_PURE_PYTHON=1 at run time switches all of them off:
to compare the two, or to rule the C code out.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import Optional

PURE_PYTHON_ENV = "HYBRIDTRACE_PURE_PYTHON"


def switched_off() -> bool:
    return os.environ.get(PURE_PYTHON_ENV) == "1"


def load(name: str) -> Optional[ModuleType]:
    """The module ``name`` (e.g. hybridtrace.output._jsonline), or None."""
    if switched_off():
        return None
    try:
        return importlib.import_module(name)
    except ImportError:
        return None
