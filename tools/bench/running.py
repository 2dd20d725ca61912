"""What the side benchmarks (syscall_cost, soak) share: running a tracer as a user
runs it, and publishing a result beside the main benchmark's.

A tracer's stdout is drained by a thread (nothing is kept but a byte count), so
a long run never fills a pipe or a disk; both our CLI and the reference tools
print their header once attached, which is how readiness is told.
"""

from __future__ import annotations

import datetime
import json
import os
import signal
import subprocess
import threading
import time
from typing import Any, Callable, Dict, List, Optional

from tools.bench import machine

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

READY_TIMEOUT = 60.0


class Running:
    def __init__(self, argv: List[str], settle: float = 0.5) -> None:
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.bytes_out = 0
        self._first = threading.Event()
        self._drain = threading.Thread(target=self._read, daemon=True)
        self._drain.start()
        deadline = time.monotonic() + READY_TIMEOUT
        while not self._first.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                err = self.stop()
                raise RuntimeError(f"{argv[0]} did not start: {err.strip()[:200]}")
        time.sleep(settle)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read(self) -> None:
        assert self.proc.stdout is not None
        while True:
            chunk = self.proc.stdout.read1(1 << 16)  # type: ignore[attr-defined]
            if not chunk:
                return
            self.bytes_out += len(chunk)
            self._first.set()

    def stop(self) -> str:
        """SIGINT (a clean ending, as Ctrl-C), then its stderr."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            _, err = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()  # ours, by its pid
            _, err = self.proc.communicate()
        self._drain.join(5)
        return (err or b"").decode(errors="replace")

    def returncode(self) -> Optional[int]:
        return self.proc.returncode


def publish(out: str, stem: str, settings: Dict[str, Any], rows: Dict[str, Any],
            render: Callable[[Dict[str, Any]], str]) -> str:
    """Write ``stem``.json (everything measured) and ``stem``.md (its page); return the page."""
    result = {"date": datetime.date.today().isoformat(), "machine": machine.describe(REPO),
              **settings, "tracers": rows}
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, f"{stem}.json"), "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    text = render(result)
    with open(os.path.join(out, f"{stem}.md"), "w") as f:
        f.write(text)
    return text
