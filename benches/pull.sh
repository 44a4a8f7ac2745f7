#!/usr/bin/env bash
# Benchmark: pull + unpack of a two-layer image (~130 MB compressed / ~275 MB unpacked) from a
# registry on 127.0.0.1, against `tar -xzf` of the same layers (the decompression limit) and,
# when installed, `podman pull`. Also checks that a second pull of a present image costs one
# manifest request. Needs root, docker-registry, skopeo, jq, hyperfine.
#
#   benches/pull.sh [RUNS]        (default 5 runs each; medians are what docs/performance.md records)
#
# Builds the release binary first. Everything lives in a temp dir removed at exit; the
# registry it starts is stopped by its pid.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
. benches/lib.sh
BIN=$(bench_rcompose "$PWD")

W=$(mktemp -d /var/tmp/rcompose-bench-pull.XXXXXX)
REG_PID=
cleanup() {
  [ -n "$REG_PID" ] && kill "$REG_PID" 2>/dev/null && wait "$REG_PID" 2>/dev/null || true
  if command -v podman >/dev/null 2>&1 && [ -n "${PORT:-}" ]; then
    podman rmi -f "127.0.0.1:$PORT/bench/big:1" >/dev/null 2>&1 || true
  fi
  rm -rf "$W"
}
trap cleanup EXIT

echo "== generating layers in $W"
mkdir -p "$W/l1/data" "$W/l2/data" "$W/layout/blobs/sha256"
# Layer 1: ~82 MB of incompressible data in 41 files.
for i in $(seq 1 41); do head -c 2000000 /dev/urandom > "$W/l1/data/rand$i"; done
# Layer 2: ~193 MB of compressible text (numbers), ~47 MB gzipped.
for i in $(seq 1 10); do seq $((i * 10000000)) $((i * 10000000 + 2150000 - 1)) > "$W/l2/data/text$i"; done
tar -C "$W/l1" -cf "$W/l1.tar" . && tar -C "$W/l2" -cf "$W/l2.tar" .
gzip -6 -c "$W/l1.tar" > "$W/l1.tar.gz" && gzip -6 -c "$W/l2.tar" > "$W/l2.tar.gz"
rm -rf "$W/l1" "$W/l2"

sha() { sha256sum "$1" | cut -d' ' -f1; }
put() { local d; d=$(sha "$1"); cp "$1" "$W/layout/blobs/sha256/$d"; echo "$d"; }
D1=$(sha "$W/l1.tar"); D2=$(sha "$W/l2.tar")
B1=$(put "$W/l1.tar.gz"); B2=$(put "$W/l2.tar.gz")
S1=$(stat -c %s "$W/l1.tar.gz"); S2=$(stat -c %s "$W/l2.tar.gz")
U=$(( $(stat -c %s "$W/l1.tar") + $(stat -c %s "$W/l2.tar") ))
rm -f "$W/l1.tar" "$W/l2.tar"
printf '{"architecture":"amd64","os":"linux","config":{"Cmd":["sh"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s","sha256:%s"]}}' "$D1" "$D2" > "$W/config.json"
C=$(put "$W/config.json"); CS=$(stat -c %s "$W/config.json")
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%d},{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%d}]}' \
  "$C" "$CS" "$B1" "$S1" "$B2" "$S2" > "$W/manifest.json"
M=$(put "$W/manifest.json"); MS=$(stat -c %s "$W/manifest.json")
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%d,"annotations":{"org.opencontainers.image.ref.name":"1"}}]}' "$M" "$MS" > "$W/layout/index.json"
echo '{"imageLayoutVersion":"1.0.0"}' > "$W/layout/oci-layout"
echo "compressed $(( (S1 + S2) / 1000000 )) MB, unpacked tar $(( U / 1000000 )) MB"

echo "== starting docker-registry"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$W/registry.yml" <<YML
version: 0.1
log:
  level: info
  formatter: text
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $W/registry
http:
  addr: 127.0.0.1:$PORT
YML
docker-registry serve "$W/registry.yml" > "$W/registry.log" 2>&1 &
REG_PID=$!
for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
skopeo copy -q --dest-tls-verify=false "oci:$W/layout:1" "docker://127.0.0.1:$PORT/bench/big:1"
REF="127.0.0.1:$PORT/bench/big:1"

sync
echo "== rcompose pull vs tar -xzf ($RUNS runs each)"
CMDS=(
  -n "rcompose pull" --prepare "rm -rf $W/root; sync" "$BIN --root $W/root image pull --quiet $REF"
  -n "tar -xzf" --prepare "rm -rf $W/x; mkdir $W/x; sync" "tar -C $W/x -xzf $W/l1.tar.gz && tar -C $W/x -xzf $W/l2.tar.gz"
)
if command -v podman >/dev/null 2>&1; then
  CMDS+=(-n "podman pull" --prepare "podman rmi -f $REF >/dev/null 2>&1; sync" "podman pull -q --tls-verify=false $REF")
fi
hyperfine --runs "$RUNS" --export-json "$W/pull.json" "${CMDS[@]}"
jq -r '.results[] | "\(.command): median \(.median | . * 1000 | floor) ms (min \(.min | . * 1000 | floor), max \(.max | . * 1000 | floor))"' "$W/pull.json"
MED_R=$(jq '.results[] | select(.command=="rcompose pull") | .median' "$W/pull.json")
MED_T=$(jq '.results[] | select(.command=="tar -xzf") | .median' "$W/pull.json")
python3 -c "u=$U/1e6; r=$MED_R; t=$MED_T; print(f'unpack throughput: rcompose {u/r:.0f} MB/s, tar -xzf {u/t:.0f} MB/s -> {100*t/r:.0f}% of tar')"

echo "== second pull of the present image"
rm -rf "$W/root"; "$BIN" --root "$W/root" image pull --quiet "$REF"
before=$(grep -c 'response completed.*http.request.method=GET.*/v2/bench/big/' "$W/registry.log" || true)
hyperfine --runs "$RUNS" -n "second pull" "$BIN --root $W/root image pull --quiet $REF" | grep -E "Time|Range"
after=$(grep -c 'response completed.*http.request.method=GET.*/v2/bench/big/' "$W/registry.log" || true)
echo "requests per second pull: $(( (after - before) / RUNS )) (manifests only: $(grep 'response completed.*http.request.method=GET.*/v2/bench/big/manifests/' "$W/registry.log" | wc -l) total)"
