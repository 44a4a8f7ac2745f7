#!/usr/bin/env bash
# Network benchmark: attach latency, DNS answer latency, 100 MB HTTP through a published
# port on 127.0.0.1 vs the container's address. Needs root, busybox-static, nftables.
# With PODMAN=1 (podman from apt, for the benchmark only) also measures the same download
# through Podman's port forwarding. Figures are recorded in docs/performance.md.
# Usage: benches/net.sh   (env: ATTACH_N=50 DNS_N=2000 HTTP_RUNS=15 PODMAN=0)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p rcompose-network --example netbench
bench="${CARGO_TARGET_DIR:-target}/release/examples/netbench"
"$bench"

if [ "${PODMAN:-0}" = 1 ]; then
  command -v podman >/dev/null || { echo "PODMAN=1 needs podman (apt-get install podman)"; exit 1; }
  tmp=$(mktemp -d)
  name=rcompose-netbench-$$
  image=localhost/rcompose-netbench-busybox:latest
  # netavark leaves iptables-nft chains behind: drop the tables it created.
  had_nat=$(nft list table ip nat >/dev/null 2>&1 && echo 1 || echo 0)
  had_filter=$(nft list table ip filter >/dev/null 2>&1 && echo 1 || echo 0)
  cleanup() {
    podman rm -f "$name" >/dev/null 2>&1 || true
    podman rmi -f "$image" >/dev/null 2>&1 || true
    [ "$had_nat" = 1 ] || nft delete table ip nat 2>/dev/null || true
    [ "$had_filter" = 1 ] || nft delete table ip filter 2>/dev/null || true
    rm -rf "$tmp"
  }
  trap cleanup EXIT
  mkdir -p "$tmp/root/bin" "$tmp/www"
  cp /usr/bin/busybox "$tmp/root/bin/busybox"
  ln -s busybox "$tmp/root/bin/sh"
  head -c $((100 * 1024 * 1024)) /dev/zero | tr '\0' 'Z' > "$tmp/www/big"
  tar -C "$tmp/root" -cf "$tmp/root.tar" .
  podman import -q "$tmp/root.tar" "$image" >/dev/null
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  # No CAP_SYS_RESOURCE here: keep rlimits below the hard ones. runc (apt): crun refuses
  # hybrid cgroups.
  podman run -d -q --runtime runc --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 --name "$name" -p "127.0.0.1:$port:80" -v "$tmp/www:/www:ro" "$image" \
    /bin/busybox httpd -f -p 80 -h /www >/dev/null
  ip=$(podman inspect -f '{{.NetworkSettings.IPAddress}}' "$name")
  for _ in $(seq 50); do
    busybox wget -q -O /dev/null "http://$ip/big" 2>/dev/null && break
    sleep 0.1
  done
  echo "podman $(podman --version | awk '{print $3}') ($(podman info -f '{{.Host.NetworkBackend}}') backend):"
  "$bench" get "${HTTP_RUNS:-15}" "$ip:80" "127.0.0.1:$port"
fi
