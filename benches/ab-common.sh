# shellcheck shell=bash
# Sourced by ab-consume.sh and ab-parallel.sh (after env.sh, with CP and MSGS set).

# fill_topic PORT NAME: creates topic `ab` through the Sluice on PORT (waiting for the broker)
# and writes MSGS records of 1 KiB into it (batch.size 262144, as e2e).
fill_topic() {
  for _ in $(seq 120); do
    java -cp "$CP" org.apache.kafka.tools.TopicCommand --bootstrap-server "127.0.0.1:$1" --create \
      --topic ab --partitions 1 > /dev/null 2>&1 && break
    sleep 1
  done
  echo "$2: writing $MSGS records" >&2
  java -cp "$CP" org.apache.kafka.tools.ProducerPerformance --topic ab --num-records "$MSGS" \
    --record-size 1024 --throughput -1 --producer-props "bootstrap.servers=127.0.0.1:$1" acks=1 \
    linger.ms=5 batch.size=262144 2>&1 | tail -1 >&2
}
