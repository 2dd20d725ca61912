"""Benchmarks: hybridtrace's backends side by side with libbpf-tools and BCC.

Run as ``python -m tools.bench`` (or ``python tools/bench/run.py``) from the
repository root, as root. See docs/benchmarks/README.md for the results.
"""

import contextlib as _contextlib
import signal as _signal

# Tracers are stopped with SIGINT (Ctrl-C: they drain and summarize). A shell without
# job control starts background commands with SIGINT ignored, and an ignored signal
# stays ignored in every child and across exec: each tracer would then run on until
# killed, 30 s later, without its summary. So the benchmarks take SIGINT back.
if _signal.getsignal(_signal.SIGINT) is _signal.SIG_IGN:
    # (outside the main thread it cannot be set: nothing to take back there)
    with _contextlib.suppress(ValueError):
        _signal.signal(_signal.SIGINT, _signal.default_int_handler)
