"""One buffer size for every backend: BCC's ``-b`` (pages per CPU) in each backend's terms.

BCC's opensnoop gives each CPU a perf buffer of N pages. Every backend here
gets the same memory per CPU: a per-CPU perf buffer of N pages; a BPF ring
buffer (one for all CPUs) of N pages times the possible CPUs, rounded up to
the power of two the kernel requires; an ftrace instance's per-CPU ring
buffer (``buffer_size_kb``) of N pages.
"""

from __future__ import annotations

import os

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
POSSIBLE_CPUS = "/sys/devices/system/cpu/possible"


def pow2(n: int) -> int:
    """The smallest power of two >= n (1 for n <= 1)."""
    size = 1
    while size < n:
        size <<= 1
    return size


def parse_cpu_list(text: str) -> int:
    """How many CPUs a kernel CPU list names ("0-3,8,10-11" is 7)."""
    count = 0
    for part in text.strip().split(","):
        if not part:
            continue
        low, _, high = part.partition("-")
        count += (int(high) if high else int(low)) - int(low) + 1
    return count


def possible_cpus(path: str = POSSIBLE_CPUS) -> int:
    """CPUs the kernel may bring online: per-CPU buffers are made for each of them."""
    try:
        with open(path) as handle:
            return max(1, parse_cpu_list(handle.read()))
    except (OSError, ValueError):
        return max(1, os.cpu_count() or 1)


def ring_pages(pages_per_cpu: int, ncpus: int) -> int:
    """A BPF ring buffer (shared by all CPUs) holding as much as ``ncpus`` perf buffers."""
    return pow2(pages_per_cpu * max(1, ncpus))


def ftrace_kb(pages_per_cpu: int) -> int:
    """An ftrace instance's per-CPU ``buffer_size_kb`` for that many pages."""
    return pages_per_cpu * PAGE_SIZE // 1024
