#!/usr/bin/env bash
# Benchmark of `rcompose exec -T <svc> true` against a same-run baseline: `nsenter` into the
# container's namespaces (all of them, as exec joins them) running `true`. One busybox service
# (image present). Needs root, busybox-static, hyperfine, jq, nsenter (util-linux).
#   benches/exec.sh [path/to/rcompose]   (default: a release build of this checkout)
# RUNS (default 60) sets hyperfine's run count; BASE=path/to/older/rcompose adds that binary's
# `exec` to the same run (before/after); KEEP=1 leaves the stack up and prints its environment
# (for strace/perf).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
. "$repo/benches/lib.sh"
runs=${RUNS:-60}
rc="$(bench_rcompose "$repo" "${1:-}")"
work="$(mktemp -d /tmp/rc-bench-exec-XXXXXX)"
export RCOMPOSE_ROOT="$work/root" RCOMPOSE_RUN="$work/run" RCOMPOSE_NETWORK_POOL=10.213.241.0/24
export COMPOSE_PROGRESS=quiet
cleanup() { (cd "$work/stack" && "$rc" down -t 0 >/dev/null 2>&1) || true; rm -rf "$work"; }
[ -n "${KEEP:-}" ] || trap cleanup EXIT

mkdir -p "$work/stack"
bench_busybox_image "$rc" "$work/rootfs" bench/busybox:latest
printf 'name: bexec\nservices:\n  s:\n    image: bench/busybox:latest\n    command: ["sleep", "100000"]\n' \
  > "$work/stack/compose.yaml"
cd "$work/stack"
"$rc" up -d
pid=$(jq -r '.containers[] | select(.service == "s") | .pid' "$RCOMPOSE_ROOT/projects/bexec/state.json")
if [ -n "${KEEP:-}" ]; then
  echo "export RCOMPOSE_ROOT=$RCOMPOSE_ROOT RCOMPOSE_RUN=$RCOMPOSE_RUN; cd $work/stack  # pid $pid"
  exit 0
fi
base=()
[ -z "${BASE:-}" ] || base=(-n "base: rcompose exec -T s true" "$BASE exec -T s true")
hyperfine -N --warmup 5 --runs "$runs" --export-json "$work/exec.json" \
  -n "rcompose exec -T s true" "$rc exec -T s true" \
  -n "nsenter (all namespaces) true" "nsenter -t $pid -m -u -i -n -p -C -r -w true" \
  "${base[@]}" >&2
jq -r '.results[] | "\(.command): median \(.median * 1000 | . * 10 | round / 10) ms, user \(.user * 1000 | . * 10 | round / 10) ms, system \(.system * 1000 | . * 10 | round / 10) ms"' "$work/exec.json"
jq -r '(.results | map(.median)) as $m | "rcompose / nsenter = \($m[0] / $m[1] * 100 | round / 100)"' "$work/exec.json"
