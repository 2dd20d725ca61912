#!/usr/bin/env bash
# Prepare a borrowed kernel header tree for the ebpf-bcc engine on a host whose
# kernel has no headers package (run as root; idempotent).
#
# Debian splits headers into linux-headers-R (generated files, .config) and
# linux-headers-R-common (the sources); BCC_KERNEL_SOURCE wants one tree, so
# both are unpacked with dpkg -x and merged into a private directory. Nothing
# is installed and /lib/modules is not touched.
#
#   tools/fetch_bcc_headers.sh [DEST] [HEADERS_PACKAGE]
#     DEST             default /var/cache/hybridtrace/bcc-headers
#     HEADERS_PACKAGE  default: what linux-headers-$(dpkg --print-architecture) depends on
#
# Prints the tree's path on stdout; use it with:
#   HYBRIDTRACE_BCC_HEADERS=<path> hybridtrace execsnoop --backend ebpf-bcc
# A tree for another kernel release is "borrowed": hybridtrace then takes
# task_struct offsets from the running kernel's BTF (or turns those reads off).
set -euo pipefail

DEST=${1:-/var/cache/hybridtrace/bcc-headers}
ARCH=$(dpkg --print-architecture)
PKG=${2:-$(apt-cache depends "linux-headers-$ARCH" | awk '/Depends: linux-headers-/ {print $2; exit}')}
[ -n "$PKG" ] || { echo "fetch_bcc_headers: no linux-headers-$ARCH package known to apt" >&2; exit 1; }
COMMON=$(apt-cache depends "$PKG" | awk '/Depends: linux-headers-.*-common/ {print $2; exit}')
RELEASE=${PKG#linux-headers-}
TREE="$DEST/$RELEASE"

if [ -f "$TREE/.complete" ]; then
  echo "$TREE"
  exit 0
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/hybridtrace-headers.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
(
  cd "$WORK"
  # _apt cannot write to a private mktemp dir; download as the invoking user.
  apt-get -q -o APT::Sandbox::User=root download "$PKG" ${COMMON:+"$COMMON"} >/dev/null
  for deb in ./*.deb; do dpkg-deb -x "$deb" root; done
)
rm -rf "$TREE.partial"
mkdir -p "$TREE.partial"
# Sources first, then the generated files on top: one tree, as BCC expects.
[ -z "$COMMON" ] || cp -a "$WORK/root/usr/src/$COMMON/." "$TREE.partial/"
cp -a "$WORK/root/usr/src/$PKG/." "$TREE.partial/"
# Links into linux-kbuild (scripts/, tools/) are not needed by BCC and would dangle.
find "$TREE.partial" -maxdepth 1 -type l -delete
for need in include/linux/kconfig.h include/generated/autoconf.h include/generated/utsrelease.h; do
  [ -f "$TREE.partial/$need" ] || { echo "fetch_bcc_headers: $need missing from $PKG" >&2; exit 1; }
done
touch "$TREE.partial/.complete"
rm -rf "$TREE"
mv "$TREE.partial" "$TREE"
echo "$TREE"
