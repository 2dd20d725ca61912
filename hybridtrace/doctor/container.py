"""doctor's container check: which runtime, whose namespaces, and for each thing the
container lacks, the exact option that gives it.

Remedies are written as podman/docker options (Kubernetes' field in brackets):
they are what a user changes, not what the kernel calls it.
"""

from __future__ import annotations

import errno
from typing import Any, Dict, List

import attrs

from hybridtrace.backends.requirements_common import PID_NAMESPACE_REMEDY
from hybridtrace.capabilities.model import Capabilities

CAP_REMEDY = "--cap-add BPF,PERFMON (Kubernetes: capabilities.add [BPF, PERFMON])"
SECCOMP_REMEDY = ("--security-opt seccomp=unconfined, or a profile allowing bpf and"
                  " perf_event_open (Kubernetes: seccompProfile type Unconfined)")
BTF_REMEDY = "-v /sys/kernel/btf:/sys/kernel/btf:ro (Kubernetes: a hostPath volume)"
CGROUP2_REMEDY = ("-v /sys/fs/cgroup/unified:/sys/fs/cgroup/unified:ro on a hybrid v1/v2"
                  " host; --cgroupns=host on a cgroup v2 one (Kubernetes: a hostPath of"
                  " /sys/fs/cgroup)")
TRACEFS_REMEDY = ("-v /sys/kernel/tracing:/sys/kernel/tracing with tracefs mounted there on"
                  " the host, or --privileged to let hybridtrace mount it")


@attrs.frozen(slots=True)
class Missing:
    what: str  # what the container lacks
    needed_by: str  # which backends (or what use) need it
    remedy: str

    def as_dict(self) -> Dict[str, str]:
        return {"what": self.what, "needed_by": self.needed_by, "remedy": self.remedy}


def missing(caps: Capabilities) -> List[Missing]:
    """What this container lacks for tracing, most important first; empty outside one."""
    if not caps.container.in_container:
        return []
    out: List[Missing] = []
    if not caps.privileges.can_bpf:
        out.append(Missing("CAP_BPF and CAP_PERFMON", "every eBPF backend", CAP_REMEDY))
    elif caps.bpf.prog_load_errno in (errno.EPERM, errno.EACCES):
        out.append(Missing("bpf() past the seccomp filter (the capabilities are held)",
                           "every eBPF backend", SECCOMP_REMEDY))
    if caps.container.pid_namespace_nested:
        out.append(Missing("the host's pid namespace",
                           "ftrace and ebpf-bcc (they look up host pids in /proc); pids of"
                           " processes outside this container (shown as unknown otherwise)",
                           PID_NAMESPACE_REMEDY))
    if caps.btf.path is None:
        out.append(Missing("/sys/kernel/btf/vmlinux (the kernel's BTF)",
                           "ebpf-core's tracepoint and tp_btf modes", BTF_REMEDY))
    if caps.container.cgroup2 is False:
        out.append(Missing("a cgroup v2 hierarchy", "events' cgroup and container_id, and"
                           " --cgroup/--container (None and refused without it)",
                           CGROUP2_REMEDY))
    if caps.tracefs.path is None and not caps.tracefs.mountable:
        out.append(Missing("tracefs at /sys/kernel/tracing",
                           "ftrace, ebpf-bcc and ebpf-core's tracepoint mode (tp_btf needs"
                           " none)", TRACEFS_REMEDY))
    return out


def check_data(caps: Capabilities) -> Dict[str, Any]:
    cont = caps.container
    return {"in_container": cont.in_container, "runtime": cont.runtime,
            "pid_namespace_nested": cont.pid_namespace_nested, "dockerenv": cont.dockerenv,
            "cgroup": cont.cgroup, "cgroup2": cont.cgroup2, "btf": caps.btf.path is not None,
            "tracefs": caps.tracefs.path,
            "missing": [m.as_dict() for m in missing(caps)]}


def value(caps: Capabilities) -> str:
    """One line for people: yes (runtime, whose pid namespace) or no."""
    cont = caps.container
    if not cont.in_container:
        return "no" if cont.in_container is False else "unknown"
    pidns = {True: "its own pid namespace", False: "the host's pid namespace",
             None: "pid namespace unknown"}[cont.pid_namespace_nested]
    gaps = missing(caps)
    lacks = f"; lacks {len(gaps)} thing(s), fixes below" if gaps else ""
    return f"yes ({cont.runtime or 'runtime unknown'}, {pidns}){lacks}"
