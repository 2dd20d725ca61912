#!/bin/sh
# Run a command as a least-privileged tracer (root needed to set it up): uid and gid
# 65534 holding only CAP_BPF and CAP_PERFMON (ambient, kernel 5.8+), in a private
# mount namespace where empty read-only tmpfs hide tracefs and debugfs. The host's
# mounts are untouched. Used by tools/test.sh and the benchmark.
#   tools/least_privilege.sh CMD [ARGS...]
set -eu
[ "$#" -gt 0 ] || { echo "usage: $0 CMD [ARGS...]" >&2; exit 2; }
exec unshare --mount --propagation private sh -c '
for d in /sys/kernel/tracing /sys/kernel/debug; do
  [ -d "$d" ] && mount -t tmpfs -o ro,size=4k,mode=755 hybridtrace-no-tracefs "$d"
done
exec setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all,+bpf,+perfmon \
  --ambient-caps=-all,+bpf,+perfmon "$@"' least_privilege "$@"
