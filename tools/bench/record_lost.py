"""Record real loss reports as fixtures: force a tracer to drop events.

The tracer's stdout is a pipe nobody reads for a while, so it blocks on
write while a flat-out open loop fills its kernel buffer; then the pipe is
drained. What the tracer says about the loss (libbpf-tools: "Lost N events
on CPU #c!" on stderr; hybridtrace: {"type": "lost"} records and its closing
summary) is saved to DIR for the parser tests.

    sudo .venv/bin/python -m tools.bench.record_lost tests/fixtures/bench
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import IO, List, Optional, Tuple

from tools.bench.tracers import LIBBPF_TOOLS, hybridtrace_cli
from tools.bench.workloads import build

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STALL = 3.0


def _drain(pipe: IO[bytes], sink: List[bytes]) -> None:
    sink.append(pipe.read())


def force_loss(argv: List[str], openloop: str, folder: str) -> Tuple[bytes, bytes, int]:
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    assert proc.stdout is not None and proc.stderr is not None
    err: List[bytes] = []
    reader = threading.Thread(target=_drain, args=(proc.stderr, err))
    reader.start()
    time.sleep(2.0)  # start-up
    done = subprocess.run([openloop, os.path.join(folder, "L-"), "0", str(STALL)],
                          capture_output=True, text=True)
    produced = int(done.stdout.split()[1])
    out: List[bytes] = []
    drainer = threading.Thread(target=_drain, args=(proc.stdout, out))
    drainer.start()
    time.sleep(2.0)
    os.kill(proc.pid, signal.SIGINT)
    proc.wait(timeout=30)
    drainer.join()
    reader.join()
    return out[0], err[0], produced


def main(argv: Optional[List[str]] = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or os.geteuid() != 0:
        sys.stderr.write("usage (as root): python -m tools.bench.record_lost DIR\n")
        return 2
    target = args[0]
    os.makedirs(target, exist_ok=True)
    cli = hybridtrace_cli(REPO)
    tools = {"libbpf-tools-opensnoop": [LIBBPF_TOOLS["open"]],
             "hybridtrace-ebpf-core-opensnoop": [cli, "opensnoop", "--json",
                                                 "--backend", "ebpf-core"]}
    with tempfile.TemporaryDirectory(prefix="htlost-") as folder:
        bins = build(folder)
        for name, command in tools.items():
            out, err, produced = force_loss(command, bins.openloop, folder)
            with open(os.path.join(target, f"lost.{name}.stderr"), "wb") as f:
                f.write(err)
            lost_lines = [ln for ln in out.splitlines(keepends=True) if b'"lost"' in ln]
            with open(os.path.join(target, f"lost.{name}.stdout"), "wb") as f:
                f.writelines(out.splitlines(keepends=True)[:3] + lost_lines[:200])
            with open(os.path.join(target, f"lost.{name}.json"), "w") as f:
                json.dump({"command": command, "produced": produced, "stall_s": STALL,
                           "stdout_lines_total": len(out.splitlines())}, f, indent=1)
                f.write("\n")
            sys.stderr.write(f"{name}: {len(err.splitlines())} stderr lines,"
                             f" {len(lost_lines)} lost records\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
