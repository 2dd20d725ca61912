"""Python's cycle collector held off while one batch of trace records is processed.

A poll decodes up to ~10k records and keeps them, their TraceLines and the
events they become alive together until the batch is handed over. The
collector runs every 700 new container objects, so it traverses the batch
over and over and promotes it to older generations, which then trigger full
collections: a quarter of the ftrace reader's CPU per open (tools/bench/
replay_ftrace.py). Nothing a batch makes needs the cycle collector to be
freed (reference counts free it); a cycle, if one is made, waits for the
first collection after the batch. Process-wide, like the collector itself:
if the program turned collection off, it stays off.
"""

from __future__ import annotations

import contextlib
import gc
from typing import Iterator


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """No cyclic collection inside the block (reference counting goes on)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
