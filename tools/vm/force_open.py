"""Open every backend directly, ignoring what doctor and the selector say,
and see whether it really traces: the evidence that doctor's "not usable"
matches a real failure (and its "usable" a real success).

    python -m tools.vm.force_open > force_open.json
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List

from hybridtrace import kernel_state
from hybridtrace.backends import open_stream
from hybridtrace.capabilities import probe
from hybridtrace.capabilities.model import Capabilities
from hybridtrace.events import ExecEvent, OpenEvent
from hybridtrace.request import Kind, TraceRequest
from hybridtrace.selector import candidates

WAIT_S = 15.0


def _trigger(kind: str, marker: str) -> int:
    """Make one event of ``kind`` the stream should see; returns the child's pid."""
    if kind == "exec":
        return subprocess.Popen(["/bin/sh", "-c", "exit 0", marker]).pid
    child = subprocess.Popen(["/bin/cat", marker], stdout=subprocess.DEVNULL)
    child.wait()
    return child.pid


def _seen(event: object, kind: str, pid: int, marker: str) -> bool:
    if kind == "exec":
        return isinstance(event, ExecEvent) and event.pid == pid
    # Tiers without syscall-entry strings may not know the path (None): the
    # right process opening something still shows the stream works.
    return (isinstance(event, OpenEvent) and event.pid == pid
            and event.path in (marker.encode(), None))


def attempt(caps: Capabilities, label: str, kind: str) -> Dict[str, Any]:
    """Open ``label`` for ``kind``, trigger an event, wait for it, close."""
    cand = next(c for c in candidates(caps, kind) if c.label == label)
    result: Dict[str, Any] = {"doctor_usable": cand.usable}
    start = time.monotonic()
    try:
        stream = open_stream(cand, TraceRequest(kind=Kind(kind), tier=cand.tier), caps)
    except Exception as exc:  # any failure to open is the answer we are after
        result.update(outcome="open failed", error=f"{type(exc).__name__}: {exc}"[:400])
        return result
    try:
        with tempfile.NamedTemporaryFile(prefix="ht-force-") as marker:
            pid = _trigger(kind, marker.name)
            deadline = time.monotonic() + WAIT_S
            seen = False
            while time.monotonic() < deadline and not seen:
                seen = any(_seen(e, kind, pid, marker.name) for e in stream.poll(0.2))
        result["outcome"] = "traced" if seen else "opened, event not seen"
    except Exception as exc:
        result.update(outcome="poll failed", error=f"{type(exc).__name__}: {exc}"[:400])
    finally:
        stream.close()
    result["seconds"] = round(time.monotonic() - start, 1)
    return result


def main() -> int:
    out: Dict[str, Dict[str, Any]] = {}
    caps = probe()  # once: under TCG a probe takes seconds
    labels: List[str] = [c.label for c in candidates(caps, "exec")]
    for kind in ("exec", "open"):
        for label in labels:
            out.setdefault(label, {})[kind] = attempt(caps, label, kind)
    left = [str(item) for item in kernel_state.leftovers(os.getpid())]
    json.dump({"pid": os.getpid(), "results": out, "left_behind": left}, sys.stdout, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
