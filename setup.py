"""The optional C extension; everything else about the package is in pyproject.toml.

hybridtrace/backends/ftrace/_ringpage.c decodes the ftrace reader's pages; the
pure-Python decoder gives the same records, so a failed build (no compiler, no
Python headers) installs without it. HYBRIDTRACE_PURE_PYTHON=1 at build time
leaves it out: a wheel for any platform (tools/vm/wheel_check.py builds that one
for the other architectures' guests).
"""

import os

from setuptools import Extension, setup

PURE = os.environ.get("HYBRIDTRACE_PURE_PYTHON") == "1"

setup(ext_modules=[] if PURE else [
    Extension("hybridtrace.backends.ftrace._ringpage",
              ["hybridtrace/backends/ftrace/_ringpage.c"], optional=True),
])
