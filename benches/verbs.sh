#!/usr/bin/env bash
# Benchmark of the everyday verbs that move data: `export` and `commit` of a container with
# ~200 MB of changes, `push` of the committed image to a registry on 127.0.0.1, and
# `stats --no-stream`; each against a baseline in the same run (GNU tar of the same dirs,
# `tar | sha256sum`, `curl` upload of the same layer blob). Needs root, busybox-static,
# docker-registry, curl, hyperfine, jq.
#
#   benches/verbs.sh [RUNS]     (default 5; medians go to docs/performance.md)
#
# Everything lives in a temp dir removed at exit; the stack is brought down and the
# registry stopped by its pid.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
. benches/lib.sh
BIN=$(bench_rcompose "$PWD")

W=$(mktemp -d /var/tmp/rcompose-bench-verbs.XXXXXX)
export RCOMPOSE_ROOT=$W/root RCOMPOSE_RUN=$W/run RCOMPOSE_NETWORK_POOL=10.213.250.0/24 COMPOSE_PROGRESS=quiet
REG_PID=
rc() { "$BIN" -p vbench "$@"; }
cleanup() {
  (cd "$W/p" 2>/dev/null && rc down -v -t 0 >/dev/null 2>&1) || true
  [ -n "$REG_PID" ] && kill "$REG_PID" 2>/dev/null && wait "$REG_PID" 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT

mkdir -p "$W/p"
bench_busybox_image "$BIN" "$W/rootfs" bench/bb:1
cat > "$W/p/compose.yaml" <<YML
services:
  app:
    image: bench/bb:1
    init: true
    command: ["sleep", "100000"]
YML
cd "$W/p"
rc up -d
rc exec -T app sh -c 'mkdir /big; for i in $(seq 1 100); do head -c 2000000 /dev/urandom > /big/f$i; done'
UPPER=$(dirname "$(find "$W/root/projects/vbench/containers" -maxdepth 3 -type d -name upper | head -1)")/upper
LOWER=$(find "$W/root/images/layers/sha256" -mindepth 1 -maxdepth 1 -type d | head -1)
echo "changes: $(du -sm "$UPPER" | cut -f1) MB in $UPPER"

echo "== export (merged view to a tar) vs GNU tar of the upper and lower dirs"
hyperfine -N --runs "$RUNS" --export-json "$W/export.json" \
  "$BIN -p vbench export -o $W/out.tar app" \
  "tar -cf $W/base.tar -C $UPPER . -C $LOWER ."

echo "== commit (upper dir → layer in the store) vs tar | sha256sum of the upper dir"
hyperfine -N --runs "$RUNS" --export-json "$W/commit.json" \
  --prepare "sh -c '$BIN image rm bench/c:1 >/dev/null 2>&1 || true'" \
  "$BIN -p vbench commit app bench/c:1" \
  "sh -c 'tar -C $UPPER -cf - . | sha256sum'"
rc commit app bench/c:1 >/dev/null

echo "== push to a registry on 127.0.0.1 vs curl upload of its layer blob"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
printf 'version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:%s\n' "$W/reg" "$PORT" > "$W/reg.yml"
/usr/bin/docker-registry serve "$W/reg.yml" >"$W/reg.log" 2>&1 &
REG_PID=$!
for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.05; done
for i in $(seq 1 $((RUNS + 2))); do "$BIN" image tag bench/c:1 "127.0.0.1:$PORT/push$i/c:1"; done
echo 0 > "$W/n"; echo 0 > "$W/m"
cat > "$W/compose-push.sh" <<SH
#!/bin/sh
n=\$(( \$(cat $W/n) + 1 )); echo \$n > $W/n
cd $W/p && printf 'services:\n  app:\n    image: 127.0.0.1:$PORT/push%s/c:1\n' \$n > $W/p/push.yaml
exec $BIN -p vbench -f $W/p/push.yaml push -q
SH
# Baseline: the biggest blob (the committed layer, ~all of the bytes) uploaded with curl,
# the same monolithic POST + PUT, to a repository of its own each run.
BLOB=$(ls -S "$W/root/images/blobs/sha256" | head -1)
cat > "$W/curl-push.sh" <<SH
#!/bin/sh
m=\$(( \$(cat $W/m) + 1 )); echo \$m > $W/m
loc=\$(curl -s -o /dev/null -D - -X POST http://127.0.0.1:$PORT/v2/curl\$m/c/blobs/uploads/ | tr -d '\\r' | sed -n 's/^[Ll]ocation: //p')
case "\$loc" in http*) ;; *) loc="http://127.0.0.1:$PORT\$loc" ;; esac
exec curl -sf -o /dev/null -H 'Content-Type: application/octet-stream' -T $W/root/images/blobs/sha256/$BLOB "\$loc&digest=sha256:$BLOB"
SH
chmod +x "$W/compose-push.sh" "$W/curl-push.sh"
hyperfine -N --runs "$RUNS" --export-json "$W/push.json" "$W/compose-push.sh" "$W/curl-push.sh"

echo "== stats --no-stream (two samples 0.5 s apart)"
hyperfine -N --runs "$RUNS" "$BIN -p vbench stats --no-stream" "$BIN -p vbench ps"
for f in export commit push; do
  jq -r '.results[] | "\(.command): median \(.median * 1000 | floor) ms"' "$W/$f.json"
done
