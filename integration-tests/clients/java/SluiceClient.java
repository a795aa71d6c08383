// Sluice integration-test client built on the Apache Kafka Java client.
//
// The same command-line contract is implemented by
//   integration-tests/clients/python/sluice_client.py  (librdkafka)
//   integration-tests/clients/go/main.go               (franz-go)
// so that tests can swap clients freely. See usage() below.
//
// Record format (identical in all three clients, so the same seed/size/count
// gives the same producer digest whichever client produced it):
//   pool(seed, size) = SHA-256("sluice:<seed>:0") ++ SHA-256("sluice:<seed>:1") ++ ...
//                      truncated to size + 65536 bytes
//   payload(i)       = pool[off .. off + size), off = ((i mod 65536) * 31153) mod 65536
//   key(i)           = UTF-8 "<seed>-<i>"
//   value(i)         = SHA-256(payload(i)) ++ payload(i)
//   digest           = hex(XOR over records of SHA-256(key ++ value))
//
// Exit codes: 0 success, 1 failure (errors, bad records, timeout), 2 usage error.

import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.Collection;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicLong;

import org.apache.kafka.clients.CommonClientConfigs;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.DescribeClusterOptions;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.DescribeTopicsOptions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.errors.RetriableException;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.utils.Utils;

public final class SluiceClient {
    private static final String CLIENT = "java";
    private static final int POOL_WINDOW = 65536;
    private static final int OFFSET_MULT = 31153;

    private static final String USAGE = String.join("\n",
        "usage: sluice-java-client COMMAND [OPTIONS]",
        "",
        "commands:",
        "  produce      --bootstrap H:P --topic T --count N [--size BYTES=1000] [--seed S=1] [--rate PER_SEC=0]",
        "               [--client-id ID=sluice-java-producer]",
        "  consume      --bootstrap H:P --topic T --group G (--count N [--timeout-s S=60] | --duration-s S)",
        "               [--commit sync|async|per-record|auto|none] [--auto-commit-interval-ms MS=1000]",
        "               [--group-protocol classic|consumer] [--session-timeout-ms MS=10000]",
        "               [--max-poll-interval-ms MS] [--process-ms MS=0] [--crash-after N]",
        "               [--client-id ID=sluice-java-consumer]",
        "  consume      --bootstrap H:P --topic T --assign (--count N [--timeout-s S=60] | --duration-s S)",
        "               [--process-ms MS=0] [--crash-after N] [--client-id ID]",
        "  create-topic --bootstrap H:P --topic T[,T...] [--partitions P=1] [--timeout-s S=30]",
        "               [--client-id ID=sluice-java-admin]",
        "  describe     --bootstrap H:P [--topic T[,T...]] [--group G[,G...]] [--timeout-s S=30]",
        "               [--client-id ID=sluice-java-admin]",
        "  wait-ready   --bootstrap H:P [--timeout-s S=60] [--client-id ID=sluice-java-admin]",
        "  produce-json --bootstrap H:P --topic T --count N [--rate PER_SEC=0] [--poison-at I=-1] [--size BYTES=1000]",
        "               [--partition P] [--client-id ID=sluice-java-producer]",
        "  consume-loop --bootstrap H:P --topic T --group G --duration-s S [--max-partition-fetch-bytes N=1048576]",
        "               [--fetch-max-wait-ms MS=500] [--backoff-ms MS=0] [--group-protocol classic|consumer]",
        "               [--client-id ID=sluice-java-consumer]",
        "  churn        --bootstrap H:P --topic T --count N [--rate PER_SEC=10] [--no-close] [--client-id ID=sluice-java-churn]",
        "",
        "consume commits as --commit says: sync (commitSync after each non-empty poll, the",
        "default), async (commitAsync after each non-empty poll), per-record (commitSync of",
        "each record as it is read), auto (the client's auto-commit, every",
        "--auto-commit-interval-ms) or none (never). sync, async and per-record also commit",
        "once more when the run ends. --assign uses no group: it assigns every partition of",
        "the topic, reads from the earliest offset and never commits.",
        "--duration-s runs for S seconds (or until SIGINT/SIGTERM) instead of until --count",
        "unique records arrived. --process-ms sleeps after each non-empty poll (processing",
        "the batch) before committing it; with --max-poll-interval-ms below it the client",
        "leaves its group on every batch. --crash-after N exits at once (status 3) after N",
        "unique records, without committing them and without closing: a crashing process.",
        "--group-protocol consumer uses KIP-848 (ConsumerGroupHeartbeat; the broker owns the",
        "session timeout); classic uses --session-timeout-ms.",
        "",
        "create-topic creates every listed topic with the broker's default replication",
        "factor and waits until each partition has a leader.",
        "",
        "describe prints the cluster's brokers, each listed topic's partitions (leader,",
        "replicas, in-sync replicas) and each listed group's coordinator, as",
        "{\"brokers\":[{\"id\",\"host\",\"port\"}],\"controller\":ID,",
        "\"topics\":{T:[{\"partition\",\"leader\",\"replicas\",\"isr\"}]},\"coordinators\":{G:ID}}.",
        "",
        "produce-json writes key \"json-<i>\" and a JSON object value {\"i\":<i>,\"pad\":\"xx..\"} of",
        "about --size bytes; record number --poison-at is malformed JSON instead. Without",
        "--partition the default (key hash) partitioner picks the partition.",
        "",
        "consume-loop reproduces a consumer stuck in a redelivery loop: it commits (sync)",
        "the offset after the last record whose value parses as JSON, and on the first",
        "record that does not parse it seeks its partition back to that record without",
        "committing it, so the next poll fetches it (and what follows) again, until",
        "--duration-s ends. --backoff-ms pauses after each failure (default 0, like",
        "an error handler with no back-off). --fetch-max-wait-ms is the fetch long-poll",
        "(fetch.max.wait.ms).",
        "",
        "churn opens a new producer for every record, sends it, flushes and closes the",
        "producer; with --no-close every producer stays open until the end.",
        "",
        "wait-ready also accepts --bootstrap-controller H:P instead of --bootstrap: it",
        "then asks the KRaft controller listener, which answers before anything",
        "listens on the broker's advertised address.",
        "",
        "Every command accepts --client-config FILE: Java properties (security.protocol,",
        "ssl.*, sasl.*, ...) set on every client it creates, after its own settings.",
        "",
        "Prints one JSON line on stdout; diagnostics go to stderr.",
        "SIGINT/SIGTERM stop consume, produce-json, consume-loop and churn early; they still",
        "print their summary.",
        "Exit status: 0 ok, 1 failure, 2 usage error.");

    private static final class UsageException extends Exception {
        UsageException(String msg) { super(msg); }
    }

    // ------------------------------------------------------------------ args

    private static final class Args {
        final Map<String, String> values = new HashMap<>();

        static Args parse(String[] argv, int from, Set<String> allowed) throws UsageException {
            return parse(argv, from, allowed, Collections.emptySet());
        }

        /** Options in {@code flags} take no value (present means "true"). */
        static Args parse(String[] argv, int from, Set<String> allowed, Set<String> flags) throws UsageException {
            Args a = new Args();
            for (int i = from; i < argv.length; i++) {
                String arg = argv[i];
                if (!arg.startsWith("--")) throw new UsageException("unexpected argument: " + arg);
                String name = arg.substring(2);
                String value;
                int eq = name.indexOf('=');
                if (flags.contains(eq >= 0 ? name.substring(0, eq) : name)) {
                    if (eq >= 0) throw new UsageException("option --" + name.substring(0, eq) + " takes no value");
                    a.values.put(name, "true");
                    continue;
                }
                if (eq >= 0) {
                    value = name.substring(eq + 1);
                    name = name.substring(0, eq);
                } else {
                    if (i + 1 >= argv.length) throw new UsageException("option --" + name + " needs a value");
                    value = argv[++i];
                }
                if (name.equals("client-config")) {
                    loadClientConfig(value);
                    continue;
                }
                if (!allowed.contains(name)) throw new UsageException("unknown option: --" + name);
                a.values.put(name, value);
            }
            return a;
        }

        String str(String name) throws UsageException {
            String v = values.get(name);
            if (v == null || v.isEmpty()) throw new UsageException("missing required option --" + name);
            return v;
        }

        String str(String name, String def) {
            String v = values.get(name);
            return v == null ? def : v;
        }

        boolean has(String name) {
            return values.containsKey(name);
        }

        boolean flag(String name) {
            return values.containsKey(name);
        }

        /** The --client-id option (must not be empty), or def. */
        String clientId(String def) throws UsageException {
            String v = values.get("client-id");
            if (v == null) return def;
            if (v.isEmpty()) throw new UsageException("--client-id must not be empty");
            return v;
        }

        long num(String name, Long def, long min) throws UsageException {
            String v = values.get(name);
            if (v == null) {
                if (def == null) throw new UsageException("missing required option --" + name);
                return def;
            }
            long n;
            try {
                n = Long.parseLong(v.trim());
            } catch (NumberFormatException e) {
                throw new UsageException("--" + name + " must be an integer, got: " + v);
            }
            if (n < min) throw new UsageException("--" + name + " must be >= " + min + ", got: " + v);
            return n;
        }

        double dbl(String name, double def, double min) throws UsageException {
            String v = values.get(name);
            if (v == null) return def;
            double d;
            try {
                d = Double.parseDouble(v.trim());
            } catch (NumberFormatException e) {
                throw new UsageException("--" + name + " must be a number, got: " + v);
            }
            if (!(d >= min)) throw new UsageException("--" + name + " must be >= " + min + ", got: " + v);
            return d;
        }
    }

    // --------------------------------------------------------------- helpers

    private static MessageDigest sha256() {
        try {
            return MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    static byte[] pool(long seed, int size) {
        int len = size + POOL_WINDOW;
        byte[] out = new byte[len];
        MessageDigest md = sha256();
        int pos = 0;
        for (long j = 0; pos < len; j++) {
            byte[] block = md.digest(("sluice:" + seed + ":" + j).getBytes(StandardCharsets.UTF_8));
            int n = Math.min(block.length, len - pos);
            System.arraycopy(block, 0, out, pos, n);
            pos += n;
        }
        return out;
    }

    static int poolOffset(long i) {
        return (int) (((i % POOL_WINDOW) * OFFSET_MULT) % POOL_WINDOW);
    }

    private static void xorInto(byte[] acc, byte[] d) {
        for (int k = 0; k < acc.length; k++) acc[k] ^= d[k];
    }

    private static String hex(byte[] b) {
        StringBuilder sb = new StringBuilder(b.length * 2);
        for (byte x : b) sb.append(String.format("%02x", x & 0xff));
        return sb.toString();
    }

    private static String jsonString(String s) {
        StringBuilder sb = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            switch (c) {
                case '"': sb.append("\\\""); break;
                case '\\': sb.append("\\\\"); break;
                case '\n': sb.append("\\n"); break;
                case '\r': sb.append("\\r"); break;
                case '\t': sb.append("\\t"); break;
                default:
                    if (c < 0x20) sb.append(String.format("\\u%04x", (int) c));
                    else sb.append(c);
            }
        }
        return sb.append('"').toString();
    }

    private static void log(String msg) {
        System.err.println("sluice-java-client: " + msg);
        System.err.flush();
    }

    private static void emit(String json) {
        System.out.println(json);
        System.out.flush();
    }

    /** Properties from --client-config FILE, applied last to every client (security settings). */
    private static final Properties CLIENT_CONFIG = new Properties();

    private static void loadClientConfig(String path) throws UsageException {
        try (java.io.Reader r = java.nio.file.Files.newBufferedReader(java.nio.file.Paths.get(path),
                StandardCharsets.UTF_8)) {
            CLIENT_CONFIG.load(r);
        } catch (java.io.IOException e) {
            throw new UsageException("--client-config " + path + ": " + e);
        }
    }

    private static void common(Properties p, String bootstrap, String clientId) {
        p.put(CommonClientConfigs.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(CommonClientConfigs.CLIENT_ID_CONFIG, clientId);
        p.put(CommonClientConfigs.RECONNECT_BACKOFF_MS_CONFIG, "50");
        p.put(CommonClientConfigs.RECONNECT_BACKOFF_MAX_MS_CONFIG, "1000");
        p.put(CommonClientConfigs.RETRY_BACKOFF_MS_CONFIG, "100");
        p.put(CommonClientConfigs.RETRY_BACKOFF_MAX_MS_CONFIG, "1000");
        p.put(CommonClientConfigs.REQUEST_TIMEOUT_MS_CONFIG, "10000");
        p.put(CommonClientConfigs.SOCKET_CONNECTION_SETUP_TIMEOUT_MS_CONFIG, "5000");
        p.put(CommonClientConfigs.SOCKET_CONNECTION_SETUP_TIMEOUT_MAX_MS_CONFIG, "10000");
        p.put(CommonClientConfigs.METADATA_MAX_AGE_CONFIG, "30000");
        p.putAll(CLIENT_CONFIG);
    }

    private static Throwable rootCause(Throwable t) {
        while (t instanceof ExecutionException && t.getCause() != null) t = t.getCause();
        return t;
    }

    // --------------------------------------------------------------- produce

    private static Properties producerProps(String bootstrap, String clientId, int size) {
        Properties p = new Properties();
        common(p, bootstrap, clientId);
        p.put(ProducerConfig.ACKS_CONFIG, "all");
        p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
        p.put(ProducerConfig.LINGER_MS_CONFIG, "5");
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "120000");
        p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "60000");
        p.put(ProducerConfig.MAX_REQUEST_SIZE_CONFIG, String.valueOf(Math.max(1048576, size + 4096)));
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        return p;
    }

    private static int produce(Args a) throws Exception {
        String bootstrap = a.str("bootstrap");
        String topic = a.str("topic");
        long count = a.num("count", null, 0);
        long sizeL = a.num("size", 1000L, 0);
        if (sizeL > 64L * 1024 * 1024) throw new UsageException("--size must be <= 67108864");
        int size = (int) sizeL;
        long seed = a.num("seed", 1L, Long.MIN_VALUE);
        double rate = a.dbl("rate", 0.0, 0.0);

        Properties p = producerProps(bootstrap, a.clientId("sluice-java-producer"), size);

        byte[] pool = pool(seed, size);
        MessageDigest md = sha256();
        final byte[] digest = new byte[32];
        final AtomicLong ok = new AtomicLong();
        final AtomicLong errors = new AtomicLong();
        final AtomicLong reported = new AtomicLong();

        long start = System.nanoTime();
        long lastProgress = start;
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(p)) {
            for (long i = 0; i < count; i++) {
                if (rate > 0) {
                    long target = start + (long) (i * 1e9 / rate);
                    long now = System.nanoTime();
                    if (target > now) TimeUnit.NANOSECONDS.sleep(target - now);
                }
                int off = poolOffset(i);
                byte[] value = new byte[32 + size];
                md.update(pool, off, size);
                md.digest(value, 0, 32);
                System.arraycopy(pool, off, value, 32, size);
                byte[] key = (seed + "-" + i).getBytes(StandardCharsets.UTF_8);
                md.update(key);
                md.update(value);
                final byte[] recDigest = md.digest();
                producer.send(new ProducerRecord<>(topic, key, value), (meta, ex) -> {
                    if (ex != null) {
                        errors.incrementAndGet();
                        if (reported.incrementAndGet() <= 10) log("produce error: " + ex);
                    } else {
                        synchronized (digest) {
                            xorInto(digest, recDigest);
                        }
                        ok.incrementAndGet();
                    }
                });
                long now = System.nanoTime();
                if (now - lastProgress > 2_000_000_000L) {
                    lastProgress = now;
                    log("produce progress: sent " + (i + 1) + "/" + count + ", acked " + ok.get()
                        + ", errors " + errors.get());
                }
            }
            producer.flush();
        } catch (Exception e) {
            log("producer failed: " + e);
            long missing = count - ok.get() - errors.get();
            if (missing > 0) errors.addAndGet(missing);
        }
        long produced = ok.get();
        long errs = errors.get();
        String hexDigest;
        synchronized (digest) {
            hexDigest = hex(digest);
        }
        emit("{\"client\":\"" + CLIENT + "\",\"produced\":" + produced + ",\"errors\":" + errs
            + ",\"digest\":\"" + hexDigest + "\"}");
        return errs == 0 && produced == count ? 0 : 1;
    }

    // --------------------------------------------------------------- consume

    /** Remembers which keys were seen; compact for the "<seed>-<i>" keys the producer writes. */
    private static final class SeenKeys {
        private final Map<String, BitSet> bySeed = new HashMap<>();
        private final Set<String> other = new HashSet<>();

        /** Returns true if the key was not seen before. */
        boolean add(byte[] keyBytes) {
            String key = keyBytes == null ? "" : new String(keyBytes, StandardCharsets.UTF_8);
            int dash = key.lastIndexOf('-');
            if (dash > 0 && dash < key.length() - 1) {
                String idx = key.substring(dash + 1);
                if (idx.length() <= 9 && idx.chars().allMatch(Character::isDigit)
                        && (idx.length() == 1 || idx.charAt(0) != '0')) {
                    int i = Integer.parseInt(idx);
                    BitSet bs = bySeed.computeIfAbsent(key.substring(0, dash), k -> new BitSet());
                    if (bs.get(i)) return false;
                    bs.set(i);
                    return true;
                }
            }
            return other.add(key);
        }
    }

    /** What a consume run does with offsets (--commit). */
    private enum Commit { SYNC, ASYNC, PER_RECORD, AUTO, NONE }

    private static Commit commitMode(String s) throws UsageException {
        switch (s) {
            case "sync": return Commit.SYNC;
            case "async": return Commit.ASYNC;
            case "per-record": return Commit.PER_RECORD;
            case "auto": return Commit.AUTO;
            case "none": return Commit.NONE;
            default:
                throw new UsageException("--commit must be sync, async, per-record, auto or none, got: " + s);
        }
    }

    private static int consume(Args a) throws Exception {
        String bootstrap = a.str("bootstrap");
        String topic = a.str("topic");
        boolean assign = a.flag("assign");
        String group = null;
        if (assign) {
            if (a.has("group")) throw new UsageException("--group cannot be used with --assign (it uses no group)");
            for (String o : new String[] {"group-protocol", "max-poll-interval-ms", "session-timeout-ms"})
                if (a.has(o)) throw new UsageException("--" + o + " cannot be used with --assign");
        } else {
            group = a.str("group");
        }
        boolean byDuration = a.has("duration-s");
        if (!byDuration && !a.has("count")) throw new UsageException("one of --count and --duration-s is required");
        if (byDuration && a.has("timeout-s")) throw new UsageException("--duration-s replaces --timeout-s");
        long count = a.num("count", Long.MAX_VALUE, 0);
        long timeoutS = byDuration ? a.num("duration-s", null, 0) : a.num("timeout-s", 60L, 0);
        Commit commit = commitMode(a.str("commit", assign ? "none" : "sync"));
        if (assign && commit != Commit.NONE)
            throw new UsageException("--assign never commits; --commit must be none (or left out)");
        if (a.has("auto-commit-interval-ms") && commit != Commit.AUTO)
            throw new UsageException("--auto-commit-interval-ms needs --commit auto");
        long autoCommitMs = a.num("auto-commit-interval-ms", 1000L, 1);
        long processMs = a.num("process-ms", 0L, 0);
        long crashAfter = a.num("crash-after", 0L, 1);
        String clientId = a.clientId("sluice-java-consumer");

        Properties p = new Properties();
        common(p, bootstrap, clientId);
        if (group != null) {
            p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
            groupProtocol(p, a);
            if (a.has("max-poll-interval-ms"))
                p.put(ConsumerConfig.MAX_POLL_INTERVAL_MS_CONFIG, String.valueOf(a.num("max-poll-interval-ms", null, 1)));
        }
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, commit == Commit.AUTO ? "true" : "false");
        p.put(ConsumerConfig.AUTO_COMMIT_INTERVAL_MS_CONFIG, String.valueOf(autoCommitMs));
        p.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "20000");
        p.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, "1000");
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());

        MessageDigest md = sha256();
        byte[] digest = new byte[32];
        byte[] check = new byte[32];
        SeenKeys seen = new SeenKeys();
        long unique = 0, duplicates = 0, bad = 0, polls = 0, commits = 0, commitErrors = 0;
        final long[] async = {0, 0}; // commits, errors reported by commitAsync callbacks
        final long[] assignments = {0};

        long start = System.nanoTime();
        long deadline = start + TimeUnit.SECONDS.toNanos(timeoutS);
        long lastProgress = start;
        KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(p);
        try {
            if (assign) {
                List<TopicPartition> tps = partitionsOf(consumer, topic, deadline);
                consumer.assign(tps);
                consumer.seekToBeginning(tps);
            } else {
                consumer.subscribe(Collections.singletonList(topic), new ConsumerRebalanceListener() {
                    @Override
                    public void onPartitionsRevoked(Collection<TopicPartition> partitions) {}

                    @Override
                    public void onPartitionsAssigned(Collection<TopicPartition> partitions) {
                        assignments[0]++;
                    }
                });
            }
            while (unique < count && !stopRequested && System.nanoTime() < deadline) {
                long left = TimeUnit.NANOSECONDS.toMillis(deadline - System.nanoTime());
                ConsumerRecords<byte[], byte[]> records;
                try {
                    records = consumer.poll(Duration.ofMillis(Math.max(1, Math.min(500, left))));
                } catch (RetriableException e) {
                    log("poll: " + e);
                    continue;
                }
                polls++;
                for (ConsumerRecord<byte[], byte[]> r : records) {
                    if (!seen.add(r.key())) {
                        duplicates++;
                    } else {
                        unique++;
                        byte[] v = r.value();
                        if (v == null || v.length < 32) {
                            bad++;
                        } else {
                            md.update(v, 32, v.length - 32);
                            md.digest(check, 0, 32);
                            for (int k = 0; k < 32; k++) {
                                if (check[k] != v[k]) {
                                    bad++;
                                    break;
                                }
                            }
                        }
                        if (r.key() != null) md.update(r.key());
                        if (v != null) md.update(v);
                        xorInto(digest, md.digest());
                    }
                    if (crashAfter > 0 && unique >= crashAfter) {
                        // A process dying mid-batch: no commit, no close, no LeaveGroup.
                        emit("{\"client\":\"" + CLIENT + "\",\"crashed\":true,\"consumed\":" + unique
                            + ",\"commits\":" + commits + "}");
                        System.err.flush();
                        Runtime.getRuntime().halt(3);
                    }
                    if (commit == Commit.PER_RECORD) {
                        try {
                            consumer.commitSync(Collections.singletonMap(new TopicPartition(r.topic(), r.partition()),
                                new OffsetAndMetadata(r.offset() + 1)), Duration.ofSeconds(10));
                            commits++;
                        } catch (Exception e) {
                            commitErrors++;
                            log("commit failed (will commit the next record): " + e);
                        }
                    }
                }
                if (records.isEmpty()) continue;
                if (processMs > 0) sleepUntil(System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(processMs));
                if (commit == Commit.SYNC) {
                    try {
                        consumer.commitSync(Duration.ofSeconds(10));
                        commits++;
                    } catch (Exception e) {
                        commitErrors++;
                        log("commit failed (will retry with the next batch): " + e);
                    }
                } else if (commit == Commit.ASYNC) {
                    consumer.commitAsync((offsets, ex) -> {
                        if (ex == null) {
                            async[0]++;
                        } else {
                            async[1]++;
                            log("async commit failed: " + ex);
                        }
                    });
                }
                long now = System.nanoTime();
                if (now - lastProgress > 2_000_000_000L) {
                    lastProgress = now;
                    log("consume progress: " + unique + "/" + (byDuration ? "-" : String.valueOf(count)) + " unique, "
                        + duplicates + " duplicates, " + bad + " bad, " + (commits + async[0]) + " commits");
                }
            }
            if (!byDuration && unique < count)
                log("timed out after " + timeoutS + "s with " + unique + "/" + count + " records");
            if (commit == Commit.SYNC || commit == Commit.ASYNC || commit == Commit.PER_RECORD) {
                try {
                    consumer.commitSync(Duration.ofSeconds(10));
                    commits++;
                } catch (Exception e) {
                    commitErrors++;
                    log("final commit failed: " + e);
                }
            }
        } finally {
            try {
                consumer.close(Duration.ofSeconds(10));
            } catch (Exception e) {
                log("close: " + e);
            }
        }
        emit("{\"client\":\"" + CLIENT + "\",\"consumed\":" + unique + ",\"duplicates\":" + duplicates
            + ",\"bad\":" + bad + ",\"digest\":\"" + hex(digest) + "\",\"polls\":" + polls
            + ",\"commits\":" + (commits + async[0]) + ",\"commit_errors\":" + (commitErrors + async[1])
            + ",\"assignments\":" + assignments[0] + ",\"elapsed_s\":"
            + String.format("%.1f", (System.nanoTime() - start) / 1e9) + "}");
        if (byDuration) return bad == 0 && (count == Long.MAX_VALUE || unique == count) ? 0 : 1;
        return unique == count && bad == 0 ? 0 : 1;
    }

    // ------------------------------------------------------- stop on signal

    /** Set by SIGINT/SIGTERM for the long-running commands (produce-json, consume-loop, churn). */
    private static volatile boolean stopRequested = false;
    private static final CountDownLatch FINISHED = new CountDownLatch(1);

    /**
     * On SIGINT/SIGTERM, asks the running command to stop and waits (bounded) until it
     * has closed its clients and printed its summary. The JVM then exits with the
     * signal's status (130/143).
     */
    private static void stopOnSignal() {
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            stopRequested = true;
            try {
                FINISHED.await(25, TimeUnit.SECONDS);
            } catch (InterruptedException ignored) {
                Thread.currentThread().interrupt();
            }
        }, "sluice-stop"));
    }

    /** Sleeps until the given System.nanoTime() target, or until a stop is requested. */
    private static void sleepUntil(long target) throws InterruptedException {
        while (!stopRequested) {
            long left = target - System.nanoTime();
            if (left <= 0) return;
            TimeUnit.NANOSECONDS.sleep(Math.min(left, 100_000_000L));
        }
    }

    // ------------------------------------------------------------ JSON check

    /**
     * A strict validator of the JSON grammar (RFC 8259) over UTF-8 bytes: the consumer
     * "parses" each value with it, so a malformed record fails the way a JSON library
     * would. Nesting is limited to 512 levels.
     */
    static final class JsonCheck {
        private static final int MAX_DEPTH = 512;

        private static final class Bad extends Exception {
            Bad() { super(null, null, false, false); }
        }

        private static final Bad BAD = new Bad();

        private final byte[] b;
        private int i;

        private JsonCheck(byte[] b) { this.b = b; }

        static boolean valid(byte[] b) {
            if (b == null) return false;
            JsonCheck p = new JsonCheck(b);
            try {
                p.ws();
                p.value(0);
                p.ws();
                return p.i == b.length;
            } catch (Bad e) {
                return false;
            }
        }

        private int peek() throws Bad {
            if (i >= b.length) throw BAD;
            return b[i] & 0xff;
        }

        private int next() throws Bad {
            int c = peek();
            i++;
            return c;
        }

        private void expect(int c) throws Bad {
            if (next() != c) throw BAD;
        }

        private void ws() {
            while (i < b.length && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r')) i++;
        }

        private void value(int depth) throws Bad {
            if (depth > MAX_DEPTH) throw BAD;
            int c = peek();
            switch (c) {
                case '{': object(depth); break;
                case '[': array(depth); break;
                case '"': string(); break;
                case 't': literal("true"); break;
                case 'f': literal("false"); break;
                case 'n': literal("null"); break;
                default:
                    if (c == '-' || (c >= '0' && c <= '9')) number();
                    else throw BAD;
            }
        }

        private void object(int depth) throws Bad {
            expect('{');
            ws();
            if (peek() == '}') {
                i++;
                return;
            }
            while (true) {
                ws();
                string();
                ws();
                expect(':');
                ws();
                value(depth + 1);
                ws();
                int c = next();
                if (c == '}') return;
                if (c != ',') throw BAD;
            }
        }

        private void array(int depth) throws Bad {
            expect('[');
            ws();
            if (peek() == ']') {
                i++;
                return;
            }
            while (true) {
                ws();
                value(depth + 1);
                ws();
                int c = next();
                if (c == ']') return;
                if (c != ',') throw BAD;
            }
        }

        private void literal(String word) throws Bad {
            for (int k = 0; k < word.length(); k++) expect(word.charAt(k));
        }

        private boolean digit() {
            return i < b.length && b[i] >= '0' && b[i] <= '9';
        }

        private void number() throws Bad {
            if (peek() == '-') i++;
            int c = next();
            if (c == '0') {
                // no leading zeros
            } else if (c >= '1' && c <= '9') {
                while (digit()) i++;
            } else {
                throw BAD;
            }
            if (i < b.length && b[i] == '.') {
                i++;
                if (!digit()) throw BAD;
                while (digit()) i++;
            }
            if (i < b.length && (b[i] == 'e' || b[i] == 'E')) {
                i++;
                if (i < b.length && (b[i] == '+' || b[i] == '-')) i++;
                if (!digit()) throw BAD;
                while (digit()) i++;
            }
        }

        private void hex4() throws Bad {
            for (int k = 0; k < 4; k++) {
                int c = next();
                boolean ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
                if (!ok) throw BAD;
            }
        }

        private void cont(int lo, int hi) throws Bad {
            int c = next();
            if (c < lo || c > hi) throw BAD;
        }

        private void string() throws Bad {
            expect('"');
            while (true) {
                int c = next();
                if (c == '"') return;
                if (c == '\\') {
                    int e = next();
                    switch (e) {
                        case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
                            break;
                        case 'u':
                            hex4();
                            break;
                        default:
                            throw BAD;
                    }
                } else if (c < 0x20) {
                    throw BAD;
                } else if (c >= 0x80) {
                    // Well-formed UTF-8 (no overlongs, no surrogates, <= U+10FFFF).
                    if (c >= 0xc2 && c <= 0xdf) {
                        cont(0x80, 0xbf);
                    } else if (c == 0xe0) {
                        cont(0xa0, 0xbf); cont(0x80, 0xbf);
                    } else if ((c >= 0xe1 && c <= 0xec) || c == 0xee || c == 0xef) {
                        cont(0x80, 0xbf); cont(0x80, 0xbf);
                    } else if (c == 0xed) {
                        cont(0x80, 0x9f); cont(0x80, 0xbf);
                    } else if (c == 0xf0) {
                        cont(0x90, 0xbf); cont(0x80, 0xbf); cont(0x80, 0xbf);
                    } else if (c >= 0xf1 && c <= 0xf3) {
                        cont(0x80, 0xbf); cont(0x80, 0xbf); cont(0x80, 0xbf);
                    } else if (c == 0xf4) {
                        cont(0x80, 0x8f); cont(0x80, 0xbf); cont(0x80, 0xbf);
                    } else {
                        throw BAD;
                    }
                }
            }
        }
    }

    /** {"<k>":v,...} with keys in ascending order. */
    private static String jsonLongMap(Map<Integer, Long> m) {
        StringBuilder sb = new StringBuilder("{");
        for (Map.Entry<Integer, Long> e : new TreeMap<>(m).entrySet()) {
            if (sb.length() > 1) sb.append(',');
            sb.append('"').append(e.getKey()).append("\":").append(e.getValue());
        }
        return sb.append('}').toString();
    }

    // ---------------------------------------------------------- produce-json

    /**
     * Value of produce-json record i: {"i":<i>,"pad":"xxx..."} padded with 'x' to size
     * bytes (never shorter than the bare object); the poison record instead reads
     * {"i":<i>, BROKEN,"pad":"xxx..."} (malformed JSON), padded the same way.
     */
    static byte[] jsonValue(long i, int size, boolean poison) {
        String head = "{\"i\":" + i + (poison ? ", BROKEN" : "") + ",\"pad\":\"";
        String tail = "\"}";
        int pad = Math.max(0, size - head.length() - tail.length());
        byte[] out = new byte[head.length() + pad + tail.length()];
        byte[] h = head.getBytes(StandardCharsets.US_ASCII);
        System.arraycopy(h, 0, out, 0, h.length);
        java.util.Arrays.fill(out, h.length, h.length + pad, (byte) 'x');
        out[out.length - 2] = '"';
        out[out.length - 1] = '}';
        return out;
    }

    private static int produceJson(Args a) throws Exception {
        String bootstrap = a.str("bootstrap");
        String topic = a.str("topic");
        long count = a.num("count", null, 0);
        double rate = a.dbl("rate", 0.0, 0.0);
        long poisonAt = a.num("poison-at", -1L, -1);
        long sizeL = a.num("size", 1000L, 0);
        if (sizeL > 64L * 1024 * 1024) throw new UsageException("--size must be <= 67108864");
        int size = (int) sizeL;
        long partL = a.num("partition", -1L, 0);
        if (partL > Integer.MAX_VALUE) throw new UsageException("--partition too large");
        final Integer partition = partL >= 0 ? Integer.valueOf((int) partL) : null;
        Properties p = producerProps(bootstrap, a.clientId("sluice-java-producer"), size);

        final AtomicLong ok = new AtomicLong();
        final AtomicLong errors = new AtomicLong();
        final AtomicLong reported = new AtomicLong();
        final long[] poisonAt2 = {-1, -1}; // partition, offset of the delivered poison record
        long sent = 0;
        long start = System.nanoTime();
        long lastProgress = start;
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(p)) {
            for (long i = 0; i < count && !stopRequested; i++) {
                if (rate > 0) sleepUntil(start + (long) (i * 1e9 / rate));
                if (stopRequested) break;
                final boolean poison = i == poisonAt;
                byte[] key = ("json-" + i).getBytes(StandardCharsets.UTF_8);
                byte[] value = jsonValue(i, size, poison);
                producer.send(new ProducerRecord<>(topic, partition, key, value), (meta, ex) -> {
                    if (ex != null) {
                        errors.incrementAndGet();
                        if (reported.incrementAndGet() <= 10) log("produce error: " + ex);
                    } else {
                        if (poison) {
                            synchronized (poisonAt2) {
                                poisonAt2[0] = meta.partition();
                                poisonAt2[1] = meta.offset();
                            }
                        }
                        ok.incrementAndGet();
                    }
                });
                sent++;
                long now = System.nanoTime();
                if (now - lastProgress > 2_000_000_000L) {
                    lastProgress = now;
                    log("produce-json progress: sent " + (i + 1) + "/" + count + ", acked " + ok.get()
                        + ", errors " + errors.get());
                }
            }
            producer.flush();
        } catch (Exception e) {
            log("producer failed: " + e);
            long missing = sent - ok.get() - errors.get();
            if (missing > 0) errors.addAndGet(missing);
        }
        long produced = ok.get();
        long errs = errors.get();
        StringBuilder out = new StringBuilder("{\"client\":\"" + CLIENT + "\",\"produced\":" + produced
            + ",\"errors\":" + errs);
        synchronized (poisonAt2) {
            if (poisonAt2[1] >= 0)
                out.append(",\"poison_partition\":").append(poisonAt2[0])
                   .append(",\"poison_offset\":").append(poisonAt2[1]);
        }
        emit(out.append('}').toString());
        return errs == 0 && produced == count ? 0 : 1;
    }

    // ---------------------------------------------------------- consume-loop

    private static int consumeLoop(Args a) throws Exception {
        String bootstrap = a.str("bootstrap");
        String topic = a.str("topic");
        String group = a.str("group");
        long durationS = a.num("duration-s", null, 0);
        long fetchBytes = a.num("max-partition-fetch-bytes", 1048576L, 1);
        if (fetchBytes > Integer.MAX_VALUE) throw new UsageException("--max-partition-fetch-bytes too large");
        long backoffMs = a.num("backoff-ms", 0L, 0);
        long fetchWaitMs = a.num("fetch-max-wait-ms", 500L, 0);
        if (fetchWaitMs > Integer.MAX_VALUE) throw new UsageException("--fetch-max-wait-ms too large");

        Properties p = new Properties();
        common(p, bootstrap, a.clientId("sluice-java-consumer"));
        p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        groupProtocol(p, a);
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        p.put(ConsumerConfig.MAX_PARTITION_FETCH_BYTES_CONFIG, String.valueOf(fetchBytes));
        p.put(ConsumerConfig.FETCH_MAX_BYTES_CONFIG, String.valueOf(Math.max(52428800L, fetchBytes)));
        p.put(ConsumerConfig.FETCH_MAX_WAIT_MS_CONFIG, String.valueOf(fetchWaitMs));
        p.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "20000");
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());

        long polls = 0, seen = 0, processed = 0, failures = 0, bytesSeen = 0, commitErrors = 0;
        Map<Integer, Long> committed = new HashMap<>();
        Map<Integer, Long> stuckAt = new HashMap<>();
        long start = System.nanoTime();
        long deadline = start + TimeUnit.SECONDS.toNanos(durationS);
        long lastProgress = start;
        KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(p);
        try {
            consumer.subscribe(Collections.singletonList(topic));
            while (!stopRequested && System.nanoTime() < deadline) {
                long left = TimeUnit.NANOSECONDS.toMillis(deadline - System.nanoTime());
                ConsumerRecords<byte[], byte[]> records;
                try {
                    records = consumer.poll(Duration.ofMillis(Math.max(1, Math.min(500, left))));
                } catch (RetriableException e) {
                    log("poll: " + e);
                    continue;
                }
                polls++;
                seen += records.count();
                for (ConsumerRecord<byte[], byte[]> r : records) {
                    if (r.value() != null) bytesSeen += r.value().length;
                }
                Map<TopicPartition, OffsetAndMetadata> toCommit = new HashMap<>();
                boolean failed = false;
                for (TopicPartition tp : records.partitions()) {
                    long lastGood = -1;
                    for (ConsumerRecord<byte[], byte[]> r : records.records(tp)) {
                        if (JsonCheck.valid(r.value())) {
                            processed++; // "processing" is the parse itself
                            lastGood = r.offset();
                            continue;
                        }
                        // Like a listener whose JSON parse throws: the error handler seeks
                        // back to the failed record, which is neither skipped nor committed.
                        failures++;
                        failed = true;
                        stuckAt.put(tp.partition(), r.offset());
                        consumer.seek(tp, r.offset());
                        break;
                    }
                    if (lastGood >= 0) {
                        toCommit.put(tp, new OffsetAndMetadata(lastGood + 1));
                        Long s = stuckAt.get(tp.partition());
                        if (s != null && s <= lastGood) stuckAt.remove(tp.partition());
                    }
                }
                if (!toCommit.isEmpty()) {
                    try {
                        consumer.commitSync(toCommit, Duration.ofSeconds(10));
                        for (Map.Entry<TopicPartition, OffsetAndMetadata> e : toCommit.entrySet())
                            committed.put(e.getKey().partition(), e.getValue().offset());
                    } catch (Exception e) {
                        commitErrors++;
                        log("commit failed: " + e);
                    }
                }
                long now = System.nanoTime();
                if (now - lastProgress > 2_000_000_000L) {
                    lastProgress = now;
                    log("consume-loop progress: " + polls + " polls, " + seen + " records seen, " + failures
                        + " failures, committed " + jsonLongMap(committed) + ", stuck at " + jsonLongMap(stuckAt));
                }
                if (failed && backoffMs > 0) sleepUntil(Math.min(deadline, now + TimeUnit.MILLISECONDS.toNanos(backoffMs)));
            }
        } finally {
            try {
                consumer.close(Duration.ofSeconds(10));
            } catch (Exception e) {
                log("close: " + e);
            }
        }
        emit("{\"client\":\"" + CLIENT + "\",\"polls\":" + polls + ",\"records_seen\":" + seen
            + ",\"failures\":" + failures + ",\"committed\":" + jsonLongMap(committed)
            + ",\"stuck_at\":" + jsonLongMap(stuckAt) + ",\"processed\":" + processed
            + ",\"bytes_seen\":" + bytesSeen + ",\"commit_errors\":" + commitErrors + "}");
        return 0;
    }

    // ----------------------------------------------------------------- churn

    /**
     * Producers sharing one client.id make the JMX registration of each but the first
     * log a warning with a stack trace; churn creates many on purpose, so quiet it.
     */
    private static void quietAppInfoWarnings() {
        try {
            Class<?> level = Class.forName("org.apache.logging.log4j.Level");
            Class.forName("org.apache.logging.log4j.core.config.Configurator")
                .getMethod("setLevel", String.class, level)
                .invoke(null, "org.apache.kafka.common.utils.AppInfoParser", level.getField("ERROR").get(null));
        } catch (Throwable ignored) {
            // log4j-core not on the class path: the warnings stay.
        }
    }

    private static int churn(Args a) throws Exception {
        String bootstrap = a.str("bootstrap");
        String topic = a.str("topic");
        long count = a.num("count", null, 0);
        double rate = a.dbl("rate", 10.0, 0.0);
        boolean noClose = a.flag("no-close");
        Properties p = producerProps(bootstrap, a.clientId("sluice-java-churn"), 1000);
        p.put(ProducerConfig.LINGER_MS_CONFIG, "0");
        p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "30000");
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "30000");
        quietAppInfoWarnings();

        List<KafkaProducer<byte[], byte[]>> open = new ArrayList<>();
        long producers = 0, sent = 0, errors = 0;
        long start = System.nanoTime();
        long lastProgress = start;
        try {
            for (long i = 0; i < count && !stopRequested; i++) {
                if (rate > 0) sleepUntil(start + (long) (i * 1e9 / rate));
                if (stopRequested) break;
                KafkaProducer<byte[], byte[]> producer;
                try {
                    producer = new KafkaProducer<>(p);
                } catch (Exception e) {
                    errors++;
                    log("new producer: " + e);
                    continue;
                }
                producers++;
                try {
                    Future<RecordMetadata> f = producer.send(new ProducerRecord<>(topic,
                        ("churn-" + i).getBytes(StandardCharsets.UTF_8),
                        ("{\"i\":" + i + "}").getBytes(StandardCharsets.UTF_8)));
                    producer.flush();
                    f.get(30, TimeUnit.SECONDS);
                    sent++;
                } catch (Exception e) {
                    errors++;
                    if (errors <= 10) log("churn send " + i + ": " + rootCause(e));
                }
                if (noClose) {
                    open.add(producer);
                } else {
                    producer.close(Duration.ofSeconds(10));
                }
                long now = System.nanoTime();
                if (now - lastProgress > 2_000_000_000L) {
                    lastProgress = now;
                    log("churn progress: " + producers + "/" + count + " producers, " + sent + " sent, "
                        + errors + " errors" + (noClose ? ", " + open.size() + " open" : ""));
                }
            }
        } finally {
            for (KafkaProducer<byte[], byte[]> producer : open) {
                try {
                    producer.close(Duration.ofSeconds(5));
                } catch (Exception e) {
                    log("close: " + e);
                }
            }
        }
        emit("{\"client\":\"" + CLIENT + "\",\"producers\":" + producers + ",\"sent\":" + sent
            + ",\"errors\":" + errors + "}");
        return errors == 0 && sent == count ? 0 : 1;
    }

    /**
     * Applies --group-protocol: "classic" (the default; JoinGroup/SyncGroup/Heartbeat, with
     * --session-timeout-ms, default 10000) or "consumer" (KIP-848, ConsumerGroupHeartbeat;
     * the broker owns the session timing).
     */
    private static void groupProtocol(Properties p, Args a) throws UsageException {
        String proto = a.str("group-protocol", "classic");
        switch (proto) {
            case "classic":
                long session = a.num("session-timeout-ms", 10000L, 1);
                p.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, String.valueOf(session));
                p.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, String.valueOf(Math.max(1, Math.min(1000, session / 3))));
                break;
            case "consumer":
                if (a.has("session-timeout-ms"))
                    throw new UsageException("--session-timeout-ms is the broker's with --group-protocol consumer");
                p.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, "consumer");
                break;
            default:
                throw new UsageException("--group-protocol must be classic or consumer, got: " + proto);
        }
    }

    /** Every partition of topic, waiting (until deadline) for the topic to have metadata. */
    private static List<TopicPartition> partitionsOf(KafkaConsumer<?, ?> consumer, String topic, long deadline)
            throws Exception {
        while (true) {
            List<PartitionInfo> infos = null;
            try {
                infos = consumer.partitionsFor(topic, Duration.ofSeconds(5));
            } catch (RetriableException e) {
                log("partitionsFor: " + e);
            }
            if (infos != null && !infos.isEmpty()) {
                List<TopicPartition> tps = new ArrayList<>();
                for (PartitionInfo pi : infos) tps.add(new TopicPartition(topic, pi.partition()));
                return tps;
            }
            if (System.nanoTime() >= deadline) throw new IllegalStateException("topic " + topic + " has no partitions");
            Thread.sleep(200);
        }
    }

    // ----------------------------------------------------------------- admin

    /** Admin client for --bootstrap, or for --bootstrap-controller (KRaft controller listener). */
    private static Admin admin(Args a) throws UsageException {
        String controller = a.str("bootstrap-controller", null);
        String bootstrap = a.str("bootstrap", null);
        if ((controller == null) == (bootstrap == null))
            throw new UsageException("exactly one of --bootstrap and --bootstrap-controller is required");
        String clientId = a.clientId("sluice-java-admin");
        Properties p = new Properties();
        if (controller != null) {
            common(p, controller, clientId);
            p.remove(CommonClientConfigs.BOOTSTRAP_SERVERS_CONFIG);
            p.put(AdminClientConfig.BOOTSTRAP_CONTROLLERS_CONFIG, controller);
        } else {
            common(p, bootstrap, clientId);
        }
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "10000");
        p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "5000");
        return Admin.create(p);
    }

    /** The comma-separated items of an option (topic names never contain commas). */
    private static List<String> list(String v) {
        List<String> out = new ArrayList<>();
        if (v == null) return out;
        for (String x : v.split(",")) if (!x.isEmpty()) out.add(x);
        return out;
    }

    private static int createTopic(Args a) throws Exception {
        List<String> topics = list(a.str("topic"));
        if (topics.isEmpty()) throw new UsageException("--topic names no topic");
        long partitions = a.num("partitions", 1L, 1);
        long timeoutS = a.num("timeout-s", 30L, 0);
        if (partitions > Integer.MAX_VALUE) throw new UsageException("--partitions too large");
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(timeoutS);

        Set<String> pending = new HashSet<>(topics);
        Set<String> created = new HashSet<>();
        String lastError = null;
        try (Admin admin = admin(a)) {
            while (!pending.isEmpty()) {
                List<NewTopic> nts = new ArrayList<>();
                for (String t : pending) nts.add(new NewTopic(t, Optional.of((int) partitions), Optional.empty()));
                Map<String, org.apache.kafka.common.KafkaFuture<Void>> futures = admin.createTopics(nts).values();
                for (Map.Entry<String, org.apache.kafka.common.KafkaFuture<Void>> f : futures.entrySet()) {
                    try {
                        f.getValue().get(10, TimeUnit.SECONDS);
                        created.add(f.getKey());
                        pending.remove(f.getKey());
                    } catch (Exception e) {
                        Throwable c = rootCause(e);
                        if (c instanceof TopicExistsException) {
                            pending.remove(f.getKey());
                        } else {
                            lastError = f.getKey() + ": " + c;
                        }
                    }
                }
                if (pending.isEmpty() || System.nanoTime() >= deadline) break;
                log("create-topic: " + lastError + " (retrying)");
                Thread.sleep(500);
            }
            if (pending.isEmpty()) {
                // Wait until every partition has a leader so producers can start at once.
                while (true) {
                    try {
                        Map<String, TopicDescription> d = admin.describeTopics(topics,
                                new DescribeTopicsOptions().timeoutMs(5000))
                            .allTopicNames().get(10, TimeUnit.SECONDS);
                        boolean allLed = true;
                        int parts = 0;
                        for (String t : topics) {
                            TopicDescription td = d.get(t);
                            allLed &= td != null && !td.partitions().isEmpty();
                            if (td == null) continue;
                            parts += td.partitions().size();
                            for (TopicPartitionInfo tp : td.partitions()) allLed &= tp.leader() != null;
                        }
                        if (allLed) {
                            if (topics.size() == 1) {
                                emit("{\"client\":\"" + CLIENT + "\",\"topic\":" + jsonString(topics.get(0))
                                    + ",\"created\":" + !created.isEmpty() + ",\"partitions\":" + parts + "}");
                            } else {
                                emit("{\"client\":\"" + CLIENT + "\",\"topics\":" + topics.size() + ",\"created\":"
                                    + created.size() + ",\"partitions\":" + parts + "}");
                            }
                            return 0;
                        }
                        lastError = "partitions without leader";
                    } catch (Exception e) {
                        lastError = rootCause(e).toString();
                    }
                    if (System.nanoTime() >= deadline) break;
                    Thread.sleep(200);
                }
            }
        }
        log("create-topic failed: " + lastError);
        emit("{\"client\":\"" + CLIENT + "\",\"topic\":" + jsonString(String.join(",", topics))
            + ",\"created\":false,\"error\":" + jsonString(String.valueOf(lastError)) + "}");
        return 1;
    }

    private static String jsonIds(List<Node> nodes) {
        StringBuilder sb = new StringBuilder("[");
        for (Node n : nodes) {
            if (sb.length() > 1) sb.append(',');
            sb.append(n.id());
        }
        return sb.append(']').toString();
    }

    /**
     * The partitions of __consumer_offsets, in partition order. The brokers create it on the
     * first FindCoordinator, which describing a group sends.
     */
    private static List<TopicPartitionInfo> offsetsTopic(Admin admin) throws Exception {
        String name = "__consumer_offsets";
        try {
            return admin.describeTopics(Collections.singletonList(name), new DescribeTopicsOptions().timeoutMs(5000))
                .allTopicNames().get(10, TimeUnit.SECONDS).get(name).partitions();
        } catch (ExecutionException e) {
            if (!(rootCause(e) instanceof UnknownTopicOrPartitionException)) throw e;
            try {
                admin.describeConsumerGroups(Collections.singletonList("sluice-describe")).all().get(10, TimeUnit.SECONDS);
            } catch (ExecutionException ignored) {
                // No such group: the point was the FindCoordinator.
            }
            throw e;
        }
    }

    /**
     * The cluster as the brokers see it: brokers, the active controller, the partitions of
     * the listed topics and the coordinators of the listed groups (whether or not the group
     * exists yet). Retries until every answer is complete or --timeout-s passes.
     */
    private static int describe(Args a) throws Exception {
        List<String> topics = list(a.str("topic", ""));
        List<String> groups = list(a.str("group", ""));
        long timeoutS = a.num("timeout-s", 30L, 0);
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(timeoutS);
        String lastError = "no answer";
        try (Admin admin = admin(a)) {
            while (true) {
                try {
                    StringBuilder out = new StringBuilder("{\"client\":\"" + CLIENT + "\",\"brokers\":[");
                    DescribeClusterResult c = admin.describeCluster(new DescribeClusterOptions().timeoutMs(5000));
                    List<Node> nodes = new ArrayList<>(c.nodes().get(10, TimeUnit.SECONDS));
                    nodes.sort((x, y) -> Integer.compare(x.id(), y.id()));
                    for (int i = 0; i < nodes.size(); i++) {
                        Node n = nodes.get(i);
                        out.append(i > 0 ? "," : "").append("{\"id\":").append(n.id()).append(",\"host\":")
                            .append(jsonString(n.host())).append(",\"port\":").append(n.port()).append('}');
                    }
                    Node controller = c.controller().get(10, TimeUnit.SECONDS);
                    out.append("],\"controller\":").append(controller == null ? -1 : controller.id());
                    out.append(",\"topics\":{");
                    boolean complete = true;
                    if (!topics.isEmpty()) {
                        Map<String, TopicDescription> d = admin.describeTopics(topics,
                                new DescribeTopicsOptions().timeoutMs(5000))
                            .allTopicNames().get(10, TimeUnit.SECONDS);
                        for (int i = 0; i < topics.size(); i++) {
                            TopicDescription td = d.get(topics.get(i));
                            out.append(i > 0 ? "," : "").append(jsonString(topics.get(i))).append(":[");
                            List<TopicPartitionInfo> ps = td.partitions();
                            for (int k = 0; k < ps.size(); k++) {
                                TopicPartitionInfo tp = ps.get(k);
                                complete &= tp.leader() != null;
                                out.append(k > 0 ? "," : "").append("{\"partition\":").append(tp.partition())
                                    .append(",\"leader\":").append(tp.leader() == null ? -1 : tp.leader().id())
                                    .append(",\"replicas\":").append(jsonIds(tp.replicas()))
                                    .append(",\"isr\":").append(jsonIds(tp.isr())).append('}');
                            }
                            out.append(']');
                        }
                    }
                    out.append("},\"coordinators\":{");
                    if (!groups.isEmpty()) {
                        // A group's coordinator is the leader of its partition of __consumer_offsets,
                        // as the broker maps it; this holds for groups that do not exist yet too.
                        List<TopicPartitionInfo> offsets = offsetsTopic(admin);
                        for (int i = 0; i < groups.size(); i++) {
                            int part = Utils.abs(groups.get(i).hashCode()) % offsets.size();
                            Node n = offsets.get(part).leader();
                            complete &= n != null;
                            out.append(i > 0 ? "," : "").append(jsonString(groups.get(i))).append(':')
                                .append(n == null ? -1 : n.id());
                        }
                    }
                    if (complete) {
                        emit(out.append("}}").toString());
                        return 0;
                    }
                    lastError = "a partition or group without a leader or coordinator";
                } catch (Exception e) {
                    lastError = rootCause(e).toString();
                }
                if (System.nanoTime() >= deadline) break;
                Thread.sleep(200);
            }
        }
        log("describe failed: " + lastError);
        emit("{\"client\":\"" + CLIENT + "\",\"error\":" + jsonString(lastError) + "}");
        return 1;
    }

    private static int waitReady(Args a) throws Exception {
        long timeoutS = a.num("timeout-s", 60L, 0);
        long start = System.nanoTime();
        long deadline = start + TimeUnit.SECONDS.toNanos(timeoutS);
        String lastError = "no answer";
        long lastLog = start;
        try (Admin admin = admin(a)) {
            while (true) {
                try {
                    DescribeClusterResult r = admin.describeCluster(new DescribeClusterOptions().timeoutMs(3000));
                    Collection<Node> nodes = r.nodes().get(5, TimeUnit.SECONDS);
                    String clusterId = r.clusterId().get(5, TimeUnit.SECONDS);
                    if (nodes != null && !nodes.isEmpty()) {
                        double secs = (System.nanoTime() - start) / 1e9;
                        emit("{\"client\":\"" + CLIENT + "\",\"ready\":true,\"brokers\":" + nodes.size()
                            + ",\"cluster_id\":" + jsonString(String.valueOf(clusterId))
                            + ",\"waited_s\":" + String.format("%.3f", secs) + "}");
                        return 0;
                    }
                    lastError = "no brokers in cluster description";
                } catch (Exception e) {
                    lastError = rootCause(e).toString();
                }
                long now = System.nanoTime();
                if (now >= deadline) break;
                if (now - lastLog > 2_000_000_000L) {
                    lastLog = now;
                    log("wait-ready: " + lastError);
                }
                Thread.sleep(200);
            }
        }
        log("wait-ready: cluster not ready after " + timeoutS + "s: " + lastError);
        emit("{\"client\":\"" + CLIENT + "\",\"ready\":false,\"error\":" + jsonString(lastError) + "}");
        return 1;
    }

    // ------------------------------------------------------------------ main

    private static Set<String> opts(String... names) {
        Set<String> s = new HashSet<>();
        Collections.addAll(s, names);
        return s;
    }

    public static void main(String[] argv) {
        int rc;
        try {
            if (argv.length == 0) throw new UsageException("missing command");
            String cmd = argv[0];
            switch (cmd) {
                case "produce":
                    rc = produce(Args.parse(argv, 1, opts("bootstrap", "topic", "count", "size", "seed", "rate",
                        "client-id")));
                    break;
                case "consume": {
                    Args a = Args.parse(argv, 1, opts("bootstrap", "topic", "group", "count", "timeout-s", "commit",
                        "group-protocol", "client-id", "duration-s", "auto-commit-interval-ms", "max-poll-interval-ms",
                        "session-timeout-ms", "process-ms", "crash-after"), opts("assign"));
                    stopOnSignal();
                    rc = consume(a);
                    break;
                }
                case "create-topic":
                    rc = createTopic(Args.parse(argv, 1, opts("bootstrap", "topic", "partitions", "timeout-s",
                        "client-id")));
                    break;
                case "describe":
                    rc = describe(Args.parse(argv, 1, opts("bootstrap", "topic", "group", "timeout-s", "client-id")));
                    break;
                case "wait-ready":
                    rc = waitReady(Args.parse(argv, 1, opts("bootstrap", "bootstrap-controller", "timeout-s",
                        "client-id")));
                    break;
                case "produce-json": {
                    Args a = Args.parse(argv, 1, opts("bootstrap", "topic", "count", "rate", "poison-at", "size",
                        "partition", "client-id"));
                    stopOnSignal();
                    rc = produceJson(a);
                    break;
                }
                case "consume-loop": {
                    Args a = Args.parse(argv, 1, opts("bootstrap", "topic", "group", "duration-s",
                        "max-partition-fetch-bytes", "fetch-max-wait-ms", "backoff-ms", "group-protocol", "client-id"));
                    stopOnSignal();
                    rc = consumeLoop(a);
                    break;
                }
                case "churn": {
                    Args a = Args.parse(argv, 1, opts("bootstrap", "topic", "count", "rate", "client-id"),
                        opts("no-close"));
                    stopOnSignal();
                    rc = churn(a);
                    break;
                }
                case "-h":
                case "--help":
                case "help":
                    System.out.println(USAGE);
                    rc = 0;
                    break;
                default:
                    throw new UsageException("unknown command: " + cmd);
            }
        } catch (UsageException e) {
            System.err.println("sluice-java-client: " + e.getMessage());
            System.err.println(USAGE);
            rc = 2;
        } catch (Throwable t) {
            log("fatal: " + t);
            t.printStackTrace(System.err);
            rc = 1;
        }
        System.out.flush();
        System.err.flush();
        FINISHED.countDown();
        // Kafka client threads are daemon-safe after close(), but exit explicitly anyway.
        System.exit(rc);
    }
}
