#!/usr/bin/env bash
# Build rcompose, make the demo's image offline from the host's static busybox, bring the demo
# up. Needs root (namespaces, cgroups, nftables) and Debian's busybox-static.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$here/../.."
cargo build --release --manifest-path "$repo/Cargo.toml" -p rcompose
rcompose="${CARGO_TARGET_DIR:-$repo/target}/release/rcompose"

# A one-layer image: busybox and its applet links, a passwd and group file.
rootfs="$(mktemp -d)"
trap 'rm -rf "$rootfs"' EXIT
mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/tmp" "$rootfs/data"
cp /usr/bin/busybox "$rootfs/bin/busybox"
for applet in $("$rootfs/bin/busybox" --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$rootfs/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$rootfs/etc/group"
tar -C "$rootfs" -cf - . | "$rcompose" image import - rcompose-demo/busybox:latest

cd "$here"
echo "open http://127.0.0.1:${DEMO_PORT:-8080}/ (Ctrl-C stops the stack; 'rcompose down -v' removes it)"
exec "$rcompose" up "$@"
