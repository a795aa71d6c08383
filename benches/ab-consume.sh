#!/usr/bin/env bash
# A/B of Sluice builds or settings on one workload: Kafka consume of 1 GB through Sluice.
#
#   VARIANTS="on:/path/to/sluice:true off:/path/to/sluice:false" ROUNDS=12 benches/ab-consume.sh
#
# Each variant is name:binary:tap-enabled. One broker (from scripts/setup.sh) gets one topic of
# MSGS × 1 KiB records (batch.size 262144, as e2e); then, each round, every variant in turn
# (order reversed every other round) is started fresh in front of it and one
# ConsumerPerformance run reads the whole topic through it. Per run it prints the variant,
# Sluice's CPU milliseconds from `perf stat -e task-clock` (nanosecond clock), MB consumed,
# MB/s, and user/system ticks; at the end, medians per variant and their ratio to the last
# variant. Sluice alone restarts, so the broker's page cache and JIT are the same for all.
# Needs `perf` (Debian's linux-perf). Ports: PORT_BASE (default 39090) to PORT_BASE+4.
set -euo pipefail
# shellcheck disable=SC1091
source "$HOME/.cache/sluice/env.sh"
# shellcheck source=benches/ab-common.sh
source "$(dirname "${BASH_SOURCE[0]}")/ab-common.sh"
CP="$SLUICE_KAFKA_LIBS/*"
ROUNDS=${ROUNDS:-10}
MSGS=${MSGS:-1000000}
BASE=${PORT_BASE:-39090}
BROKER=$((BASE + 2)) PROXY=$((BASE + 3)) CONTROLLER=$((BASE + 4)) ADMIN=$((BASE + 1))
WORK=$(mktemp -d /tmp/sluice-ab-XXXXXX)
OUT="$WORK/runs.txt"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
read -r -a V <<< "${VARIANTS:?set VARIANTS=\"name:binary:tap ...\"}"

bash "$BROKER_SCRIPT" --dir "$WORK/broker" --port $BROKER --controller-port $CONTROLLER \
  --advertised 127.0.0.1:$PROXY --watch-pid $$ > "$WORK/broker.log" 2>&1 &
BROKER_PID=$!
start() {
  SLUICE_TAP_ENABLED=$2 "$1" run --listen 127.0.0.1:$PROXY --upstream 127.0.0.1:$BROKER \
    --admin-listen 127.0.0.1:$ADMIN > "$WORK/sluice.log" 2>&1 &
  SPID=$!
  for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/$PROXY) 2>/dev/null && return; sleep 0.05; done
  echo "ab: sluice did not listen; see $WORK/sluice.log" >&2; exit 1
}
stop() { kill "$SPID"; wait "$SPID" || true; }

IFS=: read -r _ bin _ <<< "${V[0]}"
start "$bin" true
fill_topic $PROXY ab "$BROKER_PID" "$WORK/broker.log"
stop

for r in $(seq "$ROUNDS"); do
  order=("${V[@]}")
  if (( r % 2 == 0 )); then mapfile -t order < <(printf '%s\n' "${V[@]}" | tac); fi
  for v in "${order[@]}"; do
    IFS=: read -r name bin tap <<< "$v"
    start "$bin" "$tap"
    perf stat -x, -e task-clock -p "$SPID" -o "$WORK/stat.txt" & PS=$!
    sleep 0.3
    read -r u0 s0 < <(awk '{print $14, $15}' "/proc/$SPID/stat")
    res=$(java -cp "$CP" org.apache.kafka.tools.ConsumerPerformance --bootstrap-server 127.0.0.1:$PROXY \
      --topic ab --messages "$MSGS" --group "ab-$r-$name-$RANDOM" --timeout 60000 2>&1 | tail -1)
    read -r u1 s1 < <(awk '{print $14, $15}' "/proc/$SPID/stat")
    kill -INT $PS; wait $PS || true
    ms=$(grep task-clock "$WORK/stat.txt" | cut -d, -f1)
    mb=$(echo "$res" | cut -d, -f3 | tr -d ' ')
    mbps=$(echo "$res" | cut -d, -f4 | tr -d ' ')
    echo "$r $name cpu_ms=$ms mb=$mb mb_per_s=$mbps user=$((u1 - u0)) sys=$((s1 - s0))" | tee -a "$OUT"
    stop
  done
done

python3 - "$OUT" "${V[-1]%%:*}" <<'EOF'
import re, statistics as st, sys
from collections import defaultdict
cpu, thr = defaultdict(list), defaultdict(list)
for line in open(sys.argv[1]):
    m = re.match(r"\d+ (\S+) cpu_ms=([\d.]+) mb=([\d.]+) mb_per_s=([\d.]+)", line)
    if m:
        cpu[m[1]].append(float(m[2]) / (float(m[3]) * 2**20 / 1e9))
        thr[m[1]].append(float(m[4]))
ref = sys.argv[2]
for k in cpu:
    print(f"{k}: CPU {st.median(cpu[k]):.1f} ms/GB (median of {len(cpu[k])}, "
          f"sd {st.stdev(cpu[k]) if len(cpu[k]) > 1 else 0:.1f}), "
          f"{st.median(cpu[k]) / st.median(cpu[ref]):.3f}x {ref}; "
          f"{st.median(thr[k]):.0f} MB/s, {st.median(thr[k]) / st.median(thr[ref]):.3f}x {ref}")
EOF
