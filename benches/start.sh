#!/usr/bin/env bash
# Container start benchmark: create-to-exit of `true` on a busybox root filesystem, rcompose's
# runtime vs `runc run` and `crun run` on the same folder, in the same hyperfine run.
# Needs root, busybox-static, hyperfine, jq, runc and crun (apt-get install runc crun — for the
# benchmark only). Figures go to docs/performance.md.
#
# crun refuses this machine's hybrid cgroups while cgroup2 offers hugetlb (see
# /work/shared/peers.md): the script mounts a v1 hugetlb hierarchy for the run and removes it
# afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-40}
target=${CARGO_TARGET_DIR:-target}
for tool in busybox hyperfine jq runc crun; do
  command -v "$tool" >/dev/null || { echo "start.sh: $tool is missing" >&2; exit 1; }
done
cargo build --release -q -p rcompose-runtime --example container_start --bin rcompose-container-helper

work=$(mktemp -d /var/tmp/rcompose-bench-start.XXXXXX)
hugetlb_mounted=
cleanup() {
  if [ -n "$hugetlb_mounted" ]; then umount /sys/fs/cgroup/hugetlb && rmdir /sys/fs/cgroup/hugetlb; fi
  rm -rf "$work"
}
trap cleanup EXIT

# The busybox root filesystem (same layout as the runtime's tests).
rootfs=$work/rootfs
mkdir -p "$rootfs"/{bin,etc,tmp,proc,sys,dev,root}
cp /usr/bin/busybox "$rootfs/bin/busybox"
for a in $(busybox --list); do [ "$a" = busybox ] || ln -s busybox "$rootfs/bin/$a"; done
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$rootfs/etc/passwd"
printf 'root:x:0:\n' > "$rootfs/etc/group"

# One OCI bundle for runc and crun: `runc spec` defaults, `true`, no terminal.
bundle=$work/bundle
mkdir -p "$bundle"
(cd "$bundle" && runc spec)
jq --arg root "$rootfs" '.root.path = $root | .root.readonly = false | .process.terminal = false | .process.args = ["/bin/true"]' \
  "$bundle/config.json" > "$bundle/config.json.new" && mv "$bundle/config.json.new" "$bundle/config.json"

if [ ! -d /sys/fs/cgroup/hugetlb ]; then
  mkdir -p /sys/fs/cgroup/hugetlb
  mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb
  hugetlb_mounted=1
fi

hyperfine -N --warmup 3 --runs "$runs" --export-json "$work/start.json" \
  -n rcompose "$target/release/examples/container_start $target/release/rcompose-container-helper $rootfs $work/state" \
  -n runc "runc --root $work/runc-root run --bundle $bundle bench-runc" \
  -n crun "crun --root $work/crun-root run --bundle $bundle bench-crun"

jq -r '.results[] | "\(.command): median \(.median * 1000 | . * 10 | round / 10) ms, mean \(.mean * 1000 | . * 10 | round / 10) ms ± \(.stddev * 1000 | . * 10 | round / 10)"' "$work/start.json"
jq -r '(.results | map({(.command): .median}) | add) as $m | "rcompose / runc = \($m.rcompose / $m.runc * 100 | round / 100), rcompose / crun = \($m.rcompose / $m.crun * 100 | round / 100)"' "$work/start.json"
