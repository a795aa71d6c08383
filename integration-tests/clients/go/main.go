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
  consume      --bootstrap H:P --topic T --group G --count N [--timeout-s S=60] [--commit sync|auto|none]
               [--client-id ID=sluice-go-consumer]
  consume      --bootstrap H:P --topic T --assign --count N [--timeout-s S=60] [--client-id ID]
  create-topic --bootstrap H:P --topic T [--partitions P=1] [--timeout-s S=30] [--client-id ID=sluice-go-admin]
  wait-ready   --bootstrap H:P [--timeout-s S=60] [--client-id ID=sluice-go-admin]
  produce-json --bootstrap H:P --topic T --count N [--rate PER_SEC=0] [--poison-at I=-1] [--size BYTES=1000]
               [--partition P] [--client-id ID=sluice-go-producer]
  consume-loop --bootstrap H:P --topic T --group G --duration-s S [--max-partition-fetch-bytes N=1048576]
               [--fetch-max-wait-ms MS=500] [--backoff-ms MS=0] [--client-id ID=sluice-go-consumer]
  churn        --bootstrap H:P --topic T --count N [--rate PER_SEC=10] [--no-close] [--client-id ID=sluice-go-churn]

consume --commit none never commits; --assign uses no group: it consumes every
partition of the topic from the earliest offset and never commits.

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
SIGINT/SIGTERM stop produce-json, consume-loop and churn early; they still print
their summary.
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

func consume(argv []string) (int, error) {
	a, err := parseArgsFlags(argv, []string{"assign"},
		"bootstrap", "topic", "group", "count", "timeout-s", "commit", "client-id")
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
	count, err := a.num("count", nil, 0)
	if err != nil {
		return 2, err
	}
	timeoutS, err := a.num("timeout-s", i64(60), 0)
	if err != nil {
		return 2, err
	}
	defCommit := "sync"
	if assign {
		defCommit = "none"
	}
	commit := a.strOr("commit", defCommit)
	if commit != "sync" && commit != "auto" && commit != "none" {
		return 2, usagef("--commit must be sync, auto or none, got: %s", commit)
	}
	if assign && commit != "none" {
		return 2, usagef("--assign never commits; --commit must be none (or left out)")
	}
	syncCommit := commit == "sync"

	opts := append(commonOpts(bootstrap, clientID),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(500*time.Millisecond),
	)
	if !assign {
		// Without a group, franz-go consumes every partition of the topic directly.
		opts = append(opts,
			kgo.ConsumerGroup(group),
			kgo.SessionTimeout(10*time.Second),
			kgo.HeartbeatInterval(time.Second),
		)
		if commit == "auto" {
			opts = append(opts, kgo.AutoCommitInterval(time.Second))
		} else {
			opts = append(opts, kgo.DisableAutoCommit())
		}
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return 1, err
	}

	seen := &seenKeys{bySeed: map[string][]uint64{}, other: map[string]struct{}{}}
	var digest [32]byte
	var unique, duplicates, bad int64
	start := time.Now()
	deadline := start.Add(time.Duration(timeoutS) * time.Second)
	lastProgress := start
	for unique < count {
		left := time.Until(deadline)
		if left <= 0 {
			break
		}
		ctx, cancel := context.WithTimeout(context.Background(), min(500*time.Millisecond, left))
		fetches := cl.PollRecords(ctx, 1000)
		cancel()
		if fetches.IsClientClosed() {
			break
		}
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
				return
			}
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
		})
		if syncCommit && got {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if err := cl.CommitUncommittedOffsets(ctx); err != nil {
				logf("commit failed (will retry with the next batch): %v", err)
			}
			cancel()
		}
		if now := time.Now(); now.Sub(lastProgress) >= progressInterval {
			lastProgress = now
			logf("consume progress: %d/%d unique, %d duplicates, %d bad", unique, count, duplicates, bad)
		}
	}
	if unique < count {
		logf("timed out after %ds with %d/%d records", timeoutS, unique, count)
	}
	// Commit what was consumed (also in auto mode), then leave the group cleanly.
	if commit != "none" {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := cl.CommitUncommittedOffsets(ctx); err != nil {
			logf("final commit failed: %v", err)
		}
		cancel()
	}
	closeDone := make(chan struct{})
	go func() { cl.Close(); close(closeDone) }()
	select {
	case <-closeDone:
	case <-time.After(10 * time.Second):
		logf("close: timed out")
	}
	emit(struct {
		Client     string `json:"client"`
		Consumed   int64  `json:"consumed"`
		Duplicates int64  `json:"duplicates"`
		Bad        int64  `json:"bad"`
		Digest     string `json:"digest"`
	}{clientName, unique, duplicates, bad, hex.EncodeToString(digest[:])})
	if unique == count && bad == 0 {
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
