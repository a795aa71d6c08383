#!/usr/bin/env bash
# Sluice demo: the incident, end to end. A real Apache Kafka broker (KRaft) with Sluice in front
# of it as a sidecar; a producer trickle, a healthy consumer group, a Java consumer stuck
# re-fetching a malformed record without committing, and an app opening a producer per message
# — all talking to the broker only through Sluice — and Sluice's live view naming the offenders.
#
# Usage: scripts/demo.sh [--duration SECONDS] [--rate RECORDS_PER_SEC] [--brokers N] [--observe]
#   --duration  stop by itself after this long (default 60; 0 = until Ctrl-C)
#   --rate      producer trickle rate (default 5 records/s of 1 KB)
#   --brokers   1 (default): one broker, one Sluice. 3 (2 to 5): a KRaft cluster of N nodes
#               with a Sluice sidecar in front of each, each node advertising its own
#               sidecar; the topic's partitions are led by every node and each group's
#               coordinator sits on one, so the incident crosses sidecars: the live view
#               shows the sidecar that carries the loop, and each sidecar's findings are
#               printed at the end.
#   --observe   also run a Prometheus server (Debian's prometheus; installed by setup.sh) on a
#               free loopback port, scraping every Sluice's /metrics every 2 s and evaluating
#               deploy/prometheus/sluice-alerts.yml, and print the URL of its graph of
#               re-delivered bytes by consumer group (the incident) and of its alerts page;
#               it runs until the demo ends (its data goes with it).
#
# Everything it needs is installed by scripts/setup.sh (called first; cached).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$ROOT"
DURATION=60
RATE=5
BROKERS=1
OBSERVE=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --duration) DURATION="${2:?--duration needs seconds}"; shift 2 ;;
    --rate) RATE="${2:?--rate needs records per second}"; shift 2 ;;
    --brokers) BROKERS="${2:?--brokers needs a number}"; shift 2 ;;
    --observe) OBSERVE=1; shift ;;
    -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "demo: unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
done
[[ "$DURATION" =~ ^[0-9]+$ && "$RATE" =~ ^[0-9]+$ && "$RATE" -gt 0 ]] \
  || { echo "demo: --duration and --rate must be whole numbers (rate > 0)" >&2; exit 2; }
[[ "$BROKERS" =~ ^[1-5]$ ]] || { echo "demo: --brokers must be 1 to 5" >&2; exit 2; }

export SLUICE_CACHE="${SLUICE_CACHE:-$HOME/.cache/sluice}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$SLUICE_CACHE/target}"

say() { printf 'demo: %s\n' "$*" >&2; }

say "installing what the demo needs (cached after the first run) ..."
if [[ $OBSERVE == 1 ]]; then
  bash scripts/setup.sh --skip apt,chromium,fuzz
else
  bash scripts/setup.sh --skip apt,prometheus,chromium,fuzz
fi
# shellcheck disable=SC1091
source "$SLUICE_CACHE/env.sh"
say "building sluice (release) ..."
cargo build --release -q -p sluice
SLUICE="$CARGO_TARGET_DIR/release/sluice"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# Node i (0-based): its broker, controller and replication listeners, its Sluice and that
# Sluice's admin listener.
BROKER_PORTS=() CONTROLLER_PORTS=() REPLICATION_PORTS=() PROXY_PORTS=() ADMIN_PORTS=()
for ((i = 0; i < BROKERS; i++)); do
  BROKER_PORTS+=("$(free_port)"); CONTROLLER_PORTS+=("$(free_port)"); REPLICATION_PORTS+=("$(free_port)")
  PROXY_PORTS+=("$(free_port)"); ADMIN_PORTS+=("$(free_port)")
done
BROKER_PORT=${BROKER_PORTS[0]} PROXY_PORT=${PROXY_PORTS[0]} ADMIN_PORT=${ADMIN_PORTS[0]}
WORK="$(mktemp -d -t sluice-demo.XXXXXX)"
PIDS=() SLUICE_PIDS=() BROKER_SUPS=()

cleanup() {
  trap - EXIT INT TERM
  echo >&2
  say "stopping ..."
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${SLUICE_PIDS[@]}"; do
    kill -0 "$pid" 2>/dev/null || continue
    kill -TERM "$pid"
    if wait "$pid"; then say "sluice drained and exited 0"; else say "sluice exited $?"; fi
  done
  for pid in "${BROKER_SUPS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${BROKER_SUPS[@]}"; do wait "$pid" 2>/dev/null || true; done
  say "logs were in $WORK (removed)"
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

QUORUM=()
if [[ $BROKERS -eq 1 ]]; then
  say "starting Kafka $SLUICE_KAFKA_VERSION (KRaft) on 127.0.0.1:$BROKER_PORT, advertising Sluice's 127.0.0.1:$PROXY_PORT ..."
else
  say "starting a $BROKERS-node Kafka $SLUICE_KAFKA_VERSION cluster (KRaft), each node advertising its own Sluice ..."
  VOTERS=""
  for ((i = 0; i < BROKERS; i++)); do VOTERS+="${VOTERS:+,}$((i + 1))@127.0.0.1:${CONTROLLER_PORTS[i]}"; done
  QUORUM=(--voters "$VOTERS" --cluster-id "$(bash "$ROOT/integration-tests/scripts/kafka-broker.sh" --new-cluster-id)")
fi
for ((i = 0; i < BROKERS; i++)); do
  NODE=()
  [[ $BROKERS -gt 1 ]] && NODE=(--node-id $((i + 1)) --inter-broker-port "${REPLICATION_PORTS[i]}" "${QUORUM[@]}")
  bash "$ROOT/integration-tests/scripts/kafka-broker.sh" --dir "$WORK/broker$i" --port "${BROKER_PORTS[i]}" \
    --controller-port "${CONTROLLER_PORTS[i]}" --advertised "127.0.0.1:${PROXY_PORTS[i]}" --watch-pid $$ \
    "${NODE[@]}" >"$WORK/broker$i-supervisor.log" 2>&1 &
  BROKER_SUPS+=($!)
  "$SLUICE" --listen "127.0.0.1:${PROXY_PORTS[i]}" --upstream "127.0.0.1:${BROKER_PORTS[i]}" \
    --admin-listen "127.0.0.1:${ADMIN_PORTS[i]}" --shutdown-grace 5s 2>"$WORK/sluice$i.log" &
  SLUICE_PIDS+=($!)
  if [[ $BROKERS -eq 1 ]]; then
    say "sluice listening on 127.0.0.1:$PROXY_PORT → broker 127.0.0.1:$BROKER_PORT; admin http://127.0.0.1:$ADMIN_PORT/api/v1/stats"
  else
    say "node $((i + 1)): sluice on 127.0.0.1:${PROXY_PORTS[i]} → broker 127.0.0.1:${BROKER_PORTS[i]}; admin http://127.0.0.1:${ADMIN_PORTS[i]}/api/v1/stats"
  fi
done

for _ in $(seq 1 900); do
  ready=0
  for ((i = 0; i < BROKERS; i++)); do
    [[ -e "$WORK/broker$i/broker.ready" ]] && ready=$((ready + 1))
    kill -0 "${BROKER_SUPS[i]}" 2>/dev/null \
      || { cat "$WORK/broker$i/broker.log" >&2 || true; say "broker $((i + 1)) failed to start"; exit 1; }
  done
  [[ $ready -eq $BROKERS ]] && break
  sleep 0.1
done
[[ $ready -eq $BROKERS ]] || { say "brokers not ready after 90 s"; exit 1; }
BOOT="$(printf '127.0.0.1:%s,' "${PROXY_PORTS[@]}")" BOOT="${BOOT%,}"

PROM_URL=""
if [[ $OBSERVE == 1 ]]; then
  # Every sidecar's admin listener is a target (its own `instance`); the shipped alerts as is.
  PROM_PORT="$(free_port)"
  TARGETS="$(printf '"127.0.0.1:%s", ' "${ADMIN_PORTS[@]}")" TARGETS="${TARGETS%, }"
  cat >"$WORK/prometheus.yml" <<EOF
global:
  scrape_interval: 2s
  evaluation_interval: 2s
rule_files:
  - "$ROOT/deploy/prometheus/sluice-alerts.yml"
scrape_configs:
  - job_name: sluice
    static_configs:
      - targets: [$TARGETS]
EOF
  prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/prometheus-data" \
    --web.listen-address="127.0.0.1:$PROM_PORT" >"$WORK/prometheus.log" 2>&1 &
  PIDS+=($!)
  PROM_URL="http://127.0.0.1:$PROM_PORT"
  for _ in $(seq 1 300); do
    python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' \
      "$PROM_URL/-/ready" 2>/dev/null && break
    kill -0 "${PIDS[-1]}" 2>/dev/null || { cat "$WORK/prometheus.log" >&2; say "prometheus failed to start"; exit 1; }
    sleep 0.1
  done
  GRAPH_EXPR='sum by (messaging_consumer_group_name) (rate(sluice_consumer_redelivered_bytes_total[30s]))'
  GRAPH_URL="$PROM_URL/graph?g0.expr=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$GRAPH_EXPR")&g0.tab=0&g0.range_input=5m"
  say "prometheus on $PROM_URL, scraping every sidecar every 2 s, alerts from deploy/prometheus/sluice-alerts.yml"
  say "open the incident (re-delivered bytes/s by consumer group): $GRAPH_URL"
  say "alerts (pending within seconds, firing after their for:, SluiceFindingFetchLoop's 1m first): $PROM_URL/alerts"
fi
"$SLUICE_JAVA_CLIENT" wait-ready --bootstrap "$BOOT" --timeout-s 60 >/dev/null
"$SLUICE_JAVA_CLIENT" create-topic --bootstrap "$BOOT" --topic order-events --partitions 3 >/dev/null
# The sidecar the live view shows: the only one with one broker; else the one in front of the
# leader of order-events-0, which carries the looping consumer's bytes.
TOP_NODE=0
if [[ $BROKERS -eq 1 ]]; then
  say "broker ready through the proxy; topic order-events (3 partitions)"
else
  LAYOUT="$("$SLUICE_JAVA_CLIENT" describe --bootstrap "$BOOT" --topic order-events --group billing,analytics)"
  say "cluster ready through the sidecars; topic order-events (3 partitions, 3 replicas):"
  python3 -c '
import json, sys
d = json.loads(sys.argv[1])
for p in d["topics"]["order-events"]:
    print("demo:   order-events-%d led by node %d" % (p["partition"], p["leader"]))
for g, n in sorted(d["coordinators"].items()):
    print("demo:   group %s coordinated by node %d (its JoinGroup, SyncGroup, OffsetCommit pass that sidecar)" % (g, n))
' "$LAYOUT" >&2
  TOP_NODE=$(( $(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["topics"]["order-events"][0]["leader"])' "$LAYOUT") - 1 ))
  ADMIN_PORT=${ADMIN_PORTS[TOP_NODE]}
fi

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
[[ $BROKERS -gt 1 ]] && say "live view: node $((TOP_NODE + 1))'s sidecar, in front of the leader of order-events-0 where billing loops"
echo >&2
if [[ $DURATION -gt 0 ]]; then TOP_FOR=(--duration "${DURATION}s"); else TOP_FOR=(); fi
"$SLUICE" top --admin "127.0.0.1:$ADMIN_PORT" --interval 1s "${TOP_FOR[@]}" || true
echo
if [[ $BROKERS -eq 1 ]]; then
  say "findings at the end (JSON: curl http://127.0.0.1:$ADMIN_PORT/api/v1/findings):"
  "$SLUICE" top --admin "127.0.0.1:$ADMIN_PORT" --once | sed -n '/^FINDINGS/,/^$/p'
else
  # Each sidecar judges what passes it: the loop's fetches pass one, billing's commits
  # another; aggregating them is the collector's and Prometheus's job.
  for ((i = 0; i < BROKERS; i++)); do
    say "node $((i + 1))'s sidecar: findings at the end (JSON: curl http://127.0.0.1:${ADMIN_PORTS[i]}/api/v1/findings):"
    "$SLUICE" top --admin "127.0.0.1:${ADMIN_PORTS[i]}" --once | sed -n '/^FINDINGS/,/^$/p'
  done
fi
if [[ -n "$PROM_URL" ]]; then
  say "prometheus's alerts at the end ($PROM_URL/alerts; it stops with the demo):"
  python3 -c '
import json, sys, urllib.request
alerts = json.load(urllib.request.urlopen(sys.argv[1] + "/api/v1/alerts", timeout=5))["data"]["alerts"]
for a in sorted(alerts, key=lambda a: (a["state"], a["labels"]["alertname"])):
    l = a["labels"]
    who = l.get("messaging_consumer_group_name") or l.get("messaging_client_id") or l.get("messaging_destination_name") or ""
    print("demo:   %-8s %-36s %s" % (a["state"], l["alertname"], who))
if not alerts:
    print("demo:   none yet")
' "$PROM_URL" >&2 || true
fi
say "the same, as the metrics Prometheus scrapes (curl http://127.0.0.1:$ADMIN_PORT/metrics; dashboards and alerts in deploy/):"
if command -v curl >/dev/null 2>&1; then
  curl -fsS "http://127.0.0.1:$ADMIN_PORT/metrics" \
    | grep -E '^sluice_findings_active\{|^sluice_consumer_redelivered_bytes_total\{.*billing' | head -n 8 || true
fi
