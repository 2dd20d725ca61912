"""The cgroup-path parser, on the path shapes container runtimes really make."""

from __future__ import annotations

from typing import Optional

import pytest

from hybridtrace.containers import ContainerRef, container_id, parse

A = "3621bf4f79875330365c5acaab8a14955c445409c0ae302e6a9d0e3d8f6ae097"
B = "5eab84e369aa24b6ad0ef015bd597add0a926bbb891c68b507cf24ebd31fcafa"
POD = "0a1b2c3d-4e5f-6789-abcd-ef0123456789"


@pytest.mark.parametrize("path, runtime, cid, cgroup", [
    # podman 4.3 with runc, cgroupfs manager (measured on this machine kind)
    (f"/libpod_parent/libpod-{A}", "podman", A, f"/libpod_parent/libpod-{A}"),
    # podman, systemd manager; crun's own sub-cgroup inside the scope
    (f"/machine.slice/libpod-{A}.scope", "podman", A, f"/machine.slice/libpod-{A}.scope"),
    (f"/machine.slice/libpod-{A}.scope/container", "podman", A,
     f"/machine.slice/libpod-{A}.scope"),
    # rootless podman under the user's systemd
    (f"/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{A}.scope",
     "podman", A, f"/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{A}.scope"),
    # docker: cgroupfs driver, systemd driver
    (f"/docker/{A}", "docker", A, f"/docker/{A}"),
    (f"/system.slice/docker-{A}.scope", "docker", A, f"/system.slice/docker-{A}.scope"),
    # Kubernetes, systemd driver: containerd and cri-o
    (f"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{POD.replace('-', '_')}"
     f".slice/cri-containerd-{A}.scope", "containerd", A, None),
    (f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{POD.replace('-', '_')}"
     f".slice/crio-{A}.scope", "cri-o", A, None),
    # Kubernetes, cgroupfs driver
    (f"/kubepods/besteffort/pod{POD}/{A}", "kubernetes", A, f"/kubepods/besteffort/pod{POD}/{A}"),
    (f"/kubepods/pod{POD}/{A}", "kubernetes", A, None),
    # containerd without Kubernetes (ctr, nerdctl)
    (f"/default/{A}", "containerd", A, f"/default/{A}"),
    (f"/system.slice/nerdctl-{A}.scope", "containerd", A, None),
    # docker inside a podman container: the inner one is where the process is
    (f"/libpod_parent/libpod-{A}/docker/{B}", "docker", B, f"/libpod_parent/libpod-{A}/docker/{B}"),
])
def test_runtime_shapes(path: str, runtime: str, cid: str, cgroup: Optional[str]) -> None:
    ref = parse(path)
    assert ref is not None and ref.runtime == runtime and ref.id == cid
    if cgroup is not None:
        assert ref.cgroup == cgroup
    assert ref.short_id == cid[:12]
    assert parse(path.encode()) == ref
    assert container_id(path) == cid


@pytest.mark.parametrize("path", [
    None, "/", "", "/init.scope", "/user.slice/user-0.slice/session-3.scope",
    "/system.slice/ssh.service",
    # conmon is the runtime's monitor, not the container
    f"/machine.slice/libpod-conmon-{A}.scope",
    f"/kubepods.slice/crio-conmon-{A}.scope",
    # a hex name alone, or under a parent that is no runtime's
    f"/{A}", f"/system.slice/{A}", f"/myapp/{A}",
    # wrong length, upper case
    f"/docker/{A[:-1]}", f"/docker/{A.upper()}", f"/system.slice/docker-{A}x.scope",
    # the memory controller's odd path on this machine kind (v1, not a container)
    "/process_api/9d19d5304d386e25019cd52f097631eb",
])
def test_not_a_container(path: Optional[str]) -> None:
    assert parse(path) is None
    assert container_id(path) is None


def test_bytes_not_ascii_is_no_container() -> None:
    assert parse(b"/docker/\xff" + A.encode()) is None


def test_ref_is_a_value() -> None:
    assert ContainerRef("docker", A, f"/docker/{A}") == parse(f"/docker/{A}")
