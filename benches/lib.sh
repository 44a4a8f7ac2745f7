# Shared by the benchmark scripts (source it): the rcompose binary to measure and the busybox
# image most benchmarks run.

# bench_rcompose REPO [PATH]: print PATH, or build a release rcompose of REPO and print its path.
bench_rcompose() {
  local repo="$1" given="${2:-}"
  if [ -n "$given" ]; then
    echo "$given"
    return
  fi
  cargo build --release -q --manifest-path "$repo/Cargo.toml" -p rcompose >&2
  realpath "${CARGO_TARGET_DIR:-$repo/target}/release/rcompose"
}

# bench_busybox_rootfs DIR: the host's static busybox with a link per applet, root in
# /etc/passwd and /etc/group, and /tmp, as a folder DIR.
bench_busybox_rootfs() {
  local dir="$1" a
  [ -x /usr/bin/busybox ] || { echo "bench: needs /usr/bin/busybox (busybox-static)" >&2; return 1; }
  mkdir -p "$dir/bin" "$dir/etc" "$dir/tmp"
  cp /usr/bin/busybox "$dir/bin/busybox"
  for a in $(/usr/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$dir/bin/$a"; done
  echo 'root:x:0:0:root:/root:/bin/sh' > "$dir/etc/passwd"
  echo 'root:x:0:' > "$dir/etc/group"
}

# bench_busybox_image RCOMPOSE DIR NAME: build the rootfs in DIR and import it as NAME.
bench_busybox_image() {
  local rc="$1" dir="$2" name="$3"
  bench_busybox_rootfs "$dir"
  tar -C "$dir" -cf - . | "$rc" image import - "$name" >/dev/null
}
