#!/usr/bin/env bash
# Two Sluice builds or settings side by side, at the same time, on one workload: each round,
# both run in front of one broker and one consumer reads the whole topic through each.
#
#   VARIANTS="on:/path/to/sluice:true off:/path/to/sluice:false" ROUNDS=12 benches/ab-parallel.sh
#
# Why: run after run, Sluice's CPU per GB on this 2-core machine moves by ±5–10% (the JVMs'
# pace sets how much each read returns), far more than the tap's cost. `ab-consume.sh` runs
# the variants one after the other; here they share every condition of the round (page cache,
# broker JIT, the machine's load), so their ratio within a round is steadier.
#
# The broker gets two client listeners, each advertising its own Sluice, so each consumer stays
# on its own proxy. Variants swap listeners every round. Per round it prints each variant's CPU
# milliseconds (`perf stat -e task-clock`, nanosecond clock), MB and MB/s; at the end the
# per-round ratios of the first variant to the second, with their median, mean and 95%
# interval. Needs `perf` (Debian's linux-perf). Ports: PORT_BASE (default 39290) to +7.
set -euo pipefail
# shellcheck disable=SC1091
source "$HOME/.cache/sluice/env.sh"
# shellcheck source=benches/ab-common.sh
source "$(dirname "${BASH_SOURCE[0]}")/ab-common.sh"
CP="$SLUICE_KAFKA_LIBS/*"
ROUNDS=${ROUNDS:-10}
MSGS=${MSGS:-1000000}
BASE=${PORT_BASE:-39290}
BROKER1=$((BASE + 1)) BROKER2=$((BASE + 2)) CONTROLLER=$((BASE + 3))
PROXY1=$((BASE + 4)) PROXY2=$((BASE + 5)) ADMIN1=$((BASE + 6)) ADMIN2=$((BASE + 7))
WORK=$(mktemp -d /tmp/sluice-abp-XXXXXX)
OUT="$WORK/runs.txt"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
read -r -a V <<< "${VARIANTS:?set VARIANTS=\"name:binary:tap name:binary:tap\"}"
(( ${#V[@]} == 2 )) || { echo "ab-parallel: exactly two variants" >&2; exit 2; }

bash "$BROKER_SCRIPT" --dir "$WORK/broker" --port $BROKER1 --controller-port $CONTROLLER \
  --watch-pid $$ \
  --config "listeners=PLAINTEXT://127.0.0.1:$BROKER1,SECOND://127.0.0.1:$BROKER2,CONTROLLER://127.0.0.1:$CONTROLLER" \
  --config "advertised.listeners=PLAINTEXT://127.0.0.1:$PROXY1,SECOND://127.0.0.1:$PROXY2" \
  --config "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SECOND:PLAINTEXT,CONTROLLER:PLAINTEXT" \
  > "$WORK/broker.log" 2>&1 &
BROKER_PID=$!

# start BIN TAP PROXY_PORT BROKER_PORT ADMIN_PORT LOG: prints the pid once Sluice listens.
start() {
  if (exec 3<>"/dev/tcp/127.0.0.1/$3") 2>/dev/null; then
    echo "ab-parallel: port $3 is already taken (set PORT_BASE)" >&2; exit 1
  fi
  SLUICE_TAP_ENABLED=$2 "$1" run --listen "127.0.0.1:$3" --upstream "127.0.0.1:$4" \
    --admin-listen "127.0.0.1:$5" > "$6" 2>&1 &
  local pid=$!
  for _ in $(seq 200); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$3") 2>/dev/null; then echo $pid; return; fi
    sleep 0.05
  done
  echo "ab-parallel: sluice did not listen; see $6" >&2; exit 1
}

# CPU time, and what it grows with besides the tap: system calls and context switches.
EVENTS=task-clock,raw_syscalls:sys_enter,context-switches

stop() { # PID: Sluice was started in a subshell, so wait by polling
  kill "$1" 2>/dev/null || true
  for _ in $(seq 200); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.05; done
}

IFS=: read -r _ bin _ <<< "${V[0]}"
P=$(start "$bin" true $PROXY1 $BROKER1 $ADMIN1 "$WORK/setup.log")
fill_topic $PROXY1 ab-parallel "$BROKER_PID" "$WORK/broker.log"
stop "$P"

consume() { # PROXY_PORT GROUP → the ConsumerPerformance summary line
  java -cp "$CP" org.apache.kafka.tools.ConsumerPerformance --bootstrap-server "127.0.0.1:$1" \
    --topic ab --messages "$MSGS" --group "$2" --timeout 60000 2>&1 | tail -1
}

for r in $(seq "$ROUNDS"); do
  a=0 b=1
  if (( r % 2 == 0 )); then a=1 b=0; fi
  IFS=: read -r name_a bin_a tap_a <<< "${V[$a]}"
  IFS=: read -r name_b bin_b tap_b <<< "${V[$b]}"
  PA=$(start "$bin_a" "$tap_a" $PROXY1 $BROKER1 $ADMIN1 "$WORK/a.log")
  PB=$(start "$bin_b" "$tap_b" $PROXY2 $BROKER2 $ADMIN2 "$WORK/b.log")
  perf stat -x, -e "$EVENTS" -p "$PA" -o "$WORK/a.stat" & SA=$!
  perf stat -x, -e "$EVENTS" -p "$PB" -o "$WORK/b.stat" & SB=$!
  sleep 0.3
  consume $PROXY1 "abp-$r-$name_a-$RANDOM" > "$WORK/a.res" &
  CA=$!
  consume $PROXY2 "abp-$r-$name_b-$RANDOM" > "$WORK/b.res" &
  CB=$!
  wait $CA $CB
  kill -INT $SA $SB; wait $SA $SB || true
  for side in a b; do
    if [[ $side == a ]]; then name=$name_a; pid=$PA; else name=$name_b; pid=$PB; fi
    ms=$(grep task-clock "$WORK/$side.stat" | cut -d, -f1)
    sc=$(grep raw_syscalls "$WORK/$side.stat" | cut -d, -f1)
    cs=$(grep context-switches "$WORK/$side.stat" | cut -d, -f1)
    res=$(cat "$WORK/$side.res")
    mb=$(echo "$res" | cut -d, -f3 | tr -d ' ')
    mbps=$(echo "$res" | cut -d, -f4 | tr -d ' ')
    echo "$r $name cpu_ms=$ms mb=$mb mb_per_s=$mbps syscalls=$sc switches=$cs" | tee -a "$OUT"
    stop "$pid"
  done
done

python3 - "$OUT" "${V[0]%%:*}" "${V[1]%%:*}" <<'EOF'
import re, statistics as st, sys
from collections import defaultdict
rounds = defaultdict(dict)
for line in open(sys.argv[1]):
    m = re.match(r"(\d+) (\S+) cpu_ms=([\d.]+) mb=([\d.]+) mb_per_s=([\d.]+)", line)
    if m:
        rounds[m[1]][m[2]] = (float(m[3]) / (float(m[4]) * 2**20 / 1e9), float(m[5]))
x, y = sys.argv[2], sys.argv[3]
both = [r for r in rounds.values() if x in r and y in r]
for k in (x, y):
    c = [r[k][0] for r in both]
    t = [r[k][1] for r in both]
    print(f"{k}: CPU {st.median(c):.1f} ms/GB (median of {len(c)}), {st.median(t):.0f} MB/s")
if len(both) > 1:
    c = [r[x][0] / r[y][0] for r in both]
    t = [r[x][1] / r[y][1] for r in both]
    half = 1.96 * st.stdev(c) / len(c) ** 0.5
    print(f"{x} / {y}, per round: CPU median {st.median(c):.3f}, mean {st.mean(c):.3f} ± {half:.3f} "
          f"(95%, {len(c)} rounds); throughput median {st.median(t):.3f}")
EOF
