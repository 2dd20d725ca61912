#!/usr/bin/env bash
# Install everything hybridtrace needs on a fresh Debian bookworm machine (run as root),
# then show what this kernel supports. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  # ebpf-core at run time, and to rebuild the shipped BPF objects
  libbpf1 libbpf-dev bpftool clang llvm
  # ebpf-bcc engine, and the reference tools the benchmarks compare against
  python3-bpfcc bpfcc-tools libbpf-tools
  # test workloads are small C programs built on the fly; with python3-dev, pip also
  # builds the optional C modules (setup.py): the ftrace reader's page decoder, open-call
  # pairing and origin fill (hybridtrace/backends/ftrace/_*.c) and the JSON writer
  # (hybridtrace/output/_jsonline.c)
  gcc libc6-dev python3-dev
  # debug symbols let the ftrace uprobe tier find the loader's and opendir's hidden opens
  libc6-dbg
  # a second C library, so the uprobe tier's musl support is tested
  musl musl-tools
  # the venv is built on Debian's python3 so an unprivileged user can run it
  # (tests drop to uid 65534), and Debian's python3-bpfcc matches it
  python3 python3-venv
  # the shipped zsh completion is syntax-checked by the tests (bash is always there)
  zsh
  # the CI's VM kernel (tools/vm --ci): qemu under TCG via virtme-ng, a busybox
  # init, depmod for the unpacked modules
  qemu-system-x86 busybox-static kmod file
  # the container tests (tests/integration/test_podman.py): rootful podman with runc (crun
  # fails on hybrid v1/v2 cgroups); their root filesystem is unpacked with dpkg-deb
  podman runc
)

if [ "$(id -u)" -eq 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  # This kernel ships no headers: give the BCC engine the nearest Debian ones
  # (offsets it needs come from BTF; see hybridtrace/backends/ebpf/bcc/).
  [ -e "/lib/modules/$(uname -r)/build" ] || tools/fetch_bcc_headers.sh >/dev/null
else
  echo "setup: not root, skipping apt-get install of: ${APT_PACKAGES[*]}" >&2
fi

PYTHON=${PYTHON:-/usr/bin/python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -e '.[test,vm]'

exec .venv/bin/hybridtrace doctor
