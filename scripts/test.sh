#!/usr/bin/env bash
# Runs Sluice's whole test suite: formatting, lints, unit and property tests, the proxy's
# fault tests, and the integration suite against a real Apache Kafka broker with real clients.
#
# Usage: scripts/test.sh [--no-setup] [-- CARGO_TEST_ARGS...]
#
# Installs what it needs first (scripts/setup.sh: Debian packages, Kafka jars, Java/Python/Go
# clients), cached under ${SLUICE_CACHE:-$HOME/.cache/sluice}; a warm run takes minutes.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$ROOT"
export SLUICE_CACHE="${SLUICE_CACHE:-$HOME/.cache/sluice}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$SLUICE_CACHE/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

SETUP=1
if [[ "${1:-}" == "--no-setup" ]]; then SETUP=0; shift; fi
if [[ "${1:-}" == "--" ]]; then shift; fi

step() { printf '\n== %s (%s)\n' "$*" "$(date +%H:%M:%S)"; }
started=$SECONDS

if [[ $SETUP == 1 ]]; then
  step "setup"
  bash scripts/setup.sh
fi
# shellcheck disable=SC1091
source "$SLUICE_CACHE/env.sh"

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo doc (broken intra-doc links fail)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked

step "deploy: promtool check rules / test rules and dashboard JSON"
# Alert rules, their unit tests, the example Prometheus config and the Grafana dashboard in
# deploy/: rules parse and every alert's tests pass, the dashboard is JSON whose queries parse
# (and whose cross-sidecar queries give what their tests expect), and every metric and label
# name they use is one Sluice exports.
PROMTOOL="$(command -v promtool || true)"
if [[ -z "$PROMTOOL" && -x "$SLUICE_CACHE/bin/promtool" ]]; then PROMTOOL="$SLUICE_CACHE/bin/promtool"; fi
[[ -n "$PROMTOOL" ]] || { echo "promtool not found; scripts/setup.sh --only prometheus installs it" >&2; exit 1; }
export PROMTOOL
"$PROMTOOL" check rules deploy/prometheus/sluice-alerts.yml
"$PROMTOOL" test rules deploy/prometheus/sluice-alerts.test.yml
"$PROMTOOL" check config deploy/prometheus/prometheus.yml
python3 -m json.tool deploy/grafana/sluice-dashboard.json >/dev/null
python3 deploy/check-dashboard.py
bash deploy/check-names.sh

step "build"
cargo build --workspace --all-targets --locked

step "soak: 5 minutes in the background (real broker, the incident plus healthy traffic)"
# Sluice (the debug binary just built) under the incident, a healthy producer and group and
# connection churn for 5 minutes; it exits non-zero if RSS, CPU or open descriptors grow after
# its 1-minute warm-up or the findings are wrong (benches/README.md, "Soak"). It runs beside
# the next steps, up to the fuzz runs, and is waited for before the integration tests, whose
# throttle tests measure rates; the hour-long soak is run by hand.
SOAK_LOG="$CARGO_TARGET_DIR/soak.log"
"$CARGO_TARGET_DIR/debug/soak" --duration 5m --csv "$CARGO_TARGET_DIR/soak.csv" >"$SOAK_LOG" 2>&1 &
SOAK_PID=$!
trap 'kill "$SOAK_PID" 2>/dev/null || true' EXIT
echo "soak running as pid $SOAK_PID (log: $SOAK_LOG)"

step "deploy: systemd unit, Kubernetes manifests and sample configs against the binary"
bash deploy/check-deploy.sh "$CARGO_TARGET_DIR/debug/sluice"

step "deploy: the container image, built from the static binary, started and probed"
# A dev-profile static build (the packaging is under test here, not speed; the release image
# is `scripts/build-image.sh`).
bash deploy/check-image.sh --profile dev

step "unit, property and proxy tests"
cargo test --workspace --locked --exclude sluice-integration-tests "$@"

step "scale harness: a tiny run (50 connections, 100/s for 2 s, 100 client keys)"
# The benchmark harness itself against the debug binary, Sluice beside haproxy: it fails if a
# connection fails or a part cannot run; its figures mean nothing (benches/README.md).
"$CARGO_TARGET_DIR/debug/scale" --tiny --sluice-bin "$CARGO_TARGET_DIR/debug/sluice" >/dev/null

step "fuzz: short runs of every target (${SLUICE_FUZZ_SECONDS:-20} s each)"
# Coverage-guided, seeded from encoder-built and captured frames (the observer's from event
# scripts); the corpus is kept in the cache so each run continues where the last one stopped.
# Each entry is <crate directory>/<target>: protocol-ext's fuzz crate, and the proxy's.
for entry in protocol-ext/frame_tracker protocol-ext/tap protocol-ext/fetch_response \
    protocol-ext/produce_request protocol-ext/decode proxy/observer_events; do
  dir="${entry%/*}" target="${entry#*/}"
  corpus="$SLUICE_CACHE/fuzz-corpus/$target"
  mkdir -p "$corpus"
  log="$SLUICE_CACHE/fuzz-$target.log"
  if (cd "$dir" && cargo fuzz run -s none "$target" --target-dir "$SLUICE_CACHE/fuzz-target" \
        "$corpus" "fuzz/seeds/$target" -- -max_total_time="${SLUICE_FUZZ_SECONDS:-20}" \
        -rss_limit_mb=1024 -malloc_limit_mb=256 -print_final_stats=1) >"$log" 2>&1; then
    echo "fuzz $target: $(grep -m1 -o 'Done [0-9]* runs in [0-9]* second(s)' "$log" || echo ok)"
  else
    tail -n 60 "$log"
    echo "fuzz $target: FAILED (full log: $log; crash input under $dir/fuzz/artifacts/$target)"
    exit 1
  fi
done

step "soak: waiting for the 5-minute run"
if wait "$SOAK_PID"; then
  sed -n '/^## Soak/,$p' "$SOAK_LOG"
else
  tail -n 80 "$SOAK_LOG"
  echo "soak: FAILED (log: $SOAK_LOG, samples: $CARGO_TARGET_DIR/soak.csv)"
  exit 1
fi
trap - EXIT

step "integration tests (real Kafka broker, real clients)"
rm -f "$CARGO_TARGET_DIR/detect-report.txt" "$CARGO_TARGET_DIR/prometheus-graph.png"
# Each test binary starts its own broker (cluster_scenarios a 3-node cluster with a Sluice per
# node, about 4.5 minutes in all; throttle two, one behind recording relays; prometheus_live a
# Prometheus server, a collector and headless Chromium beside it, under 2 minutes); tests inside a
# binary share it with their own topics and groups (throttle's run one at a time: they measure
# rates). Two test threads keep a 2-core machine responsive. tls runs the sluice binary built
# above ($CARGO_TARGET_DIR/debug/sluice) from a config file, as an operator runs it.
RUST_TEST_THREADS="${RUST_TEST_THREADS:-2}" cargo test -p sluice-integration-tests --locked "$@"

if [[ -s "$CARGO_TARGET_DIR/detect-report.txt" ]]; then
  step "detection report (real clients through Sluice)"
  cat "$CARGO_TARGET_DIR/detect-report.txt"
fi
if [[ -s "$CARGO_TARGET_DIR/prometheus-graph.png" ]]; then
  # Taken by integration-tests/tests/prometheus_live.rs: the incident in a real Prometheus.
  echo "Prometheus graph of re-delivered bytes by group (headless Chromium): $CARGO_TARGET_DIR/prometheus-graph.png"
fi

step "done in $((SECONDS - started)) s"
