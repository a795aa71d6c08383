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
import java.util.BitSet;
import java.util.Collection;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
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
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.errors.RetriableException;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public final class SluiceClient {
    private static final String CLIENT = "java";
    private static final int POOL_WINDOW = 65536;
    private static final int OFFSET_MULT = 31153;

    private static final String USAGE = String.join("\n",
        "usage: sluice-java-client COMMAND [OPTIONS]",
        "",
        "commands:",
        "  produce      --bootstrap H:P --topic T --count N [--size BYTES=1000] [--seed S=1] [--rate PER_SEC=0]",
        "  consume      --bootstrap H:P --topic T --group G --count N [--timeout-s S=60] [--commit sync|auto]",
        "  create-topic --bootstrap H:P --topic T [--partitions P=1] [--timeout-s S=30]",
        "  wait-ready   --bootstrap H:P [--timeout-s S=60]",
        "",
        "wait-ready also accepts --bootstrap-controller H:P instead of --bootstrap: it",
        "then asks the KRaft controller listener, which answers before anything",
        "listens on the broker's advertised address.",
        "",
        "Prints one JSON line on stdout; diagnostics go to stderr.",
        "Exit status: 0 ok, 1 failure, 2 usage error.");

    private static final class UsageException extends Exception {
        UsageException(String msg) { super(msg); }
    }

    // ------------------------------------------------------------------ args

    private static final class Args {
        final Map<String, String> values = new HashMap<>();

        static Args parse(String[] argv, int from, Set<String> allowed) throws UsageException {
            Args a = new Args();
            for (int i = from; i < argv.length; i++) {
                String arg = argv[i];
                if (!arg.startsWith("--")) throw new UsageException("unexpected argument: " + arg);
                String name = arg.substring(2);
                String value;
                int eq = name.indexOf('=');
                if (eq >= 0) {
                    value = name.substring(eq + 1);
                    name = name.substring(0, eq);
                } else {
                    if (i + 1 >= argv.length) throw new UsageException("option --" + name + " needs a value");
                    value = argv[++i];
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
    }

    private static Throwable rootCause(Throwable t) {
        while (t instanceof ExecutionException && t.getCause() != null) t = t.getCause();
        return t;
    }

    // --------------------------------------------------------------- produce

    private static int produce(Args a) throws Exception {
        String bootstrap = a.str("bootstrap");
        String topic = a.str("topic");
        long count = a.num("count", null, 0);
        long sizeL = a.num("size", 1000L, 0);
        if (sizeL > 64L * 1024 * 1024) throw new UsageException("--size must be <= 67108864");
        int size = (int) sizeL;
        long seed = a.num("seed", 1L, Long.MIN_VALUE);
        double rate = a.dbl("rate", 0.0, 0.0);

        Properties p = new Properties();
        common(p, bootstrap, "sluice-java-producer");
        p.put(ProducerConfig.ACKS_CONFIG, "all");
        p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
        p.put(ProducerConfig.LINGER_MS_CONFIG, "5");
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "120000");
        p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "60000");
        p.put(ProducerConfig.MAX_REQUEST_SIZE_CONFIG, String.valueOf(Math.max(1048576, size + 4096)));
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());

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

    private static int consume(Args a) throws Exception {
        String bootstrap = a.str("bootstrap");
        String topic = a.str("topic");
        String group = a.str("group");
        long count = a.num("count", null, 0);
        long timeoutS = a.num("timeout-s", 60L, 0);
        String commit = a.str("commit", "sync");
        if (!commit.equals("sync") && !commit.equals("auto"))
            throw new UsageException("--commit must be sync or auto, got: " + commit);
        boolean syncCommit = commit.equals("sync");

        Properties p = new Properties();
        common(p, bootstrap, "sluice-java-consumer");
        p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, syncCommit ? "false" : "true");
        p.put(ConsumerConfig.AUTO_COMMIT_INTERVAL_MS_CONFIG, "1000");
        p.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, "10000");
        p.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, "1000");
        p.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "20000");
        p.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, "1000");
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());

        MessageDigest md = sha256();
        byte[] digest = new byte[32];
        byte[] check = new byte[32];
        SeenKeys seen = new SeenKeys();
        long unique = 0, duplicates = 0, bad = 0;

        long start = System.nanoTime();
        long deadline = start + TimeUnit.SECONDS.toNanos(timeoutS);
        long lastProgress = start;
        KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(p);
        try {
            consumer.subscribe(Collections.singletonList(topic));
            while (unique < count && System.nanoTime() < deadline) {
                long left = TimeUnit.NANOSECONDS.toMillis(deadline - System.nanoTime());
                ConsumerRecords<byte[], byte[]> records;
                try {
                    records = consumer.poll(Duration.ofMillis(Math.max(1, Math.min(500, left))));
                } catch (RetriableException e) {
                    log("poll: " + e);
                    continue;
                }
                for (ConsumerRecord<byte[], byte[]> r : records) {
                    if (!seen.add(r.key())) {
                        duplicates++;
                        continue;
                    }
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
                if (syncCommit && !records.isEmpty()) {
                    try {
                        consumer.commitSync(Duration.ofSeconds(10));
                    } catch (Exception e) {
                        log("commit failed (will retry with the next batch): " + e);
                    }
                }
                long now = System.nanoTime();
                if (now - lastProgress > 2_000_000_000L) {
                    lastProgress = now;
                    log("consume progress: " + unique + "/" + count + " unique, " + duplicates
                        + " duplicates, " + bad + " bad");
                }
            }
            if (unique < count) log("timed out after " + timeoutS + "s with " + unique + "/" + count + " records");
            if (syncCommit) {
                try {
                    consumer.commitSync(Duration.ofSeconds(10));
                } catch (Exception e) {
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
            + ",\"bad\":" + bad + ",\"digest\":\"" + hex(digest) + "\"}");
        return unique == count && bad == 0 ? 0 : 1;
    }

    // ----------------------------------------------------------------- admin

    /** Admin client for --bootstrap, or for --bootstrap-controller (KRaft controller listener). */
    private static Admin admin(Args a) throws UsageException {
        String controller = a.str("bootstrap-controller", null);
        String bootstrap = a.str("bootstrap", null);
        if ((controller == null) == (bootstrap == null))
            throw new UsageException("exactly one of --bootstrap and --bootstrap-controller is required");
        Properties p = new Properties();
        if (controller != null) {
            common(p, controller, "sluice-java-admin");
            p.remove(CommonClientConfigs.BOOTSTRAP_SERVERS_CONFIG);
            p.put(AdminClientConfig.BOOTSTRAP_CONTROLLERS_CONFIG, controller);
        } else {
            common(p, bootstrap, "sluice-java-admin");
        }
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "10000");
        p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "5000");
        return Admin.create(p);
    }

    private static int createTopic(Args a) throws Exception {
        String topic = a.str("topic");
        long partitions = a.num("partitions", 1L, 1);
        long timeoutS = a.num("timeout-s", 30L, 0);
        if (partitions > Integer.MAX_VALUE) throw new UsageException("--partitions too large");
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(timeoutS);

        boolean created = false;
        String lastError = null;
        try (Admin admin = admin(a)) {
            boolean done = false;
            while (!done) {
                try {
                    NewTopic nt = new NewTopic(topic, Optional.of((int) partitions), Optional.empty());
                    admin.createTopics(Collections.singletonList(nt)).all().get(10, TimeUnit.SECONDS);
                    created = true;
                    done = true;
                } catch (Exception e) {
                    Throwable c = rootCause(e);
                    if (c instanceof TopicExistsException) {
                        done = true;
                    } else {
                        lastError = c.toString();
                        if (System.nanoTime() >= deadline) break;
                        log("create-topic: " + lastError + " (retrying)");
                        Thread.sleep(500);
                    }
                }
            }
            if (done) {
                // Wait until every partition has a leader so producers can start at once.
                while (true) {
                    try {
                        Map<String, TopicDescription> d = admin.describeTopics(
                                Collections.singletonList(topic), new DescribeTopicsOptions().timeoutMs(5000))
                            .allTopicNames().get(10, TimeUnit.SECONDS);
                        TopicDescription td = d.get(topic);
                        boolean allLed = td != null && !td.partitions().isEmpty();
                        if (td != null) {
                            for (TopicPartitionInfo tp : td.partitions()) allLed &= tp.leader() != null;
                        }
                        if (allLed) {
                            emit("{\"client\":\"" + CLIENT + "\",\"topic\":" + jsonString(topic)
                                + ",\"created\":" + created + ",\"partitions\":" + td.partitions().size() + "}");
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
        emit("{\"client\":\"" + CLIENT + "\",\"topic\":" + jsonString(topic) + ",\"created\":false,\"error\":"
            + jsonString(String.valueOf(lastError)) + "}");
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
                    rc = produce(Args.parse(argv, 1, opts("bootstrap", "topic", "count", "size", "seed", "rate")));
                    break;
                case "consume":
                    rc = consume(Args.parse(argv, 1, opts("bootstrap", "topic", "group", "count", "timeout-s", "commit")));
                    break;
                case "create-topic":
                    rc = createTopic(Args.parse(argv, 1, opts("bootstrap", "topic", "partitions", "timeout-s")));
                    break;
                case "wait-ready":
                    rc = waitReady(Args.parse(argv, 1, opts("bootstrap", "bootstrap-controller", "timeout-s")));
                    break;
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
        // Kafka client threads are daemon-safe after close(), but exit explicitly anyway.
        System.exit(rc);
    }
}
