#!/usr/bin/env bash
# Runs ONE real Apache Kafka node (KRaft, combined broker + controller) for
# Sluice's integration tests and benchmarks, and supervises it. Several of
# them, started together with one --cluster-id and one --voters list, form a
# multi-node cluster.
#
# Usage:
#   kafka-broker.sh --dir DIR --port B --controller-port C [--advertised HOST:PORT]
#                   [--node-id N --voters LIST --cluster-id ID [--inter-broker-port I]]
#                   [--watch-pid PID] [--format-only | --no-format]
#                   [--listener NAME:PROTOCOL:PORT:ADVERTISED]... [--add-scram SPEC]...
#                   [--config KEY=VALUE]...
#   kafka-broker.sh --new-cluster-id     print a fresh cluster id and exit
#
#   --dir DIR            state directory: server.properties, log4j2.properties,
#                        data/ (log.dirs), broker.log, broker.pid, broker.ready
#   --port B             client listener, PLAINTEXT://127.0.0.1:B
#   --controller-port C  KRaft controller listener, CONTROLLER://127.0.0.1:C
#   --advertised H:P     address advertised to clients in Metadata (normally the
#                        proxy's listener); default 127.0.0.1:B
#   --watch-pid PID      stop the broker and exit when PID exits
#   --format-only        write the config, format the storage, exit
#   --no-format          never format: restart on an existing DIR (reuses data)
#   --listener NAME:PROTOCOL:PORT:ADVERTISED
#                        one more client listener NAME://127.0.0.1:PORT with
#                        security protocol PROTOCOL (PLAINTEXT, SSL, SASL_PLAINTEXT,
#                        SASL_SSL), advertised as ADVERTISED (HOST:PORT, normally
#                        the proxy in front of it); repeatable. Its settings
#                        (listener.name.<name>.ssl.*, .sasl.*) come with --config.
#   --add-scram SPEC     a SCRAM credential written at format time, as
#                        kafka-storage's --add-scram takes it, e.g.
#                        'SCRAM-SHA-512=[name=alice,password=secret]' (repeatable)
#   --config KEY=VALUE   extra broker property (repeatable; wins over defaults)
#
# A node of a multi-node cluster (every node runs the same way, each with its
# own DIR and ports; start them together: the quorum needs a majority):
#   --node-id N          this node's id (default 1)
#   --voters LIST        the controller quorum, "1@127.0.0.1:C1,2@127.0.0.1:C2,..."
#                        (default: this node alone, "N@127.0.0.1:C")
#   --cluster-id ID      format with this cluster id (every node the same one;
#                        default: a fresh random one, for a single node)
#   --inter-broker-port I  a REPLICATION listener on 127.0.0.1:I, advertised as
#                        itself, for replica fetches between the nodes (so they
#                        never pass the proxy in front of the client listener);
#                        default: the brokers replicate over the client listener
# With more than one voter, internal topics and new topics get replication
# factor min(3, nodes) and min.insync.replicas one less (at least 1), topics
# default to one partition per node, and __consumer_offsets gets 4 partitions
# per node, so that the coordinators of different groups sit on different
# nodes.
#
# Without --format-only/--no-format the storage is formatted (with
# --cluster-id, or a fresh random id) unless DIR/data is already formatted, in
# which case it is reused.
#
# The script stays in the foreground as a supervisor of the broker JVM:
#   * it writes the JVM's pid to DIR/broker.pid (tests may `kill -9` it to
#     simulate a crash, then run this script again with --no-format);
#   * it creates DIR/broker.ready once the broker logged that it started;
#   * when the broker exits, the script exits with the broker's status;
#   * on TERM/INT/HUP, or when --watch-pid's process is gone, it stops the
#     broker (TERM, then KILL after SLUICE_BROKER_STOP_GRACE_S, default 5s;
#     20s for a node of a cluster, which hands its leaderships over first).
# Broker stdout/stderr and its log4j output (INFO) go to DIR/broker.log.
#
# Environment:
#   SLUICE_KAFKA_LIBS        directory of Kafka jars (default: from
#                            ${SLUICE_CACHE:-$HOME/.cache/sluice}, see scripts/setup.sh)
#   SLUICE_KAFKA_HEAP_OPTS   default "-Xmx512m -Xms256m" (one node), "-Xmx384m
#                            -Xms192m" (a node of a multi-node cluster)
#   SLUICE_KAFKA_JVM_OPTS    extra JVM options
#   JAVA_HOME                java to use (default: java on PATH)
#
# The broker never needs the advertised address to be reachable: in a single
# combined node the broker reaches the controller over the CONTROLLER
# listener, and the advertised address is only handed to clients. In a
# multi-node cluster the nodes reach each other's controllers over CONTROLLER
# and each other's partitions over REPLICATION (with --inter-broker-port), or
# over the advertised addresses (without).
set -uo pipefail

# The whole script is one compound command, so bash parses it completely
# before running it: editing or checking out a new version of this file while
# a broker is supervised cannot break the running supervisor.
{

prog="kafka-broker.sh"
die() { echo "$prog: $*" >&2; exit 1; }
usage_die() {
  echo "$prog: $*" >&2
  sed -n '8,13p' "$0" | sed 's/^#  \{0,1\}//' >&2
  echo "(see --help)" >&2
  exit 2
}

# A Kafka cluster id is 16 random bytes, base64url without padding. Like Kafka's own
# Uuid.randomUuid(), never start with '-': the storage tool would read it as an option.
new_cluster_id() {
  local id="-"
  while [[ "$id" == -* ]]; do
    id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
  done
  echo "$id"
}

DIR="" PORT="" CPORT="" ADVERTISED="" WATCH_PID="" MODE="auto"
NODE_ID=1 VOTERS="" CLUSTER_ID="" IBPORT=""
EXTRA_CONFIG=() EXTRA_LISTENERS=() ADD_SCRAM=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --new-cluster-id) new_cluster_id; exit 0 ;;
    --node-id) NODE_ID="${2:-}"; shift 2 || usage_die "--node-id needs a value" ;;
    --voters) VOTERS="${2:-}"; shift 2 || usage_die "--voters needs a value" ;;
    --cluster-id) CLUSTER_ID="${2:-}"; shift 2 || usage_die "--cluster-id needs a value" ;;
    --inter-broker-port) IBPORT="${2:-}"; shift 2 || usage_die "--inter-broker-port needs a value" ;;
    --dir) DIR="${2:-}"; shift 2 || usage_die "--dir needs a value" ;;
    --port) PORT="${2:-}"; shift 2 || usage_die "--port needs a value" ;;
    --controller-port) CPORT="${2:-}"; shift 2 || usage_die "--controller-port needs a value" ;;
    --advertised) ADVERTISED="${2:-}"; shift 2 || usage_die "--advertised needs a value" ;;
    --watch-pid) WATCH_PID="${2:-}"; shift 2 || usage_die "--watch-pid needs a value" ;;
    --listener) EXTRA_LISTENERS+=("${2:-}"); shift 2 || usage_die "--listener needs a value" ;;
    --add-scram) ADD_SCRAM+=("${2:-}"); shift 2 || usage_die "--add-scram needs a value" ;;
    --config) [[ "${2:-}" == *=* ]] || usage_die "--config needs KEY=VALUE"; EXTRA_CONFIG+=("$2"); shift 2 ;;
    --format-only) MODE="format-only"; shift ;;
    --no-format) MODE="no-format"; shift ;;
    -h|--help) sed -n '2,79p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) usage_die "unknown argument: $1" ;;
  esac
done

[[ -n "$DIR" ]] || usage_die "--dir is required"
[[ "$PORT" =~ ^[0-9]+$ && "$PORT" -ge 1 && "$PORT" -le 65535 ]] || usage_die "--port must be a TCP port"
[[ "$CPORT" =~ ^[0-9]+$ && "$CPORT" -ge 1 && "$CPORT" -le 65535 ]] || usage_die "--controller-port must be a TCP port"
[[ "$PORT" != "$CPORT" ]] || usage_die "--port and --controller-port must differ"
[[ -n "$ADVERTISED" ]] || ADVERTISED="127.0.0.1:$PORT"
[[ "$ADVERTISED" =~ ^.+:[0-9]+$ ]] || usage_die "--advertised must be HOST:PORT"
[[ -z "$WATCH_PID" || "$WATCH_PID" =~ ^[0-9]+$ ]] || usage_die "--watch-pid must be a pid"
[[ "$NODE_ID" =~ ^[0-9]+$ ]] || usage_die "--node-id must be a whole number"
[[ -n "$VOTERS" ]] || VOTERS="$NODE_ID@127.0.0.1:$CPORT"
[[ "$VOTERS" =~ ^[0-9]+@[^,@]+:[0-9]+(,[0-9]+@[^,@]+:[0-9]+)*$ ]] \
  || usage_die "--voters must be ID@HOST:PORT[,ID@HOST:PORT...]"
[[ ",$VOTERS," == *",$NODE_ID@"* ]] || usage_die "--voters must list this node (--node-id $NODE_ID)"
[[ -z "$CLUSTER_ID" || "$CLUSTER_ID" =~ ^[A-Za-z0-9_-]{22}$ ]] \
  || usage_die "--cluster-id must be 22 base64url characters (see --new-cluster-id)"
if [[ -n "$IBPORT" ]]; then
  [[ "$IBPORT" =~ ^[0-9]+$ && "$IBPORT" -ge 1 && "$IBPORT" -le 65535 ]] \
    || usage_die "--inter-broker-port must be a TCP port"
  [[ "$IBPORT" != "$PORT" && "$IBPORT" != "$CPORT" ]] \
    || usage_die "--inter-broker-port must differ from --port and --controller-port"
fi
for l in ${EXTRA_LISTENERS[@]+"${EXTRA_LISTENERS[@]}"}; do
  [[ "$l" =~ ^[A-Z][A-Z0-9_]*:(PLAINTEXT|SSL|SASL_PLAINTEXT|SASL_SSL):[0-9]+:.+:[0-9]+$ ]] \
    || usage_die "--listener must be NAME:PROTOCOL:PORT:HOST:PORT (NAME in capitals), got $l"
done
IFS=, read -r -a VOTER_LIST <<<"$VOTERS"
NODES=${#VOTER_LIST[@]}

mkdir -p "$DIR" || die "cannot create $DIR"
DIR="$(cd "$DIR" && pwd -P)"

KAFKA_LIBS="${SLUICE_KAFKA_LIBS:-${SLUICE_CACHE:-$HOME/.cache/sluice}/kafka-4.1.1/libs}"
compgen -G "$KAFKA_LIBS/kafka_2.13-*.jar" >/dev/null \
  || die "no Kafka jars in $KAFKA_LIBS (run scripts/setup.sh, or set SLUICE_KAFKA_LIBS)"
JAVA="${JAVA_HOME:+$JAVA_HOME/bin/}java"

CONF="$DIR/server.properties"
LOG4J="$DIR/log4j2.properties"
DATA="$DIR/data"
LOG="$DIR/broker.log"
PIDFILE="$DIR/broker.pid"
READY="$DIR/broker.ready"

# ------------------------------------------------------------- process utils

# proc_start PID: the process start time (clock ticks since boot), empty if gone.
proc_start() {
  local stat rest
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 0
  rest="${stat##*) }"
  # shellcheck disable=SC2206
  local f=($rest)
  [[ "${f[0]}" == "Z" || "${f[0]}" == "X" ]] && return 0
  echo "${f[19]}"
}

# alive PID [START]: the process exists, is not a zombie, and (if START is
# given) is the same process that had that start time.
alive() {
  if [[ -r /proc/$1/stat ]]; then
    local s
    s="$(proc_start "$1")"
    [[ -n "$s" ]] || return 1
    [[ -z "${2:-}" || "$s" == "$2" ]]
  else
    kill -0 "$1" 2>/dev/null
  fi
}

# ------------------------------------------------------------------ config

# Refuse to start a second broker on the same directory.
if [[ -f "$PIDFILE" ]]; then
  old="$(cat "$PIDFILE" 2>/dev/null)"
  if [[ "$old" =~ ^[0-9]+$ ]] && alive "$old" \
      && tr '\0' ' ' <"/proc/$old/cmdline" 2>/dev/null | grep -qF "$CONF"; then
    die "a broker is already running on $DIR (pid $old)"
  fi
fi

# Replication and partition defaults: one node keeps one copy of everything; a cluster
# keeps min(3, nodes) copies, tolerates one node down for acks=all writes, spreads new
# topics' partitions over every node and group coordinators over every node.
RF=$(( NODES < 3 ? NODES : 3 ))
MIN_ISR=$(( RF > 1 ? RF - 1 : 1 ))
if [[ $NODES -gt 1 ]]; then
  TOPIC_PARTITIONS=$NODES OFFSETS_PARTITIONS=$(( 4 * NODES ))
else
  TOPIC_PARTITIONS=1 OFFSETS_PARTITIONS=1
fi
if [[ -n "$IBPORT" ]]; then
  LISTENERS="PLAINTEXT://127.0.0.1:$PORT,REPLICATION://127.0.0.1:$IBPORT,CONTROLLER://127.0.0.1:$CPORT"
  ADVERTISED_LISTENERS="PLAINTEXT://$ADVERTISED,REPLICATION://127.0.0.1:$IBPORT"
  PROTOCOLS="PLAINTEXT:PLAINTEXT,REPLICATION:PLAINTEXT,CONTROLLER:PLAINTEXT"
  INTER_BROKER=REPLICATION
else
  LISTENERS="PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CPORT"
  ADVERTISED_LISTENERS="PLAINTEXT://$ADVERTISED"
  PROTOCOLS="PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
  INTER_BROKER=PLAINTEXT
fi
for l in ${EXTRA_LISTENERS[@]+"${EXTRA_LISTENERS[@]}"}; do
  IFS=: read -r l_name l_proto l_port l_adv <<<"$l"
  LISTENERS="$LISTENERS,$l_name://127.0.0.1:$l_port"
  ADVERTISED_LISTENERS="$ADVERTISED_LISTENERS,$l_name://$l_adv"
  PROTOCOLS="$PROTOCOLS,$l_name:$l_proto"
done

write_config() {
  local tmp="$CONF.tmp.$$"
  cat >"$tmp" <<EOF
# Written by integration-tests/scripts/kafka-broker.sh; rewritten on every start.
process.roles=broker,controller
node.id=$NODE_ID
controller.quorum.voters=$VOTERS
listeners=$LISTENERS
advertised.listeners=$ADVERTISED_LISTENERS
listener.security.protocol.map=$PROTOCOLS
controller.listener.names=CONTROLLER
inter.broker.listener.name=$INTER_BROKER
log.dirs=$DATA

num.partitions=$TOPIC_PARTITIONS
default.replication.factor=$RF
min.insync.replicas=$MIN_ISR
auto.create.topics.enable=true
offsets.topic.replication.factor=$RF
offsets.topic.num.partitions=$OFFSETS_PARTITIONS
transaction.state.log.replication.factor=$RF
transaction.state.log.min.isr=$MIN_ISR
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=$RF
share.coordinator.state.topic.min.isr=$MIN_ISR
group.initial.rebalance.delay.ms=0
group.min.session.timeout.ms=1000

# After a crash (kill -9) the restarted node cannot register again until the
# controller has fenced its previous incarnation, which takes
# broker.session.timeout.ms (default 9s). Shorter values make crash/restart
# tests quick while still tolerating a loaded 2-core machine.
broker.heartbeat.interval.ms=500
broker.session.timeout.ms=3000

# Small, test-friendly storage settings.
log.segment.bytes=16777216
log.retention.hours=24
log.retention.check.interval.ms=60000
num.io.threads=4
num.network.threads=2
num.recovery.threads.per.data.dir=1
message.max.bytes=10485760
replica.fetch.max.bytes=10485760
EOF
  local kv
  if [[ ${#EXTRA_CONFIG[@]} -gt 0 ]]; then
    echo "# --config overrides" >>"$tmp"
    for kv in "${EXTRA_CONFIG[@]}"; do echo "$kv" >>"$tmp"; done
  fi
  mv "$tmp" "$CONF"

  cat >"$LOG4J.tmp.$$" <<'EOF'
# Written by integration-tests/scripts/kafka-broker.sh: INFO to stdout, which
# the script sends to broker.log. Chatty loggers are turned down to WARN.
status = error
appender.out.type = Console
appender.out.name = STDOUT
appender.out.target = SYSTEM_OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.out.ref = STDOUT
logger.request.name = kafka.request.logger
logger.request.level = warn
logger.authorizer.name = kafka.authorizer.logger
logger.authorizer.level = warn
logger.clients.name = org.apache.kafka.clients
logger.clients.level = warn
logger.config.name = org.apache.kafka.common.config.AbstractConfig
logger.config.level = warn
logger.kafkaconfig.name = kafka.server.KafkaConfig
logger.kafkaconfig.level = warn
logger.appinfo.name = org.apache.kafka.common.utils.AppInfoParser
logger.appinfo.level = warn
EOF
  mv "$LOG4J.tmp.$$" "$LOG4J"
}

if [[ $NODES -gt 1 ]]; then DEFAULT_HEAP="-Xmx384m -Xms192m"; else DEFAULT_HEAP="-Xmx512m -Xms256m"; fi
# shellcheck disable=SC2206 # the heap options are deliberately word-split
JVM_BASE=(
  ${SLUICE_KAFKA_HEAP_OPTS:-$DEFAULT_HEAP}
  -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35
  -XX:+ExplicitGCInvokesConcurrent -XX:MaxInlineLevel=15
  -Djava.awt.headless=true
  "-Dlog4j2.configurationFile=$LOG4J"
  "-Dkafka.logs.dir=$DIR"
)

format_storage() {
  local id="${CLUSTER_ID:-$(new_cluster_id)}"
  local scram=() spec
  for spec in ${ADD_SCRAM[@]+"${ADD_SCRAM[@]}"}; do scram+=(--add-scram "$spec"); done
  echo "$id" >"$DIR/cluster.id"
  echo "==== $(date '+%F %T') format: cluster id $id ====" >>"$LOG"
  # -Xshare/-XX:TieredStopAtLevel keep this short-lived JVM quick.
  "$JAVA" -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
    "-Dlog4j2.configurationFile=$LOG4J" -cp "$KAFKA_LIBS/*" \
    kafka.tools.StorageTool format -t "$id" -c "$CONF" ${scram[@]+"${scram[@]}"} >>"$LOG" 2>&1 \
    || die "storage format failed (see $LOG)"
}

write_config
formatted=0
[[ -f "$DATA/meta.properties" ]] && formatted=1
case "$MODE" in
  format-only)
    if [[ $formatted -eq 1 ]]; then
      echo "$prog: $DATA is already formatted; leaving it as is" >&2
    else
      format_storage
    fi
    exit 0
    ;;
  no-format)
    [[ $formatted -eq 1 ]] || die "--no-format given but $DATA is not formatted"
    ;;
  auto)
    [[ $formatted -eq 1 ]] || format_storage
    ;;
esac

# ------------------------------------------------------------------- start

WATCH_START=""
if [[ -n "$WATCH_PID" ]]; then
  alive "$WATCH_PID" || die "--watch-pid $WATCH_PID is not running"
  WATCH_START="$(proc_start "$WATCH_PID" 2>/dev/null)"
fi

rm -f "$READY" "$PIDFILE"
touch "$LOG"
log_offset=$(stat -c %s "$LOG")
echo "==== $(date '+%F %T') start: node $NODE_ID of $NODES, port $PORT, controller $CPORT, advertised $ADVERTISED ====" >>"$LOG"

BPID=""
SLEEP_PID=""
cleanup_files() { rm -f "$READY"; [[ "$(cat "$PIDFILE" 2>/dev/null)" == "$BPID" ]] && rm -f "$PIDFILE"; }

stop_broker() {
  # A node of a cluster first hands its partitions' leadership over (controlled shutdown).
  local grace="${SLUICE_BROKER_STOP_GRACE_S:-$(( NODES > 1 ? 20 : 5 ))}" i
  [[ -n "$SLEEP_PID" ]] && kill "$SLEEP_PID" 2>/dev/null
  [[ -n "$BPID" ]] || return 0
  if alive "$BPID"; then
    kill -TERM "$BPID" 2>/dev/null
    for ((i = 0; i < grace * 10; i++)); do
      alive "$BPID" || break
      sleep 0.1
    done
    if alive "$BPID"; then
      echo "$prog: broker did not stop within ${grace}s; killing it" >&2
      kill -KILL "$BPID" 2>/dev/null
    fi
  fi
  wait "$BPID" 2>/dev/null
  cleanup_files
}

on_signal() {
  trap '' TERM INT HUP
  echo "$prog: got SIG$1; stopping broker ${BPID:-(not started)}" >&2
  stop_broker
  case "$1" in TERM) exit 143 ;; INT) exit 130 ;; *) exit 129 ;; esac
}
trap 'on_signal TERM' TERM
trap 'on_signal INT' INT
trap 'on_signal HUP' HUP

# Traps are in place before the JVM starts, so a signal can never orphan it.
# shellcheck disable=SC2086
"$JAVA" "${JVM_BASE[@]}" ${SLUICE_KAFKA_JVM_OPTS:-} -cp "$KAFKA_LIBS/*" kafka.Kafka "$CONF" \
  </dev/null >>"$LOG" 2>&1 &
BPID=$!
echo "$BPID" >"$PIDFILE.tmp.$$" && mv "$PIDFILE.tmp.$$" "$PIDFILE"
echo "$prog: broker pid $BPID, log $LOG" >&2

ready=0
while alive "$BPID"; do
  if [[ -n "$WATCH_PID" ]] && ! alive "$WATCH_PID" "$WATCH_START"; then
    echo "$prog: watched pid $WATCH_PID is gone; stopping broker $BPID" >&2
    stop_broker
    exit 0
  fi
  if [[ $ready -eq 0 ]] && grep -q -e 'Kafka Server started' -e 'KafkaRaftServer.*started' \
      < <(tail -c "+$((log_offset + 1))" "$LOG" 2>/dev/null); then
    ready=1
    touch "$READY"
  fi
  # Sleep in the background so that signals are handled at once.
  sleep 0.25 &
  SLEEP_PID=$!
  wait "$SLEEP_PID" 2>/dev/null
  SLEEP_PID=""
done

wait "$BPID"
status=$?
cleanup_files
echo "$prog: broker $BPID exited with status $status" >&2
exit "$status"
}
