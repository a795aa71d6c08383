#!/usr/bin/env python3
"""Sluice integration-test client built on confluent-kafka (librdkafka).

Implements the same command-line contract as
  integration-tests/clients/java/SluiceClient.java  (Apache Kafka Java client)
  integration-tests/clients/go/main.go              (franz-go)
so tests can swap clients freely. Run with --help for the commands.

Record format (identical in all three clients):
  pool(seed, size) = SHA-256("sluice:<seed>:0") ++ SHA-256("sluice:<seed>:1") ++ ...
                     truncated to size + 65536 bytes
  payload(i)       = pool[off : off + size], off = ((i mod 65536) * 31153) mod 65536
  key(i)           = UTF-8 "<seed>-<i>"
  value(i)         = SHA-256(payload(i)) ++ payload(i)
  digest           = hex(XOR over records of SHA-256(key ++ value))

Exit codes: 0 success, 1 failure, 2 usage error.
"""

import argparse
import hashlib
import json
import sys
import time

CLIENT = "python"
POOL_WINDOW = 65536
OFFSET_MULT = 31153
PROGRESS_INTERVAL_S = 2.0

USAGE = """\
usage: sluice-py-client COMMAND [OPTIONS]

commands:
  produce      --bootstrap H:P --topic T --count N [--size BYTES=1000] [--seed S=1] [--rate PER_SEC=0]
  consume      --bootstrap H:P --topic T --group G --count N [--timeout-s S=60] [--commit sync|auto]
  create-topic --bootstrap H:P --topic T [--partitions P=1] [--timeout-s S=30]
  wait-ready   --bootstrap H:P [--timeout-s S=60]

Prints one JSON line on stdout; diagnostics go to stderr.
Exit status: 0 ok, 1 failure, 2 usage error."""


def log(msg):
    sys.stderr.write("sluice-py-client: %s\n" % msg)
    sys.stderr.flush()


def emit(obj):
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def _nonneg_int(s):
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError("must be an integer, got %r" % s)
    if v < 0:
        raise argparse.ArgumentTypeError("must be >= 0, got %r" % s)
    return v


def _pos_int(s):
    v = _nonneg_int(s)
    if v < 1:
        raise argparse.ArgumentTypeError("must be >= 1, got %r" % s)
    return v


def _int(s):
    try:
        return int(s)
    except ValueError:
        raise argparse.ArgumentTypeError("must be an integer, got %r" % s)


def _nonneg_float(s):
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a number, got %r" % s)
    if not v >= 0:
        raise argparse.ArgumentTypeError("must be >= 0, got %r" % s)
    return v


def parse_args(argv):
    if not argv:
        raise UsageError("missing command")
    cmd = argv[0]
    if cmd in ("-h", "--help", "help"):
        print(USAGE)
        sys.exit(0)
    p = _Parser(prog="sluice-py-client " + cmd, add_help=False, allow_abbrev=False)
    p.add_argument("--bootstrap", required=True)
    if cmd == "produce":
        p.add_argument("--topic", required=True)
        p.add_argument("--count", required=True, type=_nonneg_int)
        p.add_argument("--size", default=1000, type=_nonneg_int)
        p.add_argument("--seed", default=1, type=_int)
        p.add_argument("--rate", default=0.0, type=_nonneg_float)
    elif cmd == "consume":
        p.add_argument("--topic", required=True)
        p.add_argument("--group", required=True)
        p.add_argument("--count", required=True, type=_nonneg_int)
        p.add_argument("--timeout-s", dest="timeout_s", default=60, type=_nonneg_int)
        p.add_argument("--commit", default="sync", choices=["sync", "auto"])
    elif cmd == "create-topic":
        p.add_argument("--topic", required=True)
        p.add_argument("--partitions", default=1, type=_pos_int)
        p.add_argument("--timeout-s", dest="timeout_s", default=30, type=_nonneg_int)
    elif cmd == "wait-ready":
        p.add_argument("--timeout-s", dest="timeout_s", default=60, type=_nonneg_int)
    else:
        raise UsageError("unknown command: %s" % cmd)
    ns = p.parse_args(argv[1:])
    for name in ("topic", "group", "bootstrap"):
        if getattr(ns, name, None) == "":
            raise UsageError("--%s must not be empty" % name)
    return cmd, ns


def common_config(bootstrap, client_id):
    return {
        "bootstrap.servers": bootstrap,
        "client.id": client_id,
        "reconnect.backoff.ms": 50,
        "reconnect.backoff.max.ms": 1000,
        "retry.backoff.ms": 100,
        "retry.backoff.max.ms": 1000,
        "socket.timeout.ms": 10000,
        "socket.connection.setup.timeout.ms": 5000,
        "topic.metadata.refresh.interval.ms": 30000,
        # librdkafka logs to stderr; keep it at WARNING.
        "log_level": 4,
    }


def make_pool(seed, size):
    need = size + POOL_WINDOW
    parts = []
    have = 0
    j = 0
    while have < need:
        parts.append(hashlib.sha256(("sluice:%d:%d" % (seed, j)).encode()).digest())
        have += 32
        j += 1
    return b"".join(parts)[:need]


def pool_offset(i):
    return ((i % POOL_WINDOW) * OFFSET_MULT) % POOL_WINDOW


# ----------------------------------------------------------------- produce

def produce(a):
    from confluent_kafka import Producer

    conf = common_config(a.bootstrap, "sluice-py-producer")
    conf.update({
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 5,
        "request.timeout.ms": 10000,
        "message.timeout.ms": 120000,
        "message.max.bytes": max(1000000, a.size + 4096),
        "queue.buffering.max.messages": 100000,
    })
    producer = Producer(conf)

    size = a.size
    pool = make_pool(a.seed, size)
    sha256 = hashlib.sha256
    state = {"ok": 0, "errors": 0, "digest": 0, "reported": 0}

    def on_delivery(err, msg):
        if err is not None:
            state["errors"] += 1
            state["reported"] += 1
            if state["reported"] <= 10:
                log("produce error: %s" % err)
        else:
            state["ok"] += 1
            state["digest"] ^= int.from_bytes(sha256(msg.key() + msg.value()).digest(), "big")

    start = time.monotonic()
    last_progress = start
    for i in range(a.count):
        if a.rate > 0:
            target = start + i / a.rate
            now = time.monotonic()
            if target > now:
                # Serve delivery callbacks while waiting.
                producer.poll(target - now)
                now = time.monotonic()
                if target > now:
                    time.sleep(target - now)
        off = pool_offset(i)
        payload = pool[off:off + size]
        value = sha256(payload).digest() + payload
        key = ("%d-%d" % (a.seed, i)).encode()
        while True:
            try:
                producer.produce(a.topic, value=value, key=key, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
        now = time.monotonic()
        if now - last_progress >= PROGRESS_INTERVAL_S:
            last_progress = now
            log("produce progress: sent %d/%d, acked %d, errors %d"
                % (i + 1, a.count, state["ok"], state["errors"]))

    # Wait for every delivery report (bounded by message.timeout.ms).
    while True:
        remaining = producer.flush(2.0)
        if remaining == 0:
            break
        now = time.monotonic()
        if now - last_progress >= PROGRESS_INTERVAL_S:
            last_progress = now
            log("produce: waiting for %d outstanding acks" % remaining)

    errors = state["errors"] + max(0, a.count - state["ok"] - state["errors"])
    emit({
        "client": CLIENT,
        "produced": state["ok"],
        "errors": errors,
        "digest": state["digest"].to_bytes(32, "big").hex(),
    })
    return 0 if errors == 0 and state["ok"] == a.count else 1


# ----------------------------------------------------------------- consume

def consume(a):
    from confluent_kafka import Consumer, KafkaError, KafkaException

    sync_commit = a.commit == "sync"
    conf = common_config(a.bootstrap, "sluice-py-consumer")
    conf.update({
        "group.id": a.group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": not sync_commit,
        "auto.commit.interval.ms": 1000,
        "session.timeout.ms": 10000,
        "heartbeat.interval.ms": 1000,
        "enable.partition.eof": False,
    })
    consumer = Consumer(conf)
    sha256 = hashlib.sha256

    seen = set()
    unique = duplicates = bad = 0
    digest = 0
    start = time.monotonic()
    deadline = start + a.timeout_s
    last_progress = start
    try:
        consumer.subscribe([a.topic])
        while unique < a.count:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            msgs = consumer.consume(num_messages=1000, timeout=min(0.5, left))
            got = False
            for m in msgs:
                err = m.error()
                if err is not None:
                    if err.code() != KafkaError._PARTITION_EOF:
                        log("consume: %s" % err)
                    continue
                got = True
                key = m.key() or b""
                if key in seen:
                    duplicates += 1
                    continue
                seen.add(key)
                unique += 1
                v = m.value() or b""
                if len(v) < 32 or sha256(v[32:]).digest() != v[:32]:
                    bad += 1
                digest ^= int.from_bytes(sha256(key + v).digest(), "big")
            if sync_commit and got:
                try:
                    consumer.commit(asynchronous=False)
                except KafkaException as e:
                    log("commit failed (will retry with the next batch): %s" % e)
            now = time.monotonic()
            if now - last_progress >= PROGRESS_INTERVAL_S:
                last_progress = now
                log("consume progress: %d/%d unique, %d duplicates, %d bad"
                    % (unique, a.count, duplicates, bad))
        if unique < a.count:
            log("timed out after %ss with %d/%d records" % (a.timeout_s, unique, a.count))
    finally:
        try:
            consumer.close()
        except Exception as e:  # noqa: BLE001 - best effort on shutdown
            log("close: %s" % e)
    emit({
        "client": CLIENT,
        "consumed": unique,
        "duplicates": duplicates,
        "bad": bad,
        "digest": digest.to_bytes(32, "big").hex(),
    })
    return 0 if unique == a.count and bad == 0 else 1


# ------------------------------------------------------------------- admin

def _admin(bootstrap):
    from confluent_kafka.admin import AdminClient

    conf = common_config(bootstrap, "sluice-py-admin")
    return AdminClient(conf)


def create_topic(a):
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import NewTopic

    admin = _admin(a.bootstrap)
    deadline = time.monotonic() + a.timeout_s
    created = False
    last_error = None
    done = False
    while not done:
        fut = admin.create_topics(
            [NewTopic(a.topic, num_partitions=a.partitions, replication_factor=-1)],
            request_timeout=10, operation_timeout=10)[a.topic]
        try:
            fut.result()
            created = done = True
        except KafkaException as e:
            err = e.args[0] if e.args else None
            if isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                done = True
            else:
                last_error = str(e)
        except Exception as e:  # noqa: BLE001
            last_error = str(e)
        if not done:
            if time.monotonic() >= deadline:
                break
            log("create-topic: %s (retrying)" % last_error)
            time.sleep(0.5)
    if done:
        # Wait until every partition has a leader so producers can start at once.
        while True:
            try:
                md = admin.list_topics(topic=a.topic, timeout=5)
                t = md.topics.get(a.topic)
                if t is not None and t.error is None and t.partitions and all(
                        p.leader >= 0 for p in t.partitions.values()):
                    emit({"client": CLIENT, "topic": a.topic, "created": created,
                          "partitions": len(t.partitions)})
                    return 0
                last_error = "partitions without leader" if t is None or t.error is None else str(t.error)
            except Exception as e:  # noqa: BLE001
                last_error = str(e)
            if time.monotonic() >= deadline:
                break
            time.sleep(0.2)
    log("create-topic failed: %s" % last_error)
    emit({"client": CLIENT, "topic": a.topic, "created": False, "error": str(last_error)})
    return 1


def wait_ready(a):
    admin = _admin(a.bootstrap)
    start = time.monotonic()
    deadline = start + a.timeout_s
    last_error = "no answer"
    last_log = start
    while True:
        try:
            md = admin.list_topics(timeout=3)
            if md.brokers:
                emit({"client": CLIENT, "ready": True, "brokers": len(md.brokers),
                      "cluster_id": md.cluster_id, "waited_s": round(time.monotonic() - start, 3)})
                return 0
            last_error = "no brokers in metadata"
        except Exception as e:  # noqa: BLE001
            last_error = str(e)
        now = time.monotonic()
        if now >= deadline:
            break
        if now - last_log >= PROGRESS_INTERVAL_S:
            last_log = now
            log("wait-ready: %s" % last_error)
        time.sleep(0.2)
    log("wait-ready: cluster not ready after %ss: %s" % (a.timeout_s, last_error))
    emit({"client": CLIENT, "ready": False, "error": last_error})
    return 1


def main(argv):
    try:
        cmd, a = parse_args(argv)
    except UsageError as e:
        sys.stderr.write("sluice-py-client: %s\n%s\n" % (e, USAGE))
        return 2
    try:
        if cmd == "produce":
            return produce(a)
        if cmd == "consume":
            return consume(a)
        if cmd == "create-topic":
            return create_topic(a)
        return wait_ready(a)
    except KeyboardInterrupt:
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
