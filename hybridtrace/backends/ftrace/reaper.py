"""A watcher that outlives a killed ftrace session and removes what it left.

A session killed with SIGKILL cannot clean up: its instance would go on
recording (its buffer filling) and its uprobes stay armed until a later run
noticed. So each session starts this small process holding the read end of a
pipe whose write end only the session has. However the session ends, the
kernel closes its end: a clean close first writes ``BYE``, anything else is a
death, and the watcher then removes that owner's instance (which stops its
recording) and probes at once. The watcher runs in its own session, so a
terminal's Ctrl-C reaches only the tracer; it exits as soon as the pipe closes.

    python -m hybridtrace.backends.ftrace.reaper OWNER_PID TRACEFS_PATH
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import List, Optional

BYE = b"bye\n"


class Reaper:
    """The session's side: start the watcher, and say goodbye on a clean close."""

    def __init__(self, tracefs_path: str) -> None:
        self._proc: Optional[subprocess.Popen[bytes]] = subprocess.Popen(
            [sys.executable, "-m", __name__, str(os.getpid()), tracefs_path],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True, close_fds=True)

    @property
    def pid(self) -> Optional[int]:
        return self._proc.pid if self._proc is not None else None

    def release(self) -> None:
        """The session cleaned up itself: the watcher has nothing to do."""
        proc, self._proc = self._proc, None
        if proc is None or proc.stdin is None:
            return
        try:
            proc.stdin.write(BYE)
            proc.stdin.close()
        except OSError:
            pass  # it is gone already
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()  # ours, by its pid: never left as a zombie or a stray
            proc.wait()


def watch(owner: int, path: str) -> List[str]:
    """Block until the owner's end of the pipe closes; clean up unless it said goodbye."""
    from hybridtrace.backends.ftrace.cleanup import remove_stale  # now, not when it is urgent

    said = b""
    while True:
        chunk = os.read(0, 64)
        if not chunk:
            break
        said += chunk
    if said.endswith(BYE):
        return []
    return remove_stale(path, owner=owner)


def main(argv: List[str]) -> int:
    if len(argv) != 3 or not argv[1].isdigit():
        print("usage: python -m hybridtrace.backends.ftrace.reaper OWNER_PID TRACEFS_PATH",
              file=sys.stderr)
        return 2
    try:
        watch(int(argv[1]), argv[2])
    except OSError:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
