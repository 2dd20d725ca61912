"""Opens through io_uring for the integration tests, by the ground-truth workload.

tools/groundtruth/gt.c, started the way its own exec ops start it (``GT_SEQ``
and ``GT_JOB`` in the environment), runs one job of open ops and logs what
each really did (pid, tid, uid, path, result, a CLOCK_MONOTONIC window), so a
test knows exactly which event each open must give.
"""

from __future__ import annotations

import os
import subprocess
from typing import List, Optional, Sequence, Tuple, Union

from tools.groundtruth.workload import OpenOp, WorkloadError, _build, parse_log

LOG_FD, DIR_FD, STATIC_FD = 1000, 1001, 1002  # where gt.c finds them
# (method, what[, open flags]): what is "file" (exists) or "missing" (ENOENT)
Op = Union[Tuple[str, str], Tuple[str, str, int]]


class UringJob:
    """A built gt and a work directory; ``run`` opens through io_uring and returns the truth."""

    def __init__(self, workdir: str) -> None:
        self.dir = workdir
        self.bin = os.path.join(workdir, "bin")
        os.makedirs(self.bin, exist_ok=True)
        self.gt, self.gt_static = _build(self.bin)
        self._runs = 0

    def paths(self, tag: str, what: str) -> bytes:
        name = f"ht-uring-{tag}-{what}".encode()
        path = os.fsencode(self.dir) + b"/" + name
        if what == "file" and not os.path.exists(path):
            with open(path, "wb") as f:
                f.write(b"io_uring\n")
        return path

    def run(self, ops: Sequence[Op], setuid: bool = False,
            threads: int = 1) -> Tuple[int, List[OpenOp]]:
        """(pid, the opens as gt logged them); op i runs in thread i % threads."""
        return self.finish(self.start(ops, setuid, threads))

    def start(self, ops: Sequence[Op], setuid: bool = False,
              threads: int = 1) -> Started:
        """The job's process, waiting for ``finish`` to let it run (its pid is known)."""
        self._runs += 1
        job: List[str] = ["U:0"] if setuid else []
        for i, (method, what, *flags) in enumerate(ops):
            path = self.paths(f"{self._runs}-{i}", what)
            job.append(f"O:{i % threads}:{i + 1}:{method}:c:{path.hex()}:{sum(flags)}:0")
        text = f"{threads} " + " ".join(job)
        log = os.path.join(self.dir, f"log-{self._runs}.jsonl")
        fds = [os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666),
               os.open(self.dir, os.O_PATH | os.O_DIRECTORY),
               os.open(self.gt_static, os.O_RDONLY)]
        os.chmod(log, 0o666)
        try:
            for fd, target in zip(fds, (LOG_FD, DIR_FD, STATIC_FD)):
                os.dup2(fd, target)
            # The shell waits for a line, then becomes gt (same pid).
            child = subprocess.Popen(
                ["/bin/sh", "-c", 'read go; exec "$0"', self.gt], stdin=subprocess.PIPE,
                env={"GT_SEQ": "1", "GT_JOB": text.encode().hex(), "PATH": "/usr/bin:/bin"},
                pass_fds=(LOG_FD, DIR_FD, STATIC_FD), cwd=self.dir)
        finally:
            for fd in (*fds, LOG_FD, DIR_FD, STATIC_FD):
                os.close(fd)
        return Started(child, log)

    @staticmethod
    def finish(started: Started) -> Tuple[int, List[OpenOp]]:
        child = started.child
        assert child.stdin is not None
        child.stdin.write(b"go\n")
        child.stdin.close()
        code = child.wait(timeout=60)
        if code != 0:
            raise WorkloadError(f"gt exited {code}")
        with open(started.log, "rb") as f:
            opens = [op for op in parse_log(f.read()) if isinstance(op, OpenOp)]
        return child.pid, opens


class Started:
    def __init__(self, child: subprocess.Popen[bytes], log: str) -> None:
        self.child = child
        self.log = log

    def discard(self) -> None:
        """End the job unrun (a test that stopped before ``finish``): the shell would
        otherwise wait on its stdin until pytest exits, then exec a gt long gone."""
        if self.child.poll() is None:
            self.child.kill()
            self.child.wait(timeout=10)


def io_uring_claim(fields: dict) -> Optional[str]:
    """A candidate's io_uring field, None when it says it sees no io_uring opens."""
    claim = str(fields.get("io_uring", "none"))
    return None if claim.startswith("none") else claim
