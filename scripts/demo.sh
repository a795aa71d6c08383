#!/usr/bin/env bash
# Sluice demo: the incident, end to end. A real Apache Kafka broker (KRaft) with Sluice in front
# of it as a sidecar; a producer trickle, a healthy consumer group, a Java consumer stuck
# re-fetching a malformed record without committing, and an app opening a producer per message
# — all talking to the broker only through Sluice — and Sluice's live view naming the offenders.
#
# Usage: scripts/demo.sh [--duration SECONDS] [--rate RECORDS_PER_SEC]
#   --duration  stop by itself after this long (default 60; 0 = until Ctrl-C)
#   --rate      producer trickle rate (default 5 records/s of 1 KB)
#
# Everything it needs is installed by scripts/setup.sh (called first; cached).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$ROOT"
DURATION=60
RATE=5
while [[ $# -gt 0 ]]; do
  case "$1" in
    --duration) DURATION="${2:?--duration needs seconds}"; shift 2 ;;
    --rate) RATE="${2:?--rate needs records per second}"; shift 2 ;;
    -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "demo: unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
done
[[ "$DURATION" =~ ^[0-9]+$ && "$RATE" =~ ^[0-9]+$ && "$RATE" -gt 0 ]] \
  || { echo "demo: --duration and --rate must be whole numbers (rate > 0)" >&2; exit 2; }

export SLUICE_CACHE="${SLUICE_CACHE:-$HOME/.cache/sluice}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$SLUICE_CACHE/target}"

say() { printf 'demo: %s\n' "$*" >&2; }

say "installing what the demo needs (cached after the first run) ..."
bash scripts/setup.sh --skip apt,prometheus,fuzz
# shellcheck disable=SC1091
source "$SLUICE_CACHE/env.sh"
say "building sluice (release) ..."
cargo build --release -q -p sluice
SLUICE="$CARGO_TARGET_DIR/release/sluice"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
BROKER_PORT=$(free_port); CONTROLLER_PORT=$(free_port); PROXY_PORT=$(free_port); ADMIN_PORT=$(free_port)
WORK="$(mktemp -d -t sluice-demo.XXXXXX)"
PIDS=()

cleanup() {
  trap - EXIT INT TERM
  echo >&2
  say "stopping ..."
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  if [[ -n "${SLUICE_PID:-}" ]] && kill -0 "$SLUICE_PID" 2>/dev/null; then
    kill -TERM "$SLUICE_PID"
    if wait "$SLUICE_PID"; then say "sluice drained and exited 0"; else say "sluice exited $?"; fi
  fi
  if [[ -n "${BROKER_SUP:-}" ]]; then kill -TERM "$BROKER_SUP" 2>/dev/null || true; wait "$BROKER_SUP" 2>/dev/null || true; fi
  say "logs were in $WORK (removed)"
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "starting Kafka $SLUICE_KAFKA_VERSION (KRaft) on 127.0.0.1:$BROKER_PORT, advertising Sluice's 127.0.0.1:$PROXY_PORT ..."
bash "$ROOT/integration-tests/scripts/kafka-broker.sh" --dir "$WORK/broker" --port "$BROKER_PORT" \
  --controller-port "$CONTROLLER_PORT" --advertised "127.0.0.1:$PROXY_PORT" --watch-pid $$ \
  >"$WORK/broker-supervisor.log" 2>&1 &
BROKER_SUP=$!

"$SLUICE" --listen "127.0.0.1:$PROXY_PORT" --upstream "127.0.0.1:$BROKER_PORT" \
  --admin-listen "127.0.0.1:$ADMIN_PORT" --shutdown-grace 5s 2>"$WORK/sluice.log" &
SLUICE_PID=$!
say "sluice listening on 127.0.0.1:$PROXY_PORT → broker 127.0.0.1:$BROKER_PORT; admin http://127.0.0.1:$ADMIN_PORT/api/v1/stats"

for _ in $(seq 1 900); do
  [[ -e "$WORK/broker/broker.ready" ]] && break
  kill -0 "$BROKER_SUP" 2>/dev/null || { cat "$WORK/broker/broker.log" >&2 || true; say "broker failed to start"; exit 1; }
  sleep 0.1
done
[[ -e "$WORK/broker/broker.ready" ]] || { say "broker not ready after 90 s"; exit 1; }
BOOT="127.0.0.1:$PROXY_PORT"
"$SLUICE_JAVA_CLIENT" wait-ready --bootstrap "$BOOT" --timeout-s 60 >/dev/null
"$SLUICE_JAVA_CLIENT" create-topic --bootstrap "$BOOT" --topic order-events --partitions 3 >/dev/null
say "broker ready through the proxy; topic order-events (3 partitions)"

RUN_FOR=$DURATION
[[ $RUN_FOR -eq 0 ]] && RUN_FOR=86400
# The backlog: 3,000 JSON order events on partition 0, one of them (offset 100) malformed.
"$SLUICE_JAVA_CLIENT" produce-json --bootstrap "$BOOT" --topic order-events --partition 0 --count 3000 \
  --poison-at 100 --client-id order-backfill >/dev/null 2>"$WORK/backfill.log"
say "3,000 order events on order-events-0, offset 100 is malformed JSON"

start() { local name=$1; shift; "$@" >"$WORK/$name.json" 2>"$WORK/$name.log" & PIDS+=($!); }
# A producer trickle: a few records per second, as in the incident.
start trickle "$SLUICE_JAVA_CLIENT" produce-json --bootstrap "$BOOT" --topic order-events \
  --count $((RATE * RUN_FOR)) --rate "$RATE" --client-id order-api
# A healthy group reading everything and committing.
start analytics "$SLUICE_GO_CLIENT" consume --bootstrap "$BOOT" --topic order-events --group analytics \
  --count 100000000 --timeout-s "$((RUN_FOR + 30))" --client-id analytics-1
# The incident: a Java consumer whose handler throws on the malformed record and seeks back to it.
start billing "$SLUICE_JAVA_CLIENT" consume-loop --bootstrap "$BOOT" --topic order-events --group billing \
  --duration-s "$RUN_FOR" --client-id billing-service
# The second problem: an app that opens a new producer for every message and never closes it.
start notifier "$SLUICE_JAVA_CLIENT" churn --bootstrap "$BOOT" --topic notifications \
  --count $((5 * RUN_FOR)) --rate 5 --no-close --client-id notifier
say "running: producer trickle (order-api, $RATE/s), healthy group 'analytics' (franz-go),"
say "         looping group 'billing' (Java, seeks back on a malformed record), churning app 'notifier'"
if [[ $DURATION -gt 0 ]]; then say "showing what Sluice sees for ${DURATION}s (Ctrl-C stops earlier)"; else say "Ctrl-C stops"; fi
echo >&2
if [[ $DURATION -gt 0 ]]; then TOP_FOR=(--duration "${DURATION}s"); else TOP_FOR=(); fi
"$SLUICE" top --admin "127.0.0.1:$ADMIN_PORT" --interval 1s "${TOP_FOR[@]}" || true
echo
say "findings at the end (JSON: curl http://127.0.0.1:$ADMIN_PORT/api/v1/findings):"
"$SLUICE" top --admin "127.0.0.1:$ADMIN_PORT" --once | sed -n '/^FINDINGS/,/^$/p'
say "the same, as the metrics Prometheus scrapes (curl http://127.0.0.1:$ADMIN_PORT/metrics; dashboards and alerts in deploy/):"
if command -v curl >/dev/null 2>&1; then
  curl -fsS "http://127.0.0.1:$ADMIN_PORT/metrics" \
    | grep -E '^sluice_findings_active\{|^sluice_consumer_redelivered_bytes_total\{.*billing' | head -n 8 || true
fi
