"""The kernel matrix's arm64 tooling: a foreign root filesystem, its vng command line,
and how arm64 rows sit beside the amd64 ones (no VM is booted here)."""

from __future__ import annotations

import os
import sys
from typing import Any, Dict

import pytest

from tools.vm import boot, kernels, matrix, report, rootfs
from tools.vm.apt import PrivateApt
from tools.vm.variants import ARM64, BY_NAME, SUITES


def test_a_foreign_architecture_gets_its_own_apt_lists_and_only_its_packages() -> None:
    native = PrivateApt.for_suite("/c", "bookworm", None)
    arm = PrivateApt.for_suite("/c", "bookworm", None, "arm64")
    assert native.root == "/c/apt/bookworm" and arm.root == "/c/apt/bookworm-arm64"
    assert not any("APT::Architecture" in o for o in native.options())
    opts = arm.options()
    assert "APT::Architecture=arm64" in opts and "APT::Architectures=arm64" in opts


def test_vng_boots_a_foreign_kernel_on_its_own_root_with_guest_paths_spelled_out() -> None:
    argv = boot.vng_argv("/k/vmlinuz", "/runs/x", ["/cache", "/repo"], ["quiet"], "cmd",
                         2, "2G", kvm=False, arch="arm64", root="/rootfs")
    assert argv[argv.index("--arch") + 1] == "arm64"
    assert argv[argv.index("--root") + 1] == "/rootfs"
    # vng infers no guest path for a host path outside a foreign root
    assert argv[argv.index("--rwdir") + 1] == "/runs/x=/runs/x"
    rodirs = [argv[i + 1] for i, a in enumerate(argv) if a == "--rodir"]
    assert rodirs == ["/cache=/cache", "/repo=/repo"]
    native = boot.vng_argv("/k/vmlinuz", "/runs/x", ["/cache"], [], "cmd", 2, "2G", kvm=False)
    assert "--arch" not in native and native[native.index("--rwdir") + 1] == "/runs/x"
    with pytest.raises(ValueError):
        boot.vng_argv("/k", "/r", [], [], "cmd", 1, "1G", kvm=False, arch="arm64")


def test_the_arm64_plan_names_arm64_kernels_and_known_variants() -> None:
    assert ARM64
    for kernel, variant, suite in ARM64:
        assert kernels.spec_named(kernel).arch == "arm64"
        assert not kernels.spec_named(kernel).native
        assert variant in BY_NAME and suite in SUITES
    assert matrix.PLANS["arm64"] is ARM64
    assert matrix.parse_cells("6.1-arm64:default") == [("6.1-arm64", "default", "contract")]
    assert "qemu-system-arm" in matrix.ARCH_TOOLS["arm64"]


def test_rows_know_their_architecture_and_sort_after_amd64() -> None:
    rows = [{"kernel": "6.1-arm64", "variant": "default", "vm": True},
            {"kernel": "6.12", "variant": "default", "vm": True},
            {"kernel": "host", "variant": "default", "vm": False}]
    assert [matrix._arch(r) for r in rows] == ["arm64", "amd64", "amd64"]
    ordered = sorted(rows, key=matrix._order)
    assert [r["kernel"] for r in ordered] == ["6.12", "6.1-arm64", "host"]


def _row(kernel: str, arch: str) -> Dict[str, Any]:
    return {"name": f"debian-{kernel}-default", "kernel": kernel, "release": "6.1.0-57-" + arch,
            "packages": {"linux-image-6.1.0-57-" + arch: "6.1.192-3"}, "vm": True,
            "arch": arch, "variant": "default", "variant_description": "d", "seconds": 1.0,
            "wall_clock_exceeded": False, "vm_rc": 0, "completed": True, "setup": {},
            "steps": {}, "doctor": None, "force_open": None, "tests": [], "groups": {}}


def test_the_report_says_how_an_arm64_kernel_was_booted() -> None:
    text = report.render({"generated_by": "python -m tools.vm", "generated_at": "now",
                          "results": [_row("6.1", "amd64"), _row("6.1-arm64", "arm64")]})
    kernels_table = text.split("## Kernels", 1)[1].split("## Variants", 1)[0]
    lines = [ln for ln in kernels_table.splitlines() if ln.startswith("| 6.1")]
    assert len(lines) == 2
    assert "qemu-system-aarch64" not in lines[0] and "qemu TCG via virtme-ng" in lines[0]
    assert "qemu-system-aarch64" in lines[1] and "arm64 packages" in lines[1]


def test_configure_writes_what_skipped_maintainer_scripts_would_have(tmp_path: Any) -> None:
    root = str(tmp_path)
    os.makedirs(os.path.join(root, "usr/share/base-passwd"))
    os.makedirs(os.path.join(root, "etc"))
    os.makedirs(os.path.join(root, "bin"))
    with open(os.path.join(root, "usr/share/base-passwd/passwd.master"), "w") as f:
        f.write("root:*:0:0:root:/root:/bin/sh\nnobody:*:65534:65534::/:/bin/false\n")
    done = rootfs.configure(root)
    assert "/etc/passwd from base-passwd" in done and "/bin/sh -> dash" in done
    with open(os.path.join(root, "etc/passwd")) as f:
        assert "nobody:*:65534" in f.read()
    assert os.readlink(os.path.join(root, "bin/sh")) == "dash"
    assert not os.path.exists(os.path.join(root, "etc/group"))  # no master, nothing made up
    assert rootfs.configure(root) == []  # a second run changes nothing


@pytest.mark.skipif(f"{sys.version_info.major}.{sys.version_info.minor}" != rootfs.GUEST_PYTHON,
                    reason="copies only into a guest of this Python's minor version")
def test_only_pure_python_distributions_are_copied_into_the_guest(tmp_path: Any) -> None:
    copied = rootfs.copy_pure_python(str(tmp_path), ("attrs", "pluggy"))
    site = os.path.join(str(tmp_path), "usr/local/lib", f"python{rootfs.GUEST_PYTHON}",
                        "dist-packages")
    assert set(copied) == {"attrs", "pluggy"}
    assert os.path.isfile(os.path.join(site, "attr", "__init__.py"))
    assert os.path.isfile(os.path.join(site, "pluggy", "__init__.py"))
    compiled = [n for d, _, ns in os.walk(site) for n in ns if n.endswith(".so")]
    assert compiled == []
    # rpds-py (jsonschema's dependency in the test venv) is a Rust extension
    try:
        import rpds  # noqa: F401
    except ImportError:
        pytest.skip("no compiled distribution installed to refuse")
    with pytest.raises(RuntimeError, match="not pure Python"):
        rootfs.copy_pure_python(str(tmp_path), ("rpds-py",))
