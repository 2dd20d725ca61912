"""The kernel matrix: boot Debian kernels in VMs and run hybridtrace inside.

`python -m tools.vm --help`. The VMs run under virtme-ng (qemu, host
filesystem shared read-only), so the code under test is this checkout.
"""
