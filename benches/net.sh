#!/usr/bin/env bash
# Network benchmark: attach latency, DNS answer latency, 100 MB HTTP through a published
# port on 127.0.0.1 vs the container's address. Needs root, busybox-static, nftables.
# Figures are recorded in docs/performance.md (section "Networking").
# Usage: benches/net.sh   (env: ATTACH_N=50 DNS_N=2000 HTTP_RUNS=5)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p rcompose-network --example netbench
exec "${CARGO_TARGET_DIR:-target}/release/examples/netbench"
