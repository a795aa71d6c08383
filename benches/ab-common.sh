# shellcheck shell=bash
# Sourced by ab-consume.sh and ab-parallel.sh (after env.sh, with CP and MSGS set).

# The broker script of this checkout.
# shellcheck disable=SC2034 # used by the scripts that source this one
BROKER_SCRIPT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/integration-tests/scripts/kafka-broker.sh"

# fill_topic PORT NAME BROKER_PID BROKER_LOG: creates topic `ab` through the Sluice on PORT
# (waiting up to 180 s for the broker, and giving up as soon as it exited) and writes MSGS
# records of 1 KiB into it (batch.size 262144, as e2e).
fill_topic() {
  local deadline=$((SECONDS + 180))
  until timeout 20 java -cp "$CP" org.apache.kafka.tools.TopicCommand \
    --bootstrap-server "127.0.0.1:$1" --create --topic ab --partitions 1 > /dev/null 2>&1; do
    if ! kill -0 "$3" 2>/dev/null; then
      echo "$2: the broker exited before the topic was made; the end of $4:" >&2
      tail -n 20 "$4" >&2
      exit 1
    fi
    if (( SECONDS > deadline )); then
      echo "$2: no broker answered through 127.0.0.1:$1 within 180 s; the end of $4:" >&2
      tail -n 20 "$4" >&2
      exit 1
    fi
    sleep 1
  done
  echo "$2: writing $MSGS records" >&2
  java -cp "$CP" org.apache.kafka.tools.ProducerPerformance --topic ab --num-records "$MSGS" \
    --record-size 1024 --throughput -1 --producer-props "bootstrap.servers=127.0.0.1:$1" acks=1 \
    linger.ms=5 batch.size=262144 2>&1 | tail -1 >&2
}
