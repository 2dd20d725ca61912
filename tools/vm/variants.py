"""Variants: one kernel booted or prepared differently, to show how hybridtrace
copes with locked-down, BPF-denied, header-less or unmounted systems."""

from __future__ import annotations

from typing import Dict, List, Tuple

import attr


@attr.s(auto_attribs=True, frozen=True)
class Variant:
    """How the VM differs from the Debian kernel as virtme-ng boots it."""

    name: str
    description: str
    append: Tuple[str, ...] = ()  # extra kernel command line
    setup: Tuple[str, ...] = ()  # guest_setup step names, run as root before anything else
    deny_bpf: bool = False  # run doctor, the recorders and the tests under tools.vm.nobpf


VARIANTS: List[Variant] = [
    Variant("default", "Debian kernel, root, tracefs mounted, kprobes present, no kernel headers"),
    Variant("headers", "as default, plus the kernel's exact linux-headers as "
            "/lib/modules/R/build and source (BCC compiles)", setup=("headers",)),
    Variant("lockdown-integrity", "booted with lockdown=integrity",
            append=("lockdown=integrity",)),
    Variant("lockdown-confidentiality", "booted with lockdown=confidentiality",
            append=("lockdown=confidentiality",)),
    Variant("bpf-denied", "root, but bpf(2) fails with EPERM under a seccomp filter "
            "(tools/vm/nobpf.py) for the tracer and the tests", deny_bpf=True),
    Variant("tracefs-unmounted", "tracefs and debugfs unmounted before the run "
            "(as after a boot without systemd)", setup=("unmount_tracefs",)),
]

BY_NAME: Dict[str, Variant] = {v.name: v for v in VARIANTS}

# What the full matrix runs: every kernel as shipped and with headers, every
# variant on 6.1. The CI entry: 6.1 with headers, only what the host lacks.
FULL: List[Tuple[str, str]] = [
    ("5.10", "default"), ("5.10", "headers"),
    ("6.1", "default"), ("6.1", "headers"), ("6.1", "lockdown-integrity"),
    ("6.1", "lockdown-confidentiality"), ("6.1", "bpf-denied"), ("6.1", "tracefs-unmounted"),
    ("6.12", "default"), ("6.12", "headers"),
]
CI: List[Tuple[str, str]] = [("6.1", "headers")]
CI_TESTS = "kprobe or eprobe or bcc"  # pytest -k: what the 6.18 host cannot run
