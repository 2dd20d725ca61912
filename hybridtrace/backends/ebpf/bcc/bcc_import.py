"""Import the distro's BCC module (python3-bpfcc) from inside a virtualenv.

BCC is not on PyPI (PyPI's "bcc" is an unrelated package), and a venv hides
the system site-packages, so the system location joins sys.path just for
this import and leaves it again.
"""

from __future__ import annotations

import importlib
import os
import sys
from types import ModuleType
from typing import List, Optional

from hybridtrace.backends.base import BackendError

SYSTEM_DIRS = ("/usr/lib/python3/dist-packages", "/usr/lib/python3/site-packages")
REMEDY = "install python3-bpfcc (the distro package; PyPI's 'bcc' is unrelated)"


def _is_bcc(module: ModuleType) -> bool:
    """BCC's module has a BPF class; PyPI's namesake does not."""
    return hasattr(module, "BPF")


def _forget() -> None:
    for name in [n for n in sys.modules if n == "bcc" or n.startswith("bcc.")]:
        del sys.modules[name]


def candidate_dirs(location: Optional[str]) -> List[str]:
    """Directories to put on sys.path: the parent of a reported bcc/ package first."""
    dirs: List[str] = []
    if location:
        loc = location.rstrip("/")
        dirs.append(os.path.dirname(loc) if os.path.basename(loc) == "bcc" else loc)
    dirs += [d for d in SYSTEM_DIRS if d not in dirs]
    return dirs


def import_bcc(location: Optional[str] = None) -> ModuleType:
    """The ``bcc`` module, or BackendError saying how to get it."""
    loaded = sys.modules.get("bcc")
    if loaded is not None and _is_bcc(loaded):
        return loaded
    errors: List[str] = []
    for directory in [None, *candidate_dirs(location)]:
        added = directory is not None and directory not in sys.path
        if added:
            sys.path.insert(0, directory)  # type: ignore[arg-type]
        try:
            module = importlib.import_module("bcc")
        except ImportError as exc:
            errors.append(str(exc))
            _forget()
            continue
        except Exception as exc:  # libbcc.so missing raises OSError from ctypes
            errors.append(f"{type(exc).__name__}: {exc}")
            _forget()
            continue
        finally:
            if added:
                sys.path.remove(directory)  # type: ignore[arg-type]
        if _is_bcc(module):
            return module
        errors.append(f"{getattr(module, '__file__', '?')} is not BCC")
        _forget()
    last = errors[-1] if errors else "not found"
    raise BackendError(f"BCC's python module is not importable ({last}): {REMEDY}")
