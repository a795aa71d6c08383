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
import os
import signal
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
               [--client-id ID=sluice-py-producer]
  consume      --bootstrap H:P --topic T --group G (--count N [--timeout-s S=60] | --duration-s S)
               [--commit sync|async|per-record|auto|none] [--auto-commit-interval-ms MS=1000]
               [--group-protocol classic|consumer] [--session-timeout-ms MS=10000]
               [--max-poll-interval-ms MS] [--process-ms MS=0] [--crash-after N]
               [--client-id ID=sluice-py-consumer]
  consume      --bootstrap H:P --topic T --assign (--count N [--timeout-s S=60] | --duration-s S)
               [--process-ms MS=0] [--crash-after N] [--client-id ID]
  create-topic --bootstrap H:P --topic T [--partitions P=1] [--timeout-s S=30] [--client-id ID=sluice-py-admin]
  wait-ready   --bootstrap H:P [--timeout-s S=60] [--client-id ID=sluice-py-admin]
  produce-json --bootstrap H:P --topic T --count N [--rate PER_SEC=0] [--poison-at I=-1] [--size BYTES=1000]
               [--partition P] [--client-id ID=sluice-py-producer]
  consume-loop --bootstrap H:P --topic T --group G --duration-s S [--max-partition-fetch-bytes N=1048576]
               [--fetch-max-wait-ms MS=500] [--backoff-ms MS=0] [--client-id ID=sluice-py-consumer]
  churn        --bootstrap H:P --topic T --count N [--rate PER_SEC=10] [--no-close] [--client-id ID=sluice-py-churn]

consume commits as --commit says: sync (a synchronous commit after each non-empty
poll, the default), async (an asynchronous commit after each non-empty poll),
per-record (a synchronous commit of each record as it is read), auto (the client's
auto-commit, every --auto-commit-interval-ms) or none (never). sync, async and
per-record also commit once more when the run ends. --assign joins no group: it
assigns every partition of the topic, reads from the earliest offset and never
commits (librdkafka still needs a group.id, so a placeholder "<client-id>-assign" is
set; it is never joined nor committed to).
--duration-s runs for S seconds (or until SIGINT/SIGTERM) instead of until --count
unique records arrived. --process-ms sleeps after each non-empty poll (processing
the batch) before committing it; with --max-poll-interval-ms below it the client
leaves its group on every batch. --crash-after N exits at once (status 3) after N
unique records, without committing them and without closing: a crashing process.
--group-protocol consumer uses KIP-848 (ConsumerGroupHeartbeat; the broker owns the
session timeout); classic uses --session-timeout-ms.

produce-json writes key "json-<i>" and a JSON object value {"i":<i>,"pad":"xx.."} of
about --size bytes; record number --poison-at is malformed JSON instead. Without
--partition the key picks the partition (murmur2, as the Java client does).

consume-loop reproduces a consumer stuck in a redelivery loop: it commits (sync)
the offset after the last record whose value parses as JSON, and on the first
record that does not parse it seeks its partition back to that record without
committing it, so the next poll fetches it (and what follows) again, until
--duration-s ends. --backoff-ms pauses after each failure (default 0).
--fetch-max-wait-ms is the fetch long-poll (fetch.wait.max.ms): librdkafka fetches
ahead, and once that prefetch reaches the log end the re-fetch after a seek waits
for the outstanding long-poll fetch, so it bounds how often librdkafka loops.

churn opens a new producer for every record, sends it, flushes and closes the
producer; with --no-close every producer stays open until the end.

Every command accepts --client-config FILE: librdkafka properties, one KEY=VALUE
a line (# comments; security.protocol, ssl.*, sasl.*, ...), set on every client it
creates, after its own settings.

Prints one JSON line on stdout; diagnostics go to stderr.
SIGINT/SIGTERM stop consume, produce-json, consume-loop and churn early; they still
print their summary.
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
    p.add_argument("--client-id", dest="client_id", default=None)
    p.add_argument("--client-config", dest="client_config", default=None)
    if cmd == "produce":
        p.add_argument("--topic", required=True)
        p.add_argument("--count", required=True, type=_nonneg_int)
        p.add_argument("--size", default=1000, type=_nonneg_int)
        p.add_argument("--seed", default=1, type=_int)
        p.add_argument("--rate", default=0.0, type=_nonneg_float)
    elif cmd == "consume":
        p.add_argument("--topic", required=True)
        p.add_argument("--group", default=None)
        p.add_argument("--assign", action="store_true")
        p.add_argument("--count", default=None, type=_nonneg_int)
        p.add_argument("--timeout-s", dest="timeout_s", default=None, type=_nonneg_int)
        p.add_argument("--duration-s", dest="duration_s", default=None, type=_nonneg_int)
        p.add_argument("--commit", default=None, choices=["sync", "async", "per-record", "auto", "none"])
        p.add_argument("--auto-commit-interval-ms", dest="auto_commit_interval_ms", default=None, type=_pos_int)
        p.add_argument("--group-protocol", dest="group_protocol", default=None, choices=["classic", "consumer"])
        p.add_argument("--session-timeout-ms", dest="session_timeout_ms", default=None, type=_pos_int)
        p.add_argument("--max-poll-interval-ms", dest="max_poll_interval_ms", default=None, type=_pos_int)
        p.add_argument("--process-ms", dest="process_ms", default=0, type=_nonneg_int)
        p.add_argument("--crash-after", dest="crash_after", default=None, type=_pos_int)
    elif cmd == "produce-json":
        p.add_argument("--topic", required=True)
        p.add_argument("--count", required=True, type=_nonneg_int)
        p.add_argument("--rate", default=0.0, type=_nonneg_float)
        p.add_argument("--poison-at", dest="poison_at", default=-1, type=_int)
        p.add_argument("--size", default=1000, type=_nonneg_int)
        p.add_argument("--partition", default=None, type=_nonneg_int)
    elif cmd == "consume-loop":
        p.add_argument("--topic", required=True)
        p.add_argument("--group", required=True)
        p.add_argument("--duration-s", dest="duration_s", required=True, type=_nonneg_int)
        p.add_argument("--max-partition-fetch-bytes", dest="max_partition_fetch_bytes",
                       default=1048576, type=_pos_int)
        p.add_argument("--backoff-ms", dest="backoff_ms", default=0, type=_nonneg_int)
        p.add_argument("--fetch-max-wait-ms", dest="fetch_max_wait_ms", default=500, type=_nonneg_int)
    elif cmd == "churn":
        p.add_argument("--topic", required=True)
        p.add_argument("--count", required=True, type=_nonneg_int)
        p.add_argument("--rate", default=10.0, type=_nonneg_float)
        p.add_argument("--no-close", dest="no_close", action="store_true")
    elif cmd == "create-topic":
        p.add_argument("--topic", required=True)
        p.add_argument("--partitions", default=1, type=_pos_int)
        p.add_argument("--timeout-s", dest="timeout_s", default=30, type=_nonneg_int)
    elif cmd == "wait-ready":
        p.add_argument("--timeout-s", dest="timeout_s", default=60, type=_nonneg_int)
    else:
        raise UsageError("unknown command: %s" % cmd)
    ns = p.parse_args(argv[1:])
    if ns.client_config is not None:
        CLIENT_CONFIG.update(_read_client_config(ns.client_config))
    for name in ("topic", "group", "bootstrap", "client_id"):
        if getattr(ns, name, None) == "":
            raise UsageError("--%s must not be empty" % name.replace("_", "-"))
    if cmd == "consume":
        if ns.assign:
            if ns.group is not None:
                raise UsageError("--group cannot be used with --assign (it joins no group)")
            if ns.commit not in (None, "none"):
                raise UsageError("--assign never commits; --commit must be none (or left out)")
            for opt in ("group_protocol", "session_timeout_ms", "max_poll_interval_ms"):
                if getattr(ns, opt) is not None:
                    raise UsageError("--%s cannot be used with --assign" % opt.replace("_", "-"))
            ns.commit = "none"
        else:
            if ns.group is None:
                raise UsageError("the following arguments are required: --group")
            if ns.commit is None:
                ns.commit = "sync"
        if ns.count is None and ns.duration_s is None:
            raise UsageError("one of --count and --duration-s is required")
        if ns.duration_s is not None and ns.timeout_s is not None:
            raise UsageError("--duration-s replaces --timeout-s")
        if ns.auto_commit_interval_ms is not None and ns.commit != "auto":
            raise UsageError("--auto-commit-interval-ms needs --commit auto")
        if ns.group_protocol == "consumer" and ns.session_timeout_ms is not None:
            raise UsageError("--session-timeout-ms is the broker's with --group-protocol consumer")
    if cmd == "produce-json":
        if ns.poison_at < -1:
            raise UsageError("--poison-at must be >= -1")
        if ns.size > 64 * 1024 * 1024:
            raise UsageError("--size must be <= 67108864")
    return cmd, ns


# Properties from --client-config FILE, set last on every client (security settings).
CLIENT_CONFIG = {}


def _read_client_config(path):
    conf = {}
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                key, sep, value = line.partition("=")
                if not sep:
                    raise UsageError("--client-config %s: not KEY=VALUE: %r" % (path, line))
                conf[key.strip()] = value.strip()
    except OSError as e:
        raise UsageError("--client-config %s: %s" % (path, e))
    return conf


def common_config(bootstrap, client_id):
    conf = {
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
    conf.update(CLIENT_CONFIG)
    return conf


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

    conf = common_config(a.bootstrap, a.client_id or "sluice-py-producer")
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
    from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

    commit = a.commit
    client_id = a.client_id or "sluice-py-consumer"
    by_duration = a.duration_s is not None
    count = a.count if a.count is not None else float("inf")
    run_s = a.duration_s if by_duration else (a.timeout_s if a.timeout_s is not None else 60)
    conf = common_config(a.bootstrap, client_id)
    conf.update({
        # librdkafka insists on a group.id; with --assign it is never joined nor committed to.
        "group.id": a.group if not a.assign else client_id + "-assign",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": commit == "auto",
        "auto.commit.interval.ms": a.auto_commit_interval_ms or 1000,
        "enable.partition.eof": False,
    })
    if a.group_protocol == "consumer":
        # KIP-848: the broker owns session timing and assignment.
        conf["group.protocol"] = "consumer"
    else:
        session = a.session_timeout_ms or 10000
        conf.update({
            "session.timeout.ms": session,
            "heartbeat.interval.ms": max(1, min(1000, session // 3)),
        })
    if a.max_poll_interval_ms is not None:
        conf["max.poll.interval.ms"] = a.max_poll_interval_ms
    st = {"commits": 0, "commit_errors": 0, "assignments": 0}

    def on_commit(err, _partitions):
        # Called from poll/consume for async commits (and auto-commits).
        if err is None:
            st["commits"] += 1
        elif err.code() != KafkaError._NO_OFFSET:
            st["commit_errors"] += 1
            log("commit: %s" % err)

    def on_assign(_consumer, _partitions):
        st["assignments"] += 1

    if commit in ("async", "auto"):
        conf["on_commit"] = on_commit
    consumer = Consumer(conf)
    sha256 = hashlib.sha256

    def commit_sync(**kw):
        try:
            consumer.commit(asynchronous=False, **kw)
            st["commits"] += 1
        except KafkaException as e:
            err = e.args[0] if e.args else None
            if isinstance(err, KafkaError) and err.code() == KafkaError._NO_OFFSET:
                return  # nothing new to commit
            st["commit_errors"] += 1
            log("commit failed (will commit again later): %s" % e)

    seen = set()
    unique = duplicates = bad = polls = 0
    digest = 0
    start = time.monotonic()
    deadline = start + run_s
    last_progress = start
    try:
        if a.assign:
            from confluent_kafka import OFFSET_BEGINNING
            parts = _partitions_of(consumer, a.topic, deadline)
            consumer.assign([TopicPartition(a.topic, p, OFFSET_BEGINNING) for p in parts])
        else:
            consumer.subscribe([a.topic], on_assign=on_assign)
        while unique < count and not _stop["requested"]:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            msgs = consumer.consume(num_messages=1000, timeout=min(0.5, left))
            polls += 1
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
                else:
                    seen.add(key)
                    unique += 1
                    v = m.value() or b""
                    if len(v) < 32 or sha256(v[32:]).digest() != v[:32]:
                        bad += 1
                    digest ^= int.from_bytes(sha256(key + v).digest(), "big")
                if a.crash_after is not None and unique >= a.crash_after:
                    # A process dying mid-batch: no commit, no close, no LeaveGroup.
                    emit({"client": CLIENT, "crashed": True, "consumed": unique, "commits": st["commits"]})
                    sys.stderr.flush()
                    os._exit(3)
                if commit == "per-record":
                    commit_sync(message=m)
            if not got:
                continue
            if a.process_ms > 0:
                _sleep_until(time.monotonic() + a.process_ms / 1000.0)
            if commit == "sync":
                commit_sync()
            elif commit == "async":
                try:
                    consumer.commit(asynchronous=True)
                except KafkaException as e:
                    st["commit_errors"] += 1
                    log("async commit failed: %s" % e)
            now = time.monotonic()
            if now - last_progress >= PROGRESS_INTERVAL_S:
                last_progress = now
                log("consume progress: %d/%s unique, %d duplicates, %d bad, %d commits"
                    % (unique, "-" if by_duration else a.count, duplicates, bad, st["commits"]))
        if not by_duration and unique < count:
            log("timed out after %ss with %d/%d records" % (run_s, unique, a.count))
        if commit in ("sync", "async", "per-record"):
            commit_sync()
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
        "polls": polls,
        "commits": st["commits"],
        "commit_errors": st["commit_errors"],
        "assignments": st["assignments"],
        "elapsed_s": round(time.monotonic() - start, 1),
    })
    if by_duration:
        return 0 if bad == 0 and (a.count is None or unique == a.count) else 1
    return 0 if unique == a.count and bad == 0 else 1


def _partitions_of(client, topic, deadline):
    """Partition ids of topic, waiting (until deadline) for it to have metadata."""
    last = "no metadata"
    while True:
        try:
            md = client.list_topics(topic=topic, timeout=5)
            t = md.topics.get(topic)
            if t is not None and t.error is None and t.partitions:
                return sorted(t.partitions)
            last = "no partitions" if t is None or t.error is None else str(t.error)
        except Exception as e:  # noqa: BLE001
            last = str(e)
        if time.monotonic() >= deadline:
            raise RuntimeError("topic %s: %s" % (topic, last))
        time.sleep(0.2)


# --------------------------------------------------- stop on SIGINT/SIGTERM

_stop = {"requested": False}


def _stop_on_signal():
    """SIGINT/SIGTERM ask the running command to stop; it still prints its summary."""
    def handler(signum, _frame):
        _stop["requested"] = True
    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def _sleep_until(target):
    while not _stop["requested"]:
        left = target - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(left, 0.1))


# ------------------------------------------------------------ produce-json

def json_value(i, size, poison):
    """{"i":<i>,"pad":"xx.."} padded with 'x' to size bytes (never shorter than the
    bare object); the poison record reads {"i":<i>, BROKEN,"pad":"xx.."} instead."""
    head = '{"i":%d%s,"pad":"' % (i, ", BROKEN" if poison else "")
    tail = '"}'
    return (head + "x" * max(0, size - len(head) - len(tail)) + tail).encode()


def produce_json(a):
    from confluent_kafka import Producer

    conf = common_config(a.bootstrap, a.client_id or "sluice-py-producer")
    conf.update({
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 5,
        "request.timeout.ms": 10000,
        "message.timeout.ms": 120000,
        "message.max.bytes": max(1000000, a.size + 4096),
        "queue.buffering.max.messages": 100000,
        # Same key -> partition mapping as the Java and franz-go producers.
        "partitioner": "murmur2_random",
    })
    producer = Producer(conf)
    state = {"ok": 0, "errors": 0, "reported": 0, "poison": None}

    def on_delivery(err, msg):
        if err is not None:
            state["errors"] += 1
            state["reported"] += 1
            if state["reported"] <= 10:
                log("produce error: %s" % err)
            return
        state["ok"] += 1
        if msg.key() == poison_key:
            state["poison"] = (msg.partition(), msg.offset())

    poison_key = ("json-%d" % a.poison_at).encode() if a.poison_at >= 0 else None
    extra = {} if a.partition is None else {"partition": a.partition}
    sent = 0
    start = time.monotonic()
    last_progress = start
    for i in range(a.count):
        if a.rate > 0:
            target = start + i / a.rate
            while not _stop["requested"] and time.monotonic() < target:
                producer.poll(min(0.1, max(0.0, target - time.monotonic())))
        if _stop["requested"]:
            break
        key = ("json-%d" % i).encode()
        value = json_value(i, a.size, i == a.poison_at)
        while True:
            try:
                producer.produce(a.topic, value=value, key=key, on_delivery=on_delivery, **extra)
                break
            except BufferError:
                producer.poll(0.05)
        sent += 1
        producer.poll(0)
        now = time.monotonic()
        if now - last_progress >= PROGRESS_INTERVAL_S:
            last_progress = now
            log("produce-json progress: sent %d/%d, acked %d, errors %d"
                % (i + 1, a.count, state["ok"], state["errors"]))
    while producer.flush(2.0) > 0:
        log("produce-json: waiting for outstanding acks")
    errors = state["errors"] + max(0, sent - state["ok"] - state["errors"])
    out = {"client": CLIENT, "produced": state["ok"], "errors": errors}
    if state["poison"] is not None:
        out["poison_partition"], out["poison_offset"] = state["poison"]
    emit(out)
    return 0 if errors == 0 and state["ok"] == a.count else 1


# ------------------------------------------------------------ consume-loop

def consume_loop(a):
    from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

    fetch_bytes = a.max_partition_fetch_bytes
    conf = common_config(a.bootstrap, a.client_id or "sluice-py-consumer")
    conf.update({
        "group.id": a.group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "session.timeout.ms": 10000,
        "heartbeat.interval.ms": 1000,
        "enable.partition.eof": False,
        "max.partition.fetch.bytes": fetch_bytes,
        "fetch.wait.max.ms": a.fetch_max_wait_ms,
        "fetch.max.bytes": max(52428800, fetch_bytes),
        "receive.message.max.bytes": max(100000000, fetch_bytes + 1048576),
    })
    topic = a.topic
    stuck = {}         # partition -> offset of the record that keeps failing
    seek_pending = {}  # partition -> offset whose seek could not be done yet
    committed = {}
    st = {"polls": 0, "seen": 0, "processed": 0, "failures": 0, "bytes": 0, "commit_errors": 0,
          "stale": 0}

    def on_assign(consumer, partitions):
        # A partition (re)assigned while stuck resumes at the failing record, so a
        # seek lost to a rebalance is not lost for good.
        changed = False
        for tp in partitions:
            if tp.partition in stuck:
                tp.offset = stuck[tp.partition]
                seek_pending.pop(tp.partition, None)
                changed = True
        if changed:
            consumer.assign(partitions)

    consumer = Consumer(conf)

    def seek(p, off):
        """Seeks p back to off. librdkafka refuses a seek on a partition whose fetcher
        is not started yet (assign race) with _STATE: retry briefly, else remember it."""
        for attempt in range(20):
            try:
                consumer.seek(TopicPartition(topic, p, off))
                seek_pending.pop(p, None)
                return
            except KafkaException as e:
                err = e.args[0] if e.args else None
                code = err.code() if isinstance(err, KafkaError) else None
                if code == KafkaError._STATE and attempt < 19:
                    time.sleep(0.01)
                    continue
                log("seek %s/%d to %d failed (will retry): %s" % (topic, p, off, e))
                seek_pending[p] = off
                return

    start = time.monotonic()
    deadline = start + a.duration_s
    last_progress = start
    try:
        consumer.subscribe([topic], on_assign=on_assign)
        while not _stop["requested"]:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            # librdkafka counts whole milliseconds: a shorter timeout would spin.
            msgs = consumer.consume(num_messages=500, timeout=max(0.002, min(0.5, left)))
            st["polls"] += 1
            last_good = {}
            failed_now = set()
            for m in msgs:
                err = m.error()
                if err is not None:
                    log("consume: %s" % err)
                    continue
                st["seen"] += 1
                v = m.value()
                st["bytes"] += len(v) if v else 0
                p = m.partition()
                off = m.offset()
                if p in failed_now:
                    continue  # the rest of the batch for a partition that just failed
                if p in stuck and off > stuck[p]:
                    # Fetched from before the seek took effect: not ours to process.
                    st["stale"] += 1
                    if p in seek_pending:
                        seek(p, stuck[p])
                    continue
                try:
                    json.loads(v)
                    ok = True
                except (ValueError, TypeError):
                    ok = False
                if ok:
                    st["processed"] += 1
                    last_good[p] = off
                    if p in stuck and off >= stuck[p]:
                        del stuck[p]
                    continue
                # The listener threw: seek back to the failed record, do not commit it.
                st["failures"] += 1
                failed_now.add(p)
                stuck[p] = off
                seek(p, off)
            if last_good:
                offsets = [TopicPartition(topic, p, off + 1) for p, off in last_good.items()]
                try:
                    res = consumer.commit(offsets=offsets, asynchronous=False)
                    for tp in res or []:
                        if tp.error is None:
                            committed[tp.partition] = tp.offset
                        else:
                            st["commit_errors"] += 1
                            log("commit %s/%d: %s" % (tp.topic, tp.partition, tp.error))
                except KafkaException as e:
                    st["commit_errors"] += 1
                    log("commit failed: %s" % e)
            now = time.monotonic()
            if now - last_progress >= PROGRESS_INTERVAL_S:
                last_progress = now
                log("consume-loop progress: %d polls, %d records seen, %d failures, committed %s, stuck at %s"
                    % (st["polls"], st["seen"], st["failures"], committed, stuck))
            if failed_now and a.backoff_ms > 0:
                _sleep_until(min(deadline, now + a.backoff_ms / 1000.0))
    finally:
        try:
            consumer.close()
        except Exception as e:  # noqa: BLE001 - best effort on shutdown
            log("close: %s" % e)
    emit({
        "client": CLIENT,
        "polls": st["polls"],
        "records_seen": st["seen"],
        "failures": st["failures"],
        "committed": {str(p): committed[p] for p in sorted(committed)},
        "stuck_at": {str(p): stuck[p] for p in sorted(stuck)},
        "processed": st["processed"],
        "bytes_seen": st["bytes"],
        "commit_errors": st["commit_errors"],
        "stale": st["stale"],
    })
    return 0


# ------------------------------------------------------------------- churn

def churn(a):
    from confluent_kafka import Producer

    # librdkafka's defaults otherwise (no idempotence), as a typical short-lived
    # producer would use them.
    conf = common_config(a.bootstrap, a.client_id or "sluice-py-churn")
    conf.update({
        "acks": "all",
        "linger.ms": 0,
        "message.timeout.ms": 30000,
    })
    open_producers = []
    producers = sent = errors = 0
    start = time.monotonic()
    last_progress = start
    try:
        for i in range(a.count):
            if a.rate > 0:
                _sleep_until(start + i / a.rate)
            if _stop["requested"]:
                break
            try:
                producer = Producer(conf)
            except Exception as e:  # noqa: BLE001
                errors += 1
                log("new producer: %s" % e)
                continue
            producers += 1
            result = {}

            def on_delivery(err, _msg, result=result):
                result["err"] = err

            try:
                producer.produce(a.topic, key=("churn-%d" % i).encode(),
                                 value=('{"i":%d}' % i).encode(), on_delivery=on_delivery)
                producer.flush(30)
                if result.get("err", "no delivery report") is None:
                    sent += 1
                else:
                    errors += 1
                    if errors <= 10:
                        log("churn send %d: %s" % (i, result.get("err", "no delivery report")))
            except Exception as e:  # noqa: BLE001
                errors += 1
                if errors <= 10:
                    log("churn send %d: %s" % (i, e))
            if a.no_close:
                open_producers.append(producer)
            else:
                producer.close()
            now = time.monotonic()
            if now - last_progress >= PROGRESS_INTERVAL_S:
                last_progress = now
                log("churn progress: %d/%d producers, %d sent, %d errors, %d open"
                    % (producers, a.count, sent, errors, len(open_producers)))
    finally:
        for producer in open_producers:
            try:
                producer.close()
            except Exception as e:  # noqa: BLE001
                log("close: %s" % e)
    emit({"client": CLIENT, "producers": producers, "sent": sent, "errors": errors})
    return 0 if errors == 0 and sent == a.count else 1


# ------------------------------------------------------------------- admin

def _admin(bootstrap, client_id=None):
    from confluent_kafka.admin import AdminClient

    conf = common_config(bootstrap, client_id or "sluice-py-admin")
    return AdminClient(conf)


def create_topic(a):
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import NewTopic

    admin = _admin(a.bootstrap, a.client_id)
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
    admin = _admin(a.bootstrap, a.client_id)
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
        if cmd == "create-topic":
            return create_topic(a)
        if cmd == "wait-ready":
            return wait_ready(a)
        _stop_on_signal()
        if cmd == "consume":
            return consume(a)
        if cmd == "produce-json":
            return produce_json(a)
        if cmd == "consume-loop":
            return consume_loop(a)
        return churn(a)
    except KeyboardInterrupt:
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
