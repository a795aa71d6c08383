#!/usr/bin/env bash
# Sluice demo: a real Apache Kafka broker (KRaft) with Sluice in front of it as a sidecar, a
# producer and a consumer group talking to the broker only through Sluice, and a live view of
# what passes through the proxy.
#
# Usage: scripts/demo.sh [--duration SECONDS] [--rate RECORDS_PER_SEC]
#   --duration  stop by itself after this long (default 60; 0 = until Ctrl-C)
#   --rate      producer rate (default 50 records/s of 1 KB)
#
# Everything it needs is installed by scripts/setup.sh (called first; cached).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$ROOT"
DURATION=60
RATE=50
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
bash "$SLUICE_KAFKA_BROKER_SCRIPT" --dir "$WORK/broker" --port "$BROKER_PORT" \
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
COUNT=$((RATE * RUN_FOR))
"$SLUICE_JAVA_CLIENT" produce --bootstrap "$BOOT" --topic order-events --count "$COUNT" --rate "$RATE" \
  >"$WORK/producer.json" 2>"$WORK/producer.log" &
PIDS+=($!)
"$SLUICE_GO_CLIENT" consume --bootstrap "$BOOT" --topic order-events --group billing \
  --count "$COUNT" --timeout-s "$((RUN_FOR + 60))" >"$WORK/consumer.json" 2>"$WORK/consumer.log" &
PIDS+=($!)
say "producer (Java client) at $RATE records/s and consumer group 'billing' (franz-go) started"
if [[ $DURATION -gt 0 ]]; then say "running for ${DURATION}s (Ctrl-C stops earlier)"; else say "Ctrl-C stops"; fi
echo >&2

python3 - "$ADMIN_PORT" "$RUN_FOR" <<'PY'
import json, sys, time, urllib.request
port, run_for = int(sys.argv[1]), int(sys.argv[2])
url = f"http://127.0.0.1:{port}/api/v1/stats"
def get():
    with urllib.request.urlopen(url, timeout=2) as r:
        return json.load(r)
def human(n):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:7.1f} {unit}"
        n /= 1024
print(f"{'time':>5}  {'open':>5} {'accepted':>8}  {'client→broker/s':>16} {'broker→client/s':>16}  {'total out':>11}  ready", flush=True)
prev, t0 = get(), time.time()
rows = 0
try:
    while time.time() - t0 < run_for:
        time.sleep(1)
        cur = get()
        up = cur["bytes_to_broker"] - prev["bytes_to_broker"]
        down = cur["bytes_to_client"] - prev["bytes_to_client"]
        print(f"{int(time.time()-t0):4d}s  {cur['connections_open']:5d} {cur['connections_accepted']:8d}  "
              f"{human(up):>14}/s {human(down):>14}/s  {human(cur['bytes_to_client']):>11}  {cur['ready']}", flush=True)
        prev = cur
except KeyboardInterrupt:
    pass
PY
say "consumer so far: $(tail -n1 "$WORK/consumer.log" 2>/dev/null || true)"
