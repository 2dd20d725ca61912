"""What else the machine was doing while a tracer was measured.

The CPUs are shared (other people's tests, builds, VMs): a tracer's CPU seconds
per event hardly change with that, but rates (what the load achieved, what a
tracer kept up with) do. So each soak records the load average and the CPU the
rest of the machine used: busy time from /proc/stat, less what this process and
its waited-for children (the tracer, the load) used; and, from a look at every
process at each sample, the biggest other consumers (a process that lives less
than a sampling period is in the total but not named).
"""

from __future__ import annotations

import os
import resource
from typing import Dict, List, Set, Tuple

_TICKS = os.sysconf("SC_CLK_TCK")


def loadavg() -> Tuple[float, float, float]:
    with open("/proc/loadavg") as f:
        one, five, fifteen = f.read().split()[:3]
    return float(one), float(five), float(fifteen)


def busy_seconds() -> float:
    """CPU time all CPUs spent not idle (user, nice, system, irq, softirq, steal)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / _TICKS


def ours_seconds() -> float:
    """This process's CPU plus that of every child it has waited for."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        use = resource.getrusage(who)
        total += use.ru_utime + use.ru_stime
    return total


def _name(pid: str, comm: str) -> str:
    """comm, and for an interpreter the start of its command line (python -m pytest)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            args = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return comm
    if len(args) > 1 and os.path.basename(args[0]).startswith(("python", "sh", "bash")):
        return " ".join([os.path.basename(args[0]), *args[1:3]])[:48]
    return comm


def per_process() -> Dict[int, Tuple[str, float]]:
    """pid -> (name, CPU seconds so far) of every live process."""
    found: Dict[int, Tuple[str, float]] = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                raw = f.read()
        except OSError:
            continue
        comm = raw[raw.index(b"(") + 1:raw.rindex(b")")].decode(errors="replace")
        fields = raw.rsplit(b")", 1)[1].split()
        found[int(pid)] = (_name(pid, comm), (int(fields[11]) + int(fields[12])) / _TICKS)
    return found


class Watch:
    """The machine from start() to finish(): its busy time and who used it."""

    def __init__(self) -> None:
        self.busy = busy_seconds()
        self.ours = ours_seconds()
        self.first = per_process()
        self.last: Dict[int, Tuple[str, float]] = dict(self.first)
        self.mine: Set[int] = set()

    def sample(self, ours: Set[int]) -> None:
        """Look at every process; ``ours`` (the benchmark's tree now) are not others."""
        self.mine |= ours
        self.last.update(per_process())

    def finish(self, top: int = 3) -> Tuple[float, List[Tuple[str, float]]]:
        """(CPU seconds the rest of the machine used, its biggest consumers by name)."""
        self.sample({os.getpid()})
        rest = (busy_seconds() - self.busy) - (ours_seconds() - self.ours)
        by_name: Dict[str, float] = {}
        for pid, (name, cpu) in self.last.items():
            if pid in self.mine:
                continue
            start = self.first.get(pid)
            used = cpu - (start[1] if start is not None and start[0] == name else 0.0)
            if used > 0:
                by_name[name] = by_name.get(name, 0.0) + used
        ranked = sorted(by_name.items(), key=lambda kv: -kv[1])[:top]
        return max(0.0, rest), [(name, round(cpu, 1)) for name, cpu in ranked]
