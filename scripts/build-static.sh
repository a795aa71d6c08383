#!/usr/bin/env bash
# Builds a statically linked Sluice for Linux (x86_64, musl): one file, no shared libraries,
# runs on any x86_64 Linux. Prints its path, size, `--version`, and its start-up time (from
# exec to the admin listener answering /healthz, best of five).
#
# Usage: scripts/build-static.sh [--out FILE] [--profile release|dev]
#   --out FILE        also copy the binary there (default: only in the cache)
#   --profile NAME    cargo profile (default release; `dev` builds in a fraction of the time,
#                     for tests of the packaging rather than of speed)
#
# The musl target is added with rustup when missing; C dependencies are compiled with
# musl-gcc. The build lives in
# ${SLUICE_CACHE:-$HOME/.cache/sluice}/target-static; the binary is stripped of debug
# information (symbols kept, for profiles and panics).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$ROOT"
SLUICE_CACHE="${SLUICE_CACHE:-$HOME/.cache/sluice}"
TARGET=x86_64-unknown-linux-musl
OUT=""
PROFILE=release
while [[ $# -gt 0 ]]; do
  case "$1" in
    --out) OUT="${2:?--out needs a file}"; shift 2 ;;
    --profile) PROFILE="${2:?--profile needs release or dev}"; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 64 ;;
  esac
done

if ! rustup target list --installed 2>/dev/null | grep -qx "$TARGET"; then
  echo "adding the $TARGET target (rustup) ..."
  rustup target add "$TARGET"
fi

# C code in dependencies (ring, under rustls) is compiled for musl with musl-gcc (Debian's
# musl-tools; scripts/setup.sh --only container installs it) unless a cross compiler is set.
if [[ -z "${CC_x86_64_unknown_linux_musl:-}" ]] && ! command -v x86_64-linux-musl-gcc >/dev/null; then
  command -v musl-gcc >/dev/null \
    || { echo "musl-gcc not found; scripts/setup.sh --only container installs it (musl-tools)" >&2; exit 1; }
  export CC_x86_64_unknown_linux_musl=musl-gcc
fi

export SLUICE_COMMIT="${SLUICE_COMMIT:-$(git describe --always --dirty --abbrev=12 2>/dev/null || echo unknown)}"
export CARGO_TARGET_DIR="$SLUICE_CACHE/target-static"
case "$PROFILE" in
  release) DIR=release ;;
  dev) DIR=debug ;;
  *) echo "--profile must be release or dev" >&2; exit 64 ;;
esac
echo "building sluice for $TARGET ($PROFILE, static) ..."
# Static relocatable executable: no interpreter, no shared libraries.
RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
  cargo build --profile "$PROFILE" --locked --target "$TARGET" -p sluice --bin sluice
BIN="$CARGO_TARGET_DIR/$TARGET/$DIR/sluice"
STRIPPED="$CARGO_TARGET_DIR/$TARGET/$DIR/sluice-static"
objcopy --strip-debug "$BIN" "$STRIPPED"

if file "$STRIPPED" | grep -q "dynamically linked"; then
  echo "error: $STRIPPED is dynamically linked" >&2
  file "$STRIPPED" >&2
  exit 1
fi

# Start-up: exec to /healthz answering, on free ports, best of five.
best=""
for _ in 1 2 3 4 5; do
  admin_port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
  listen_port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
  start_ns="$(date +%s%N)"
  "$STRIPPED" --listen "127.0.0.1:$listen_port" --upstream 127.0.0.1:9 \
    --admin-listen "127.0.0.1:$admin_port" --log-level warn >/dev/null 2>&1 &
  pid=$!
  deadline=$((start_ns + 10000000000))
  up=""
  while [[ "$(date +%s%N)" -lt "$deadline" ]]; do
    if curl -fsS "http://127.0.0.1:$admin_port/healthz" >/dev/null 2>&1; then
      up="$(date +%s%N)"
      break
    fi
    sleep 0.002
  done
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  [[ -n "$up" ]] || { echo "error: the static binary did not answer /healthz within 10 s" >&2; exit 1; }
  ms=$(( (up - start_ns) / 1000000 ))
  if [[ -z "$best" || "$ms" -lt "$best" ]]; then best="$ms"; fi
done

size="$(stat -c %s "$STRIPPED")"
echo "binary:   $STRIPPED"
echo "type:     $(file -b "$STRIPPED" | cut -d, -f1-4)"
echo "size:     $((size / 1024)) KiB ($size bytes)"
echo "version:  $("$STRIPPED" --version)"
echo "start-up: ${best} ms to /healthz (best of 5)"
if [[ -n "$OUT" ]]; then
  cp "$STRIPPED" "$OUT"
  echo "copied to $OUT"
fi
