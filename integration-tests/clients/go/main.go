// Command sluice-go-client is Sluice's integration-test client built on franz-go.
//
// It implements the same command-line contract as
//
//	integration-tests/clients/java/SluiceClient.java  (Apache Kafka Java client)
//	integration-tests/clients/python/sluice_client.py (librdkafka)
//
// so tests can swap clients freely. Run with --help for the commands.
//
// Record format (identical in all three clients):
//
//	pool(seed, size) = SHA-256("sluice:<seed>:0") ++ SHA-256("sluice:<seed>:1") ++ ...
//	                   truncated to size + 65536 bytes
//	payload(i)       = pool[off : off+size], off = ((i mod 65536) * 31153) mod 65536
//	key(i)           = UTF-8 "<seed>-<i>"
//	value(i)         = SHA-256(payload(i)) ++ payload(i)
//	digest           = hex(XOR over records of SHA-256(key ++ value))
//
// Exit codes: 0 success, 1 failure, 2 usage error.
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const (
	clientName       = "go"
	poolWindow       = 65536
	offsetMult       = 31153
	progressInterval = 2 * time.Second
)

const usage = `usage: sluice-go-client COMMAND [OPTIONS]

commands:
  produce      --bootstrap H:P --topic T --count N [--size BYTES=1000] [--seed S=1] [--rate PER_SEC=0]
               [--client-id ID=sluice-go-producer]
  consume      --bootstrap H:P --topic T --group G (--count N [--timeout-s S=60] | --duration-s S)
               [--commit sync|async|per-record|auto|none] [--auto-commit-interval-ms MS=1000]
               [--group-protocol classic|consumer] [--session-timeout-ms MS=10000]
               [--process-ms MS=0] [--crash-after N] [--client-id ID=sluice-go-consumer]
  consume      --bootstrap H:P --topic T --assign (--count N [--timeout-s S=60] | --duration-s S)
               [--process-ms MS=0] [--crash-after N] [--client-id ID]
  create-topic --bootstrap H:P --topic T [--partitions P=1] [--timeout-s S=30] [--client-id ID=sluice-go-admin]
  wait-ready   --bootstrap H:P [--timeout-s S=60] [--client-id ID=sluice-go-admin]
  produce-json --bootstrap H:P --topic T --count N [--rate PER_SEC=0] [--poison-at I=-1] [--size BYTES=1000]
               [--partition P] [--client-id ID=sluice-go-producer]
  consume-loop --bootstrap H:P --topic T --group G --duration-s S [--max-partition-fetch-bytes N=1048576]
               [--fetch-max-wait-ms MS=500] [--backoff-ms MS=0] [--client-id ID=sluice-go-consumer]
  churn        --bootstrap H:P --topic T --count N [--rate PER_SEC=10] [--no-close] [--client-id ID=sluice-go-churn]

consume commits as --commit says: sync (a synchronous commit after each non-empty
poll, the default), async (an asynchronous commit after each non-empty poll),
per-record (a synchronous commit of each record as it is read), auto (the client's
auto-commit, every --auto-commit-interval-ms) or none (never). Every mode but none
commits once more when the run ends. --assign uses no group: it consumes every
partition of the topic from the earliest offset and never commits.
--duration-s runs for S seconds (or until SIGINT/SIGTERM) instead of until --count
unique records arrived. --process-ms sleeps after each non-empty poll (processing
the batch) before committing it (franz-go has no max.poll.interval.ms: it
heartbeats in the background, so --max-poll-interval-ms is refused). --crash-after
N exits at once (status 3) after N unique records, without committing them and
without closing: a crashing process. --group-protocol consumer uses KIP-848
(ConsumerGroupHeartbeat, franz-go's ServerSideBalancer; the broker owns the
session timeout); classic uses --session-timeout-ms.

produce-json writes key "json-<i>" and a JSON object value {"i":<i>,"pad":"xx.."} of
about --size bytes; record number --poison-at is malformed JSON instead. Without
--partition the key picks the partition (murmur2, as the Java client does).

consume-loop reproduces a consumer stuck in a redelivery loop: it commits (sync)
the offset after the last record whose value parses as JSON, and on the first
record that does not parse it seeks its partition back to that record without
committing it, so the next poll fetches it (and what follows) again, until
--duration-s ends. --backoff-ms pauses after each failure (default 0).
--fetch-max-wait-ms is the fetch long-poll (FetchMaxWait; franz-go needs >= 10).

churn opens a new client for every record, produces it, flushes and closes the
client; with --no-close every client stays open until the end.

Prints one JSON line on stdout; diagnostics go to stderr.
SIGINT/SIGTERM stop consume, produce-json, consume-loop and churn early; they still
print their summary.
Exit status: 0 ok, 1 failure, 2 usage error.`

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

func logf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "sluice-go-client: "+format+"\n", a...)
}

func emit(v any) {
	b, _ := json.Marshal(v)
	os.Stdout.Write(append(b, '\n'))
}

// ------------------------------------------------------------------- args

type args map[string]string

func parseArgs(argv []string, allowed ...string) (args, error) {
	return parseArgsFlags(argv, nil, allowed...)
}

// parseArgsFlags is parseArgs where the options in flags take no value
// (present means "true").
func parseArgsFlags(argv []string, flags []string, allowed ...string) (args, error) {
	ok := map[string]bool{}
	for _, a := range allowed {
		ok[a] = true
	}
	isFlag := map[string]bool{}
	for _, f := range flags {
		isFlag[f] = true
	}
	out := args{}
	for i := 0; i < len(argv); i++ {
		a := argv[i]
		if !strings.HasPrefix(a, "--") {
			return nil, usagef("unexpected argument: %s", a)
		}
		name, value, hasEq := strings.Cut(a[2:], "=")
		if isFlag[name] {
			if hasEq {
				return nil, usagef("option --%s takes no value", name)
			}
			out[name] = "true"
			continue
		}
		if !hasEq {
			if i+1 >= len(argv) {
				return nil, usagef("option --%s needs a value", name)
			}
			i++
			value = argv[i]
		}
		if !ok[name] {
			return nil, usagef("unknown option: --%s", name)
		}
		out[name] = value
	}
	return out, nil
}

func (a args) str(name string) (string, error) {
	v := a[name]
	if v == "" {
		return "", usagef("missing required option --%s", name)
	}
	return v, nil
}

func (a args) strOr(name, def string) string {
	if v, ok := a[name]; ok {
		return v
	}
	return def
}

func (a args) has(name string) bool {
	_, ok := a[name]
	return ok
}

// clientID is the --client-id option (must not be empty), or def.
func (a args) clientID(def string) (string, error) {
	v, ok := a["client-id"]
	if !ok {
		return def, nil
	}
	if v == "" {
		return "", usagef("--client-id must not be empty")
	}
	return v, nil
}

// num parses an integer option; required when def is nil.
func (a args) num(name string, def *int64, min int64) (int64, error) {
	v, ok := a[name]
	if !ok {
		if def == nil {
			return 0, usagef("missing required option --%s", name)
		}
		return *def, nil
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil {
		return 0, usagef("--%s must be an integer, got: %s", name, v)
	}
	if n < min {
		return 0, usagef("--%s must be >= %d, got: %s", name, min, v)
	}
	return n, nil
}

func (a args) float(name string, def, min float64) (float64, error) {
	v, ok := a[name]
	if !ok {
		return def, nil
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil {
		return 0, usagef("--%s must be a number, got: %s", name, v)
	}
	if !(f >= min) {
		return 0, usagef("--%s must be >= %g, got: %s", name, min, v)
	}
	return f, nil
}

func i64(v int64) *int64 { return &v }

// ---------------------------------------------------------------- helpers

func makePool(seed int64, size int) []byte {
	need := size + poolWindow
	out := make([]byte, 0, need+32)
	for j := 0; len(out) < need; j++ {
		h := sha256.Sum256([]byte(fmt.Sprintf("sluice:%d:%d", seed, j)))
		out = append(out, h[:]...)
	}
	return out[:need]
}

func poolOffset(i int64) int {
	return int(((i % poolWindow) * offsetMult) % poolWindow)
}

func xorInto(acc *[32]byte, d [32]byte) {
	for k := range acc {
		acc[k] ^= d[k]
	}
}

func commonOpts(bootstrap, clientID string) []kgo.Opt {
	return []kgo.Opt{
		kgo.SeedBrokers(strings.Split(bootstrap, ",")...),
		kgo.ClientID(clientID),
		kgo.DialTimeout(5 * time.Second),
		kgo.RequestTimeoutOverhead(10 * time.Second),
		kgo.RetryTimeout(30 * time.Second),
		kgo.RetryBackoffFn(func(tries int) time.Duration {
			d := 50 * time.Millisecond << min(tries, 5)
			return min(d, time.Second)
		}),
		kgo.MetadataMinAge(500 * time.Millisecond),
		kgo.MetadataMaxAge(30 * time.Second),
		kgo.WithLogger(kgo.BasicLogger(os.Stderr, kgo.LogLevelWarn, func() string {
			return "sluice-go-client: " + time.Now().Format("15:04:05.000") + " "
		})),
	}
}

// ---------------------------------------------------------------- produce

func produce(argv []string) (int, error) {
	a, err := parseArgs(argv, "bootstrap", "topic", "count", "size", "seed", "rate", "client-id")
	if err != nil {
		return 2, err
	}
	clientID, err := a.clientID("sluice-go-producer")
	if err != nil {
		return 2, err
	}
	bootstrap, err := a.str("bootstrap")
	if err != nil {
		return 2, err
	}
	topic, err := a.str("topic")
	if err != nil {
		return 2, err
	}
	count, err := a.num("count", nil, 0)
	if err != nil {
		return 2, err
	}
	size64, err := a.num("size", i64(1000), 0)
	if err != nil {
		return 2, err
	}
	if size64 > 64<<20 {
		return 2, usagef("--size must be <= %d", 64<<20)
	}
	seed, err := a.num("seed", i64(1), -1<<63)
	if err != nil {
		return 2, err
	}
	rate, err := a.float("rate", 0, 0)
	if err != nil {
		return 2, err
	}
	size := int(size64)

	opts := append(commonOpts(bootstrap, clientID),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(5*time.Millisecond),
		kgo.RecordDeliveryTimeout(120*time.Second),
		kgo.ProducerBatchMaxBytes(int32(max(1000000, size+4096))),
		kgo.MaxBufferedRecords(100000),
		kgo.DefaultProduceTopic(topic),
		// Like the Java and librdkafka producers: let the broker auto-create the topic.
		kgo.AllowAutoTopicCreation(),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return 1, err
	}
	defer cl.Close()

	pool := makePool(seed, size)
	var (
		mu       sync.Mutex
		digest   [32]byte
		ok       int64
		errs     int64
		reported int
	)
	ctx := context.Background()
	start := time.Now()
	lastProgress := start
	for i := int64(0); i < count; i++ {
		if rate > 0 {
			target := start.Add(time.Duration(float64(i) * 1e9 / rate))
			if d := time.Until(target); d > 0 {
				time.Sleep(d)
			}
		}
		off := poolOffset(i)
		payload := pool[off : off+size]
		sum := sha256.Sum256(payload)
		value := make([]byte, 0, 32+size)
		value = append(append(value, sum[:]...), payload...)
		key := []byte(fmt.Sprintf("%d-%d", seed, i))
		h := sha256.New()
		h.Write(key)
		h.Write(value)
		var rec [32]byte
		copy(rec[:], h.Sum(nil))
		cl.Produce(ctx, &kgo.Record{Key: key, Value: value}, func(_ *kgo.Record, err error) {
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs++
				reported++
				if reported <= 10 {
					logf("produce error: %v", err)
				}
				return
			}
			ok++
			xorInto(&digest, rec)
		})
		if now := time.Now(); now.Sub(lastProgress) >= progressInterval {
			lastProgress = now
			mu.Lock()
			logf("produce progress: sent %d/%d, acked %d, errors %d", i+1, count, ok, errs)
			mu.Unlock()
		}
	}
	if err := cl.Flush(ctx); err != nil {
		logf("flush: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	totalErrs := errs
	if missing := count - ok - errs; missing > 0 {
		totalErrs += missing
	}
	emit(struct {
		Client   string `json:"client"`
		Produced int64  `json:"produced"`
		Errors   int64  `json:"errors"`
		Digest   string `json:"digest"`
	}{clientName, ok, totalErrs, hex.EncodeToString(digest[:])})
	if totalErrs == 0 && ok == count {
		return 0, nil
	}
	return 1, nil
}

// ---------------------------------------------------------------- consume

// seenKeys remembers keys compactly for the "<seed>-<i>" keys the producer writes.
type seenKeys struct {
	bySeed map[string][]uint64
	other  map[string]struct{}
}

func (s *seenKeys) add(key []byte) bool {
	k := string(key)
	if dash := strings.LastIndexByte(k, '-'); dash > 0 && dash < len(k)-1 {
		idx := k[dash+1:]
		if len(idx) <= 10 && (len(idx) == 1 || idx[0] != '0') {
			if n, err := strconv.ParseUint(idx, 10, 32); err == nil {
				bits := s.bySeed[k[:dash]]
				w := int(n / 64)
				if w >= len(bits) {
					grown := make([]uint64, max(w+1, 2*len(bits)))
					copy(grown, bits)
					bits = grown
				}
				m := uint64(1) << (n % 64)
				if bits[w]&m != 0 {
					s.bySeed[k[:dash]] = bits
					return false
				}
				bits[w] |= m
				s.bySeed[k[:dash]] = bits
				return true
			}
		}
	}
	if _, dup := s.other[k]; dup {
		return false
	}
	s.other[k] = struct{}{}
	return true
}

// consumeOpts are consume's options beyond the topic and group.
type consumeOpts struct {
	commit         string
	autoInterval   int64
	protocol       string
	sessionTimeout int64
	processMs      int64
	crashAfter     int64
	count          int64
	runFor         time.Duration
	byDuration     bool
}

func parseConsumeOpts(a args, assign bool) (consumeOpts, error) {
	var o consumeOpts
	var err error
	if a.has("max-poll-interval-ms") {
		return o, usagef("--max-poll-interval-ms: franz-go has no poll interval (it heartbeats in the background)")
	}
	if assign {
		for _, opt := range []string{"group-protocol", "session-timeout-ms"} {
			if a.has(opt) {
				return o, usagef("--%s cannot be used with --assign", opt)
			}
		}
	}
	o.byDuration = a.has("duration-s")
	if !o.byDuration && !a.has("count") {
		return o, usagef("one of --count and --duration-s is required")
	}
	if o.byDuration && a.has("timeout-s") {
		return o, usagef("--duration-s replaces --timeout-s")
	}
	if o.count, err = a.num("count", i64(1<<62), 0); err != nil {
		return o, err
	}
	var runS int64
	if o.byDuration {
		runS, err = a.num("duration-s", nil, 0)
	} else {
		runS, err = a.num("timeout-s", i64(60), 0)
	}
	if err != nil {
		return o, err
	}
	o.runFor = time.Duration(runS) * time.Second
	defCommit := "sync"
	if assign {
		defCommit = "none"
	}
	o.commit = a.strOr("commit", defCommit)
	switch o.commit {
	case "sync", "async", "per-record", "auto", "none":
	default:
		return o, usagef("--commit must be sync, async, per-record, auto or none, got: %s", o.commit)
	}
	if assign && o.commit != "none" {
		return o, usagef("--assign never commits; --commit must be none (or left out)")
	}
	if a.has("auto-commit-interval-ms") && o.commit != "auto" {
		return o, usagef("--auto-commit-interval-ms needs --commit auto")
	}
	if o.autoInterval, err = a.num("auto-commit-interval-ms", i64(1000), 1); err != nil {
		return o, err
	}
	o.protocol = a.strOr("group-protocol", "classic")
	if o.protocol != "classic" && o.protocol != "consumer" {
		return o, usagef("--group-protocol must be classic or consumer, got: %s", o.protocol)
	}
	if o.protocol == "consumer" && a.has("session-timeout-ms") {
		return o, usagef("--session-timeout-ms is the broker's with --group-protocol consumer")
	}
	if o.sessionTimeout, err = a.num("session-timeout-ms", i64(10000), 1); err != nil {
		return o, err
	}
	if o.processMs, err = a.num("process-ms", i64(0), 0); err != nil {
		return o, err
	}
	if o.crashAfter, err = a.num("crash-after", i64(0), 1); err != nil {
		return o, err
	}
	return o, nil
}

// groupOpts are the consumer group options for o.
func (o consumeOpts) groupOpts(group string, assigned *atomic.Int64) []kgo.Opt {
	opts := []kgo.Opt{
		kgo.ConsumerGroup(group),
		kgo.OnPartitionsAssigned(func(context.Context, *kgo.Client, map[string][]int32) {
			assigned.Add(1)
		}),
	}
	if o.protocol == "consumer" {
		// KIP-848: the broker assigns; franz-go runs it with a sticky or range balancer.
		opts = append(opts, kgo.ServerSideBalancer(), kgo.Balancers(kgo.CooperativeStickyBalancer()))
	} else {
		opts = append(opts,
			kgo.SessionTimeout(time.Duration(o.sessionTimeout)*time.Millisecond),
			kgo.HeartbeatInterval(time.Duration(max(1, min(1000, o.sessionTimeout/3)))*time.Millisecond),
		)
	}
	if o.commit == "auto" {
		return append(opts, kgo.AutoCommitInterval(time.Duration(o.autoInterval)*time.Millisecond))
	}
	return append(opts, kgo.DisableAutoCommit())
}

func consume(argv []string) (int, error) {
	a, err := parseArgsFlags(argv, []string{"assign"},
		"bootstrap", "topic", "group", "count", "timeout-s", "commit", "client-id", "duration-s",
		"auto-commit-interval-ms", "group-protocol", "session-timeout-ms", "max-poll-interval-ms",
		"process-ms", "crash-after")
	if err != nil {
		return 2, err
	}
	bootstrap, err := a.str("bootstrap")
	if err != nil {
		return 2, err
	}
	topic, err := a.str("topic")
	if err != nil {
		return 2, err
	}
	assign := a.has("assign")
	var group string
	if assign {
		if a.has("group") {
			return 2, usagef("--group cannot be used with --assign (it uses no group)")
		}
	} else if group, err = a.str("group"); err != nil {
		return 2, err
	}
	clientID, err := a.clientID("sluice-go-consumer")
	if err != nil {
		return 2, err
	}
	o, err := parseConsumeOpts(a, assign)
	if err != nil {
		return 2, err
	}

	var assigned atomic.Int64 // counted by the client's group goroutine
	opts := append(commonOpts(bootstrap, clientID),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(500*time.Millisecond),
	)
	if !assign {
		// Without a group, franz-go consumes every partition of the topic directly.
		opts = append(opts, o.groupOpts(group, &assigned)...)
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return 1, err
	}
	stop, stopped := stopContext()
	defer stopped()

	var (
		commits, commitErrs atomic.Int64
		polls               int64
	)
	commitNow := func(what string, commit func(context.Context) error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := commit(ctx); err != nil {
			commitErrs.Add(1)
			logf("%s commit failed (will commit again later): %v", what, err)
			return
		}
		commits.Add(1)
	}

	seen := &seenKeys{bySeed: map[string][]uint64{}, other: map[string]struct{}{}}
	var digest [32]byte
	var unique, duplicates, bad int64
	start := time.Now()
	deadline := start.Add(o.runFor)
	lastProgress := start
	for unique < o.count && stop.Err() == nil {
		left := time.Until(deadline)
		if left <= 0 {
			break
		}
		ctx, cancel := context.WithTimeout(stop, min(500*time.Millisecond, left))
		fetches := cl.PollRecords(ctx, 1000)
		cancel()
		if fetches.IsClientClosed() {
			break
		}
		polls++
		fetches.EachError(func(t string, p int32, err error) {
			if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
				return
			}
			logf("consume %s/%d: %v", t, p, err)
		})
		got := false
		fetches.EachRecord(func(r *kgo.Record) {
			got = true
			if !seen.add(r.Key) {
				duplicates++
			} else {
				unique++
				v := r.Value
				if len(v) < 32 {
					bad++
				} else if sum := sha256.Sum256(v[32:]); !bytes.Equal(sum[:], v[:32]) {
					bad++
				}
				h := sha256.New()
				h.Write(r.Key)
				h.Write(v)
				var d [32]byte
				copy(d[:], h.Sum(nil))
				xorInto(&digest, d)
			}
			if o.crashAfter > 0 && unique >= o.crashAfter {
				// A process dying mid-batch: no commit, no close, no LeaveGroup.
				emit(map[string]any{"client": clientName, "crashed": true, "consumed": unique,
					"commits": commits.Load()})
				os.Exit(3)
			}
			if o.commit == "per-record" {
				commitNow("per-record", func(ctx context.Context) error { return cl.CommitRecords(ctx, r) })
			}
		})
		if !got {
			continue
		}
		if o.processMs > 0 {
			sleepCtx(stop, time.Duration(o.processMs)*time.Millisecond)
		}
		switch o.commit {
		case "sync":
			commitNow("sync", cl.CommitUncommittedOffsets)
		case "async":
			cl.CommitOffsets(context.Background(), cl.UncommittedOffsets(),
				func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, _ *kmsg.OffsetCommitResponse, err error) {
					if err != nil {
						commitErrs.Add(1)
						logf("async commit failed: %v", err)
						return
					}
					commits.Add(1)
				})
		}
		if now := time.Now(); now.Sub(lastProgress) >= progressInterval {
			lastProgress = now
			logf("consume progress: %d unique, %d duplicates, %d bad, %d commits", unique, duplicates, bad,
				commits.Load())
		}
	}
	if !o.byDuration && unique < o.count {
		logf("timed out after %v with %d/%d records", o.runFor, unique, o.count)
	}
	// Commit what was consumed (also in auto mode), then leave the group cleanly.
	if o.commit != "none" {
		commitNow("final", cl.CommitUncommittedOffsets)
	}
	closeDone := make(chan struct{})
	go func() { cl.Close(); close(closeDone) }()
	select {
	case <-closeDone:
	case <-time.After(10 * time.Second):
		logf("close: timed out")
	}
	emit(struct {
		Client       string  `json:"client"`
		Consumed     int64   `json:"consumed"`
		Duplicates   int64   `json:"duplicates"`
		Bad          int64   `json:"bad"`
		Digest       string  `json:"digest"`
		Polls        int64   `json:"polls"`
		Commits      int64   `json:"commits"`
		CommitErrors int64   `json:"commit_errors"`
		Assignments  int64   `json:"assignments"`
		ElapsedS     float64 `json:"elapsed_s"`
	}{clientName, unique, duplicates, bad, hex.EncodeToString(digest[:]), polls, commits.Load(),
		commitErrs.Load(), assigned.Load(), float64(time.Since(start).Milliseconds()/100) / 10})
	if bad == 0 && (unique == o.count || (o.byDuration && !a.has("count"))) {
		return 0, nil
	}
	return 1, nil
}

// ------------------------------------------------------------------ admin

// The admin commands talk only to the --bootstrap (seed) brokers, never to the
// addresses advertised in Metadata: a broker forwards CreateTopics to the
// controller itself. So they work directly against a broker whose advertised
// address (normally the proxy) is not listening yet, and through the proxy alike.

func seedClient(bootstrap, clientID string) (*kgo.Client, error) {
	return kgo.NewClient(commonOpts(bootstrap, clientID)...)
}

// seedRequest sends req to the seed brokers in turn until one answers.
func seedRequest(ctx context.Context, cl *kgo.Client, req kmsg.Request) (kmsg.Response, error) {
	var lastErr error = errors.New("no seed brokers")
	for _, b := range cl.SeedBrokers() {
		resp, err := b.RetriableRequest(ctx, req)
		if err == nil {
			return resp, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

func createTopic(argv []string) (int, error) {
	a, err := parseArgs(argv, "bootstrap", "topic", "partitions", "timeout-s", "client-id")
	if err != nil {
		return 2, err
	}
	clientID, err := a.clientID("sluice-go-admin")
	if err != nil {
		return 2, err
	}
	bootstrap, err := a.str("bootstrap")
	if err != nil {
		return 2, err
	}
	topic, err := a.str("topic")
	if err != nil {
		return 2, err
	}
	partitions, err := a.num("partitions", i64(1), 1)
	if err != nil {
		return 2, err
	}
	if partitions > 1<<31-1 {
		return 2, usagef("--partitions too large")
	}
	timeoutS, err := a.num("timeout-s", i64(30), 0)
	if err != nil {
		return 2, err
	}
	cl, err := seedClient(bootstrap, clientID)
	if err != nil {
		return 1, err
	}
	defer cl.Close()

	deadline := time.Now().Add(time.Duration(timeoutS) * time.Second)
	created, done := false, false
	var lastErr error
	for !done {
		req := kmsg.NewPtrCreateTopicsRequest()
		req.TimeoutMillis = 10000
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic = topic
		rt.NumPartitions = int32(partitions)
		rt.ReplicationFactor = -1
		req.Topics = append(req.Topics, rt)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		resp, err := seedRequest(ctx, cl, req)
		cancel()
		if err == nil {
			r := resp.(*kmsg.CreateTopicsResponse)
			if len(r.Topics) != 1 {
				err = fmt.Errorf("CreateTopics answered %d topics", len(r.Topics))
			} else {
				err = kerr.ErrorForCode(r.Topics[0].ErrorCode)
			}
		}
		switch {
		case err == nil:
			created, done = true, true
		case errors.Is(err, kerr.TopicAlreadyExists):
			done = true
		default:
			lastErr = err
			if time.Now().After(deadline) {
				goto fail
			}
			logf("create-topic: %v (retrying)", err)
			time.Sleep(500 * time.Millisecond)
		}
	}
	// Wait until every partition has a leader so producers can start at once.
	for {
		req := kmsg.NewPtrMetadataRequest()
		mt := kmsg.NewMetadataRequestTopic()
		mt.Topic = kmsg.StringPtr(topic)
		req.Topics = append(req.Topics, mt)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		resp, err := seedRequest(ctx, cl, req)
		cancel()
		if err == nil {
			md := resp.(*kmsg.MetadataResponse)
			switch {
			case len(md.Topics) != 1:
				err = fmt.Errorf("topic missing from metadata")
			case md.Topics[0].ErrorCode != 0:
				err = kerr.ErrorForCode(md.Topics[0].ErrorCode)
			case len(md.Topics[0].Partitions) == 0:
				err = fmt.Errorf("no partitions yet")
			default:
				allLed := true
				for _, p := range md.Topics[0].Partitions {
					if p.Leader < 0 || p.ErrorCode != 0 {
						allLed = false
					}
				}
				if allLed {
					emit(map[string]any{"client": clientName, "topic": topic, "created": created,
						"partitions": len(md.Topics[0].Partitions)})
					return 0, nil
				}
				err = fmt.Errorf("partitions without leader")
			}
		}
		lastErr = err
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
fail:
	logf("create-topic failed: %v", lastErr)
	emit(map[string]any{"client": clientName, "topic": topic, "created": false, "error": fmt.Sprint(lastErr)})
	return 1, nil
}

func waitReady(argv []string) (int, error) {
	a, err := parseArgs(argv, "bootstrap", "timeout-s", "client-id")
	if err != nil {
		return 2, err
	}
	clientID, err := a.clientID("sluice-go-admin")
	if err != nil {
		return 2, err
	}
	bootstrap, err := a.str("bootstrap")
	if err != nil {
		return 2, err
	}
	timeoutS, err := a.num("timeout-s", i64(60), 0)
	if err != nil {
		return 2, err
	}
	cl, err := seedClient(bootstrap, clientID)
	if err != nil {
		return 1, err
	}
	defer cl.Close()
	start := time.Now()
	deadline := start.Add(time.Duration(timeoutS) * time.Second)
	lastLog := start
	var lastErr error
	for {
		req := kmsg.NewPtrMetadataRequest()
		req.Topics = []kmsg.MetadataRequestTopic{} // no topics, just brokers
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		resp, err := seedRequest(ctx, cl, req)
		cancel()
		if err == nil {
			md := resp.(*kmsg.MetadataResponse)
			if len(md.Brokers) > 0 {
				clusterID := ""
				if md.ClusterID != nil {
					clusterID = *md.ClusterID
				}
				emit(map[string]any{"client": clientName, "ready": true, "brokers": len(md.Brokers),
					"cluster_id": clusterID,
					"waited_s":   float64(time.Since(start).Milliseconds()) / 1000})
				return 0, nil
			}
			err = fmt.Errorf("no brokers in metadata")
		}
		lastErr = err
		now := time.Now()
		if now.After(deadline) {
			break
		}
		if now.Sub(lastLog) >= progressInterval {
			lastLog = now
			logf("wait-ready: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	logf("wait-ready: cluster not ready after %ds: %v", timeoutS, lastErr)
	emit(map[string]any{"client": clientName, "ready": false, "error": fmt.Sprint(lastErr)})
	return 1, nil
}

// ------------------------------------------------------------------- main

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintf(os.Stderr, "sluice-go-client: missing command\n%s\n", usage)
		os.Exit(2)
	}
	var (
		rc  int
		err error
	)
	switch cmd, rest := os.Args[1], os.Args[2:]; cmd {
	case "produce":
		rc, err = produce(rest)
	case "consume":
		rc, err = consume(rest)
	case "create-topic":
		rc, err = createTopic(rest)
	case "wait-ready":
		rc, err = waitReady(rest)
	case "produce-json":
		rc, err = produceJSON(rest)
	case "consume-loop":
		rc, err = consumeLoop(rest)
	case "churn":
		rc, err = churn(rest)
	case "-h", "--help", "help":
		fmt.Println(usage)
		os.Exit(0)
	default:
		rc, err = 2, usagef("unknown command: %s", cmd)
	}
	if err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(os.Stderr, "sluice-go-client: %v\n%s\n", err, usage)
			os.Exit(2)
		}
		logf("fatal: %v", err)
		if rc == 0 {
			rc = 1
		}
	}
	os.Exit(rc)
}
