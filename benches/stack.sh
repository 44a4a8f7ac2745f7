#!/usr/bin/env bash
# Benchmark of the orchestration path: a stack of 10 busybox services (image present, one
# network, a depends_on chain), `up -d` and `down` medians with hyperfine, and the memory of
# the detached supervisor. Needs root, busybox-static and hyperfine.
#   benches/stack.sh [path/to/rcompose]   (default: a release build of this checkout)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
. "$repo/benches/lib.sh"
rc="$(bench_rcompose "$repo" "${1:-}")"
work="$(mktemp -d /tmp/rc-bench-XXXXXX)"
export RCOMPOSE_ROOT="$work/root" RCOMPOSE_RUN="$work/run" RCOMPOSE_NETWORK_POOL=10.213.240.0/24
export COMPOSE_PROGRESS=quiet
cleanup() { (cd "$work/stack" && "$rc" down -t 0 >/dev/null 2>&1) || true; rm -rf "$work"; }
trap cleanup EXIT

# The image: busybox and its applets in one layer.
mkdir -p "$work/stack"
bench_busybox_image "$rc" "$work/rootfs" bench/busybox:latest

{
  echo "name: bench"
  echo "services:"
  for i in $(seq 1 10); do
    echo "  s$i:"
    echo "    image: bench/busybox:latest"
    echo "    init: true"
    echo "    command: [\"sleep\", \"1000\"]"
    if [ "$i" -gt 1 ]; then echo "    depends_on: [s$((i - 1))]"; fi
  done
} > "$work/stack/compose.yaml"
cd "$work/stack"

"$rc" up -d && "$rc" down -t 1   # warm caches
hyperfine -N --runs 20 --export-json "$work/up.json" \
  --prepare "$rc down -t 1" --cleanup "$rc down -t 1" -n "up -d (10 services)" "$rc up -d" >&2
hyperfine -N --runs 20 --export-json "$work/down.json" \
  --prepare "$rc up -d" -n "down (10 services)" "$rc down -t 1" >&2
hyperfine -N --runs 20 --export-json "$work/cycle.json" \
  -n "up -d + down (10 services)" "sh -c '$rc up -d && $rc down -t 1'" >&2

"$rc" up -d
sup=$(jq .supervisor.pid "$RCOMPOSE_ROOT/projects/bench/state.json")
rss=$(awk '/VmRSS/ {print $2}' "/proc/$sup/status")
# Processes per container: the container's own (init + sleep) and nothing else.
extra=$(ps -o pid= --ppid "$sup" | while read -r p; do cat "/proc/$p/comm"; done | sort | uniq -c | tr '\n' ' ')
"$rc" down -t 1
median() { jq '.results[0].median * 1000 | floor' "$1"; }
echo "up -d median: $(median "$work/up.json") ms"
echo "down median: $(median "$work/down.json") ms"
echo "up -d + down median: $(median "$work/cycle.json") ms"
echo "supervisor RSS: $((rss / 1024)) MiB ($rss KiB)"
echo "children of the supervisor: $extra"
