"""doctor inside a container: runtime, pid namespace, and the exact remedy per gap."""

from __future__ import annotations

import errno
from typing import Any, Dict

import attrs

from hybridtrace.capabilities.model import Capabilities
from hybridtrace.doctor import build_report
from hybridtrace.doctor.container import missing
from hybridtrace.doctor.render_json import report_to_dict
from hybridtrace.doctor.render_text import render_text
from tests.unit.kernel_trees import probe_tree

PODMAN = "podman-6.18-least-privilege"  # recorded in a real podman container


def _container_check(caps: Capabilities) -> Dict[str, Any]:
    data = report_to_dict(build_report(caps))
    check: Dict[str, Any] = next(c for c in data["checks"] if c["id"] == "container")
    return check


def test_recorded_podman_container_names_runtime_namespace_and_tracefs() -> None:
    caps = probe_tree(PODMAN)
    check = _container_check(caps)
    assert check["data"]["runtime"] == "podman" and check["data"]["pid_namespace_nested"]
    assert check["value"].startswith("yes (podman, its own pid namespace)")
    remedies = [m["remedy"] for m in check["data"]["missing"]]
    assert remedies[0].startswith("--pid=host")
    # podman mounts no cgroup v2 hierarchy in a container on this hybrid v1/v2 host
    assert remedies[1].startswith("-v /sys/fs/cgroup/unified:/sys/fs/cgroup/unified:ro")
    assert remedies[2].startswith("-v /sys/kernel/tracing:/sys/kernel/tracing")
    assert len(remedies) == 3  # it holds CAP_BPF+CAP_PERFMON and sees the BTF
    text = render_text(build_report(caps))
    assert "fix: --pid=host (Kubernetes: hostPID: true)" in text
    assert "fix: -v /sys/kernel/tracing:/sys/kernel/tracing" in text
    assert "fix: -v /sys/fs/cgroup/unified:/sys/fs/cgroup/unified:ro" in text
    # What it can use: ebpf-core without tracefs; ftrace and BCC are refused for the
    # pid namespace (their /proc look-ups would name other processes).
    report = build_report(caps)
    assert report.decisions["exec"].chosen is not None
    assert report.decisions["exec"].chosen.label == "ebpf-core/tp_btf"
    for cand in report.decisions["open"].candidates:
        codes = {r.code for r in cand.reasons}
        assert ("pid-namespace" in codes) == (cand.backend in ("ftrace", "ebpf-bcc"))


def test_without_capabilities_the_cap_add_comes_first() -> None:
    caps = probe_tree("derived-container-no-caps")
    gaps = missing(caps)
    assert gaps[0].remedy.startswith("--cap-add BPF,PERFMON")
    assert "fix: --cap-add BPF,PERFMON" in render_text(build_report(caps))


def test_capabilities_held_but_bpf_refused_points_at_seccomp() -> None:
    caps = probe_tree(PODMAN)
    refused = attrs.evolve(caps, bpf=attrs.evolve(caps.bpf, prog_load_errno=errno.EPERM))
    assert missing(refused)[0].remedy.startswith("--security-opt seccomp=unconfined")


def test_no_btf_in_the_container_names_the_volume() -> None:
    caps = probe_tree(PODMAN)
    blind = attrs.evolve(caps, btf=attrs.evolve(caps.btf, path=None))
    assert any(m.remedy == "-v /sys/kernel/btf:/sys/kernel/btf:ro (Kubernetes: a hostPath"
               " volume)" for m in missing(blind))


def test_a_mount_list_that_is_not_whole_claims_nothing_about_cgroup2() -> None:
    """Older recordings kept only tracefs/debugfs/securityfs lines: unknown, no remedy."""
    old = probe_tree("derived-container-no-caps")
    assert old.container.cgroup2 is None
    assert not any("cgroup v2" in m.what for m in missing(old))


def test_outside_a_container_nothing_is_missing() -> None:
    caps = probe_tree(PODMAN)
    host = attrs.evolve(caps, container=attrs.evolve(caps.container, in_container=False))
    assert missing(host) == [] and _container_check(host)["value"] == "no"
