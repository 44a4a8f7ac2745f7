#!/usr/bin/env bash
# Benchmark: `rcompose build` of a 5-step Dockerfile (ENV, COPY of 2 MB in 20 files, two RUNs,
# CMD) on a busybox base image, cold (`--no-cache`) and cached (nothing changed), against
# `docker build` of the same context on a private dockerd (Docker 20.10's classic builder:
# no buildx on this machine) and, with PODMAN=1, `podman build`. Needs root, hyperfine, jq,
# /usr/bin/busybox (busybox-static); dockerd and podman are optional (skipped with a note).
#
#   benches/build.sh [RUNS]        (default 10 runs each; docs/performance.md records medians)
#
# Builds the release binary first. Everything lives in a temp dir removed at exit; the dockerd
# it starts (own data root, exec root and socket, no bridge, no iptables) is stopped by its pid.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-10}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
cargo build --release -p rcompose -q
BIN=$(realpath "$CARGO_TARGET_DIR/release/rcompose")

W=$(mktemp -d /var/tmp/rcompose-bench-build.XXXXXX)
DOCKERD_PID=
P=podman
cleanup() {
  if [ -n "$DOCKERD_PID" ]; then
    kill "$DOCKERD_PID" 2>/dev/null || true
    wait "$DOCKERD_PID" 2>/dev/null || true
    # dockerd leaves its netns bind mount and empty cgroup folders behind.
    umount "$W/docker-exec/netns/default" 2>/dev/null || true
    rmdir /sys/fs/cgroup/*/docker 2>/dev/null || true
  fi
  if [ -d "$W/podman-root" ]; then
    $P rmi -af >/dev/null 2>&1 || true
    umount "$W/podman-root/overlay" 2>/dev/null || true
  fi
  rm -rf "$W"
}
trap cleanup EXIT

echo "== busybox base image and build context in $W"
mkdir -p "$W/rootfs/bin" "$W/rootfs/etc" "$W/rootfs/tmp" "$W/proj/app/data"
cp /usr/bin/busybox "$W/rootfs/bin/busybox"
for a in $(/usr/bin/busybox --list); do
  [ "$a" = busybox ] || ln -s busybox "$W/rootfs/bin/$a"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$W/rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$W/rootfs/etc/group"
tar -C "$W/rootfs" -cf "$W/busybox.tar" .
for i in $(seq 1 20); do head -c 100000 /dev/urandom > "$W/proj/app/data/f$i"; done
cat > "$W/proj/app/Dockerfile" <<'EOF'
FROM bench/busybox:latest
ENV APP_HOME=/app
COPY data/ /app/data/
RUN sha256sum /app/data/* > /app/sums && seq 1 20000 > /app/numbers
RUN tar -cf /app/data.tar /app/data && rm -rf /app/data
CMD ["cat", "/app/sums"]
EOF
cat > "$W/proj/compose.yaml" <<'EOF'
services:
  app:
    image: bench/app:rc
    build: ./app
EOF
RC="$BIN --root $W/rc --run-dir $W/rc-run -p bench -f $W/proj/compose.yaml"
$BIN --root "$W/rc" image import "$W/busybox.tar" bench/busybox:latest >/dev/null
$RC build -q
cmds=(-n "rcompose build --no-cache (cold)" "$RC build -q --no-cache"
      -n "rcompose build (cached)" "$RC build -q")

if command -v dockerd >/dev/null 2>&1; then
  echo "== starting a private dockerd"
  dockerd --data-root "$W/docker" --exec-root "$W/docker-exec" -H "unix://$W/docker.sock" \
    --pidfile "$W/docker.pid" --bridge=none --iptables=false --ip-masq=false \
    >"$W/dockerd.log" 2>&1 &
  DOCKERD_PID=$!
  D="docker -H unix://$W/docker.sock"
  for _ in $(seq 1 100); do $D version >/dev/null 2>&1 && break; sleep 0.2; done
  if $D version >/dev/null 2>&1; then
    $D import "$W/busybox.tar" bench/busybox:latest >/dev/null
    export DOCKER_BUILDKIT=0
    DB="$D build -q --network host -t bench/app:docker $W/proj/app"
    if $DB >/dev/null 2>"$W/docker-build.err"; then
      cmds+=(-n "docker build --no-cache (cold)" "$DB --no-cache"
             -n "docker build (cached)" "$DB")
    else
      echo "docker build failed, not measured: $(tail -3 "$W/docker-build.err")"
    fi
  else
    echo "dockerd did not start, not measured: $(tail -3 "$W/dockerd.log")"
  fi
else
  echo "no dockerd on this machine: docker not measured"
fi

if [ "${PODMAN:-0}" = 1 ] && command -v podman >/dev/null 2>&1; then
  # A private store, removed with the temp dir.
  P="podman --root $W/podman-root --runroot $W/podman-run"
  $P import "$W/busybox.tar" bench/busybox:latest >/dev/null
  PB="$P build -q --network host -t bench/app:podman $W/proj/app"
  if $PB >/dev/null 2>"$W/podman-build.err"; then
    cmds+=(-n "podman build --no-cache (cold)" "$PB --no-cache"
           -n "podman build (cached)" "$PB")
  else
    echo "podman build failed, not measured: $(tail -3 "$W/podman-build.err")"
  fi
fi

echo "== load: $(cut -d' ' -f1-3 /proc/loadavg)"
hyperfine -N --warmup 1 --runs "$RUNS" --export-json "$W/build.json" "${cmds[@]}"
echo "== medians (ms)"
jq -r '.results[] | "\(.command)\t\(.median * 1000 | floor)"' "$W/build.json" | column -t -s $'\t'
echo "== load: $(cut -d' ' -f1-3 /proc/loadavg)"
