"""The optional C extensions; everything else about the package is in pyproject.toml.

hybridtrace/backends/ftrace/_ringpage.c decodes the ftrace reader's pages,
hybridtrace/backends/ftrace/_opencalls.c pairs open calls' records into events,
hybridtrace/backends/ftrace/_origins.c fills in their origin fields and
hybridtrace/output/_jsonline.c writes events' JSON lines; the pure-Python code
gives the same records, events and text, so a failed build (no compiler, no Python
headers) installs without them. HYBRIDTRACE_PURE_PYTHON=1 at build time
leaves it out: a wheel for any platform (tools/vm/wheel_check.py builds that one
for the other architectures' guests).
"""

import os

from setuptools import Extension, setup

PURE = os.environ.get("HYBRIDTRACE_PURE_PYTHON") == "1"

setup(ext_modules=[] if PURE else [
    Extension("hybridtrace.backends.ftrace._ringpage",
              ["hybridtrace/backends/ftrace/_ringpage.c"], optional=True,
              depends=["hybridtrace/pycompat.h"]),
    Extension("hybridtrace.backends.ftrace._opencalls",
              ["hybridtrace/backends/ftrace/_opencalls.c"], optional=True,
              depends=["hybridtrace/pycompat.h"]),
    Extension("hybridtrace.backends.ftrace._origins",
              ["hybridtrace/backends/ftrace/_origins.c"], optional=True,
              depends=["hybridtrace/pycompat.h"]),
    Extension("hybridtrace.output._jsonline",
              ["hybridtrace/output/_jsonline.c"], optional=True,
              depends=["hybridtrace/pycompat.h"]),
])
