"""Variants: one kernel booted or prepared differently, to show how hybridtrace
copes with locked-down, BPF-denied, header-less or unmounted systems."""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import attr


@attr.s(auto_attribs=True, frozen=True)
class Variant:
    """How the VM differs from the Debian kernel as virtme-ng boots it."""

    name: str
    description: str
    append: Tuple[str, ...] = ()  # extra kernel command line
    setup: Tuple[str, ...] = ()  # guest_setup step names, run as root before anything else
    deny_bpf: bool = False  # run doctor, the recorders and the tests under tools.vm.nobpf
    unprivileged: bool = False  # run them as tools.vm.unpriv's user, not root
    raw_tp_probe: bool = False  # also run the raw tracepoint experiment (tools/vm/raw_tp_probe.py)
    # run them under tools/least_privilege.sh (uid 65534, CAP_BPF+CAP_PERFMON, no tracefs)
    least_privilege: bool = False
    # HYBRIDTRACE_REQUIRE_BACKENDS for the tests: a skip of these is a failure
    require: Optional[str] = None


VARIANTS: List[Variant] = [
    Variant("default", "Debian kernel, root, tracefs mounted, kprobes present, no kernel headers"),
    Variant("headers", "as default, plus the kernel's exact linux-headers as "
            "/lib/modules/R/build and source (BCC compiles)", setup=("headers",)),
    Variant("lockdown-integrity", "booted with lockdown=integrity",
            append=("lockdown=integrity",)),
    Variant("lockdown-confidentiality", "booted with lockdown=confidentiality; also runs "
            "the raw tracepoint experiment (tools/vm/raw_tp_probe.py)",
            append=("lockdown=confidentiality",), raw_tp_probe=True,
            require="ebpf-core/tp_btf"),
    Variant("bpf-denied", "root, but bpf(2) fails with EPERM under a seccomp filter "
            "(tools/vm/nobpf.py) for the tracer and the tests", deny_bpf=True),
    Variant("unprivileged", "doctor and force_open as an unprivileged user (uid/gid 4321, no "
            "capabilities) whose group may read and write every tracefs file, with "
            "kernel.unprivileged_bpf_disabled=1 so bpf() fails for it (tools/vm/unpriv.py); "
            "no integration tests: they require root and skip otherwise",
            setup=("unprivileged",), unprivileged=True),
    Variant("tracefs-unmounted", "tracefs and debugfs unmounted before the run "
            "(as after a boot without systemd)", setup=("unmount_tracefs",)),
    Variant("least-privilege", "doctor, force_open, the recorder and the tests as uid 65534 "
            "holding only CAP_BPF+CAP_PERFMON (ambient) in a private mount namespace where "
            "empty tmpfs hide tracefs and debugfs (tools/least_privilege.sh); "
            "HYBRIDTRACE_REQUIRE_BACKENDS=ebpf-core/tp_btf",
            setup=("least_privilege",), least_privilege=True, require="ebpf-core/tp_btf"),
    Variant("no-btf", "kernel BTF hidden, as before BTF was common: an empty tmpfs over "
            "/sys/kernel/btf, and none of libbpf's other vmlinux paths present;"
            " HYBRIDTRACE_REQUIRE_BACKENDS=ebpf-core/raw_tp",
            setup=("hide_btf",), require="ebpf-core/raw_tp"),
]

BY_NAME: Dict[str, Variant] = {v.name: v for v in VARIANTS}

# Test selections. TCG is slow (a test takes 10-50 s in a VM on a busy 2-core
# host; the whole suite would take well over an hour per VM), so most cells run
# the behavioural contract's exec and open tests for every backend (force_open
# checks every backend too); 6.1 with headers runs what the host cannot.
SUITES: Dict[str, Tuple[Tuple[str, ...], Optional[str]]] = {
    "full": (("tests/integration",), None),
    "none": ((), None),  # doctor and force_open only (the integration tests need root)
    "contract": (("tests/integration/test_contract.py",),
                 "hostile_argv or open_success_and_failure"),
    # Every contract test (exec, failed exec, open, uid filter, two sessions, the
    # decision) for every backend: the default row of each kernel, ~15-25 min.
    # With the where-tests' origin checks (test_containers.py, a cgroup named as docker
    # and podman name a container's): ebpf-core's fields against /proc and
    # /sys/fs/cgroup, and every ftrace tier's right or None across a cgroup migration
    # (kprobe and eprobe only in VMs).
    "contract-all": (("tests/integration/test_contract.py",
                      "tests/integration/test_containers.py"),
                     "test_contract or origin_against_proc or origin_right_or_none"),
    # Where ebpf-core/tp_btf is the one backend: every contract test, the
    # least-privilege checks (they skip unless run under tools/least_privilege.sh),
    # and the fields only BTF walks give where kernel reads are refused (the parent,
    # the new image's argv of a fork()+execv() child whose pages were out).
    "tp-btf": (("tests/integration/test_contract.py",
                "tests/integration/test_least_privilege.py",
                "tests/integration/test_ebpf_core.py"),
               "test_contract or test_least_privilege or untouched_argv"
               " or ppid_is_the_real_parent or failed_exec_enoent"),
    # Where BTF is hidden: every contract test, and raw_tp's own (Right-or-None fields).
    "raw-tp": (("tests/integration/test_contract.py",
                "tests/integration/test_ebpf_raw_tp.py"), None),
    # The ftrace tiers the host lacks, with both readers (binary pages and text).
    "ftrace": (("tests/integration/test_ftrace.py", "tests/integration/test_contract.py"),
               "kprobe or eprobe"),
    # The CI entry: what the 6.18 host cannot run (kprobes, eprobes, BCC). Each
    # BCC session compiles for 1-3 min under TCG, so BCC gets its contract and
    # four of its own tests; BCC's own execsnoop and opensnoop run beside ours once
    # (six BCC compiles of 23-30 s each: the test took 221 s of a 15.7 min cell).
    "ci": (("tests/integration/test_contract.py", "tests/integration/test_ftrace.py",
            "tests/integration/test_ebpf_bcc.py", "tests/integration/test_cli_vs_bcc.py"),
           "(test_contract and (kprobe or eprobe or bcc) and (hostile_argv or failed_exec"
           " or open_success)) or (test_ftrace and (kprobe or eprobe)) or (test_ebpf_bcc and"
           " (exec_argv or open_every or exact_headers or close_is_idempotent))"
           " or test_cli_vs_bcc"),
    # The eBPF backends' opens through io_uring (every attach mode; BCC where it has
    # headers), claims and fields, without the slower ftrace tiers.
    "io-uring-ebpf": (("tests/integration/test_contract.py",), "io_uring and ebpf"),
    # The tracer in a pid namespace of its own: the programs number tasks in it, found
    # level by level (kernel reads before 6.5, where struct pid's array is fixed).
    "pid-namespace": (("tests/integration/test_containers.py",), "own_pid_namespace"),
    # Every backend's opens through io_uring (the ftrace tiers' paths from their kprobe
    # or eprobe too): claims held by the contract's io_uring tests.
    "io-uring": (("tests/integration/test_contract.py",), "io_uring"),
    # Only the ftrace tiers whose probes read io_uring opens' paths.
    "io-uring-probes": (("tests/integration/test_contract.py",),
                        "io_uring and (kprobe or eprobe)"),
    # Where each event came from, against /proc and /sys/fs/cgroup (a cgroup named the
    # way docker names a container's): origin fields and in-kernel where-filters on
    # ebpf-core (both modes) and ebpf-bcc (where headers are), and every ftrace tier's
    # origin right or None across a cgroup migration (kprobe and eprobe only here).
    "containers": (("tests/integration/test_containers.py",), None),
    # The origin checks (every backend's fields against /proc and /sys/fs/cgroup, of
    # test_containers' workloads and the contract's own children) and --descendants-of.
    "containers-origin": (("tests/integration/test_contract.py",
                           "tests/integration/test_containers.py"),
                          "origin or hostile_argv or open_success_and_failure"
                          " or follows_a_tree"),
    # Rows with exact headers: the contract's exec and open tests, and ebpf-bcc's
    # origin fields and where-filters (each session compiles: ~25 s under TCG).
    "contract-bcc-where": (("tests/integration/test_contract.py",
                            "tests/integration/test_containers.py"),
                           "(test_contract and (hostile_argv or open_success_and_failure))"
                           " or (test_containers and ebpf-bcc)"),
    # Our execsnoop/opensnoop beside BCC's own tools (bpfcc-tools), line by line.
    "bcc-tools": (("tests/integration/test_cli_vs_bcc.py",), None),
}

# (kernel, variant, suite), most important first: the report is rewritten
# after every cell, so a matrix cut short still says what it covered.
FULL: List[Tuple[str, str, str]] = [
    ("6.1", "headers", "ci"),
    ("6.1", "default", "contract-all"), ("5.10", "default", "contract-all"),
    ("6.12", "default", "contract-all"),
    ("6.1", "lockdown-integrity", "contract"), ("6.1", "lockdown-confidentiality", "tp-btf"),
    ("6.1", "bpf-denied", "contract"), ("6.1", "unprivileged", "none"),
    ("6.1", "tracefs-unmounted", "contract"),
    ("5.10", "headers", "contract-bcc-where"), ("6.12", "headers", "contract-bcc-where"),
    ("6.12", "unprivileged", "none"),
    ("6.12", "lockdown-confidentiality", "tp-btf"),
    ("6.1", "least-privilege", "tp-btf"), ("6.12", "least-privilege", "tp-btf"),
    ("5.10", "no-btf", "raw-tp"),
    # The tracer in a pid namespace: kernel reads (5.10) and BTF walks (6.12, 6.5+).
    ("5.10", "default", "pid-namespace"), ("6.12", "default", "pid-namespace"),
]
CI: List[Tuple[str, str, str]] = [("6.1", "headers", "ci")]
# Debian's arm64 kernels (python -m tools.vm --arch arm64): 6.1 runs every contract
# test, with its exact headers (BCC compiles in the guest) the contract's exec and open
# tests, and so does 6.12.
ARM64: List[Tuple[str, str, str]] = [
    ("6.1-arm64", "default", "contract-all"),
    ("6.1-arm64", "headers", "contract"),
    ("6.12-arm64", "default", "contract"),
]
