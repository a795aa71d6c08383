// The incident scenarios: produce-json (JSON records with one malformed "poison"
// record), consume-loop (a consumer that seeks back to a record it cannot parse
// and never commits it, so it fetches the same data again and again) and churn
// (a new client for every record: many short-lived connections).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// stopContext is canceled by SIGINT/SIGTERM: the command stops early and still
// prints its summary.
func stopContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// sleepCtx sleeps for d or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// offsetMap renders partition -> offset as {"<p>":offset} (encoding/json sorts keys).
func offsetMap(m map[int32]int64) map[string]int64 {
	out := make(map[string]int64, len(m))
	for p, o := range m {
		out[strconv.Itoa(int(p))] = o
	}
	return out
}

func fmtOffsets(m map[int32]int64) string {
	ps := make([]int, 0, len(m))
	for p := range m {
		ps = append(ps, int(p))
	}
	sort.Ints(ps)
	s := "{"
	for i, p := range ps {
		if i > 0 {
			s += ","
		}
		s += fmt.Sprintf("%d:%d", p, m[int32(p)])
	}
	return s + "}"
}

// ----------------------------------------------------------- produce-json

// jsonValue is produce-json record i: {"i":<i>,"pad":"xx.."} padded with 'x' to
// size bytes (never shorter than the bare object); the poison record reads
// {"i":<i>, BROKEN,"pad":"xx.."} instead.
func jsonValue(i int64, size int, poison bool) []byte {
	head := `{"i":` + strconv.FormatInt(i, 10)
	if poison {
		head += ", BROKEN"
	}
	head += `,"pad":"`
	const tail = `"}`
	pad := max(0, size-len(head)-len(tail))
	out := make([]byte, 0, len(head)+pad+len(tail))
	out = append(out, head...)
	for k := 0; k < pad; k++ {
		out = append(out, 'x')
	}
	return append(out, tail...)
}

func produceJSON(argv []string) (int, error) {
	a, err := parseArgs(argv, "bootstrap", "topic", "count", "rate", "poison-at", "size", "partition", "client-id")
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
	rate, err := a.float("rate", 0, 0)
	if err != nil {
		return 2, err
	}
	poisonAt, err := a.num("poison-at", i64(-1), -1)
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
	partition, err := a.num("partition", i64(-1), 0)
	if err != nil {
		return 2, err
	}
	if partition > 1<<31-1 {
		return 2, usagef("--partition too large")
	}
	clientID, err := a.clientID("sluice-go-producer")
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
		kgo.AllowAutoTopicCreation(),
	)
	if partition >= 0 {
		opts = append(opts, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return 1, err
	}
	defer cl.Close()

	ctx, stop := stopContext()
	defer stop()
	var (
		mu           sync.Mutex
		ok, errs     int64
		reported     int
		poisonPart   int32 = -1
		poisonOffset int64 = -1
		sent         int64
	)
	start := time.Now()
	lastProgress := start
	for i := int64(0); i < count && ctx.Err() == nil; i++ {
		if rate > 0 {
			sleepCtx(ctx, time.Until(start.Add(time.Duration(float64(i)*1e9/rate))))
			if ctx.Err() != nil {
				break
			}
		}
		poison := i == poisonAt
		r := &kgo.Record{Key: []byte(fmt.Sprintf("json-%d", i)), Value: jsonValue(i, size, poison)}
		if partition >= 0 {
			r.Partition = int32(partition)
		}
		// The producer keeps running after a signal, so buffered records still go out.
		cl.Produce(context.Background(), r, func(r *kgo.Record, err error) {
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
			if poison {
				poisonPart, poisonOffset = r.Partition, r.Offset
			}
		})
		sent++
		if now := time.Now(); now.Sub(lastProgress) >= progressInterval {
			lastProgress = now
			mu.Lock()
			logf("produce-json progress: sent %d/%d, acked %d, errors %d", i+1, count, ok, errs)
			mu.Unlock()
		}
	}
	if err := cl.Flush(context.Background()); err != nil {
		logf("flush: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	totalErrs := errs
	if missing := sent - ok - errs; missing > 0 {
		totalErrs += missing
	}
	out := struct {
		Client          string `json:"client"`
		Produced        int64  `json:"produced"`
		Errors          int64  `json:"errors"`
		PoisonPartition *int32 `json:"poison_partition,omitempty"`
		PoisonOffset    *int64 `json:"poison_offset,omitempty"`
	}{Client: clientName, Produced: ok, Errors: totalErrs}
	if poisonOffset >= 0 {
		out.PoisonPartition, out.PoisonOffset = &poisonPart, &poisonOffset
	}
	emit(out)
	if totalErrs == 0 && ok == count {
		return 0, nil
	}
	return 1, nil
}

// ----------------------------------------------------------- consume-loop

func consumeLoop(argv []string) (int, error) {
	a, err := parseArgs(argv, "bootstrap", "topic", "group", "duration-s", "max-partition-fetch-bytes",
		"fetch-max-wait-ms", "backoff-ms", "client-id")
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
	group, err := a.str("group")
	if err != nil {
		return 2, err
	}
	durationS, err := a.num("duration-s", nil, 0)
	if err != nil {
		return 2, err
	}
	fetchBytes, err := a.num("max-partition-fetch-bytes", i64(1048576), 1)
	if err != nil {
		return 2, err
	}
	if fetchBytes > 1<<31-1 {
		return 2, usagef("--max-partition-fetch-bytes too large")
	}
	backoffMs, err := a.num("backoff-ms", i64(0), 0)
	if err != nil {
		return 2, err
	}
	fetchWaitMs, err := a.num("fetch-max-wait-ms", i64(500), 10) // franz-go's minimum
	if err != nil {
		return 2, err
	}
	if fetchWaitMs > 1<<31-1 {
		return 2, usagef("--fetch-max-wait-ms too large")
	}
	clientID, err := a.clientID("sluice-go-consumer")
	if err != nil {
		return 2, err
	}

	cl, err := kgo.NewClient(append(commonOpts(bootstrap, clientID),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.SessionTimeout(10*time.Second),
		kgo.HeartbeatInterval(time.Second),
		kgo.FetchMaxWait(time.Duration(fetchWaitMs)*time.Millisecond),
		kgo.FetchMaxPartitionBytes(int32(fetchBytes)),
		kgo.FetchMaxBytes(int32(max(52428800, fetchBytes))),
		kgo.DisableAutoCommit(),
		// SetOffsets and commits happen between a poll and AllowRebalance, so no
		// revoke can run in between.
		kgo.BlockRebalanceOnPoll(),
	)...)
	if err != nil {
		return 1, err
	}

	ctx, stop := stopContext()
	defer stop()
	var polls, seen, processed, failures, bytesSeen, commitErrors int64
	committed := map[int32]int64{}
	stuck := map[int32]int64{}
	start := time.Now()
	deadline := start.Add(time.Duration(durationS) * time.Second)
	lastProgress := start
	for ctx.Err() == nil {
		left := time.Until(deadline)
		if left <= 0 {
			break
		}
		pctx, cancel := context.WithTimeout(ctx, min(500*time.Millisecond, left))
		fetches := cl.PollRecords(pctx, 500)
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
		var good []*kgo.Record
		seek := map[int32]kgo.EpochOffset{}
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			seen += int64(len(p.Records))
			var lastGood *kgo.Record
			failed := false
			for _, r := range p.Records {
				bytesSeen += int64(len(r.Value))
				if failed {
					continue
				}
				if json.Valid(r.Value) {
					processed++ // "processing" is the parse itself
					lastGood = r
					continue
				}
				// Like a listener whose JSON parse throws: seek back to the failed
				// record, which is neither skipped nor committed.
				failures++
				failed = true
				stuck[p.Partition] = r.Offset
				seek[p.Partition] = kgo.EpochOffset{Epoch: r.LeaderEpoch, Offset: r.Offset}
			}
			if lastGood != nil {
				good = append(good, lastGood)
				if s, ok := stuck[p.Partition]; ok && s <= lastGood.Offset {
					delete(stuck, p.Partition)
				}
			}
		})
		if len(seek) > 0 {
			cl.SetOffsets(map[string]map[int32]kgo.EpochOffset{topic: seek})
		}
		if len(good) > 0 {
			cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if err := cl.CommitRecords(cctx, good...); err != nil {
				commitErrors++
				logf("commit failed: %v", err)
			} else {
				for _, r := range good {
					committed[r.Partition] = r.Offset + 1
				}
			}
			cancel()
		}
		cl.AllowRebalance()
		if now := time.Now(); now.Sub(lastProgress) >= progressInterval {
			lastProgress = now
			logf("consume-loop progress: %d polls, %d records seen, %d failures, committed %s, stuck at %s",
				polls, seen, failures, fmtOffsets(committed), fmtOffsets(stuck))
		}
		if len(seek) > 0 && backoffMs > 0 {
			sleepCtx(ctx, min(time.Duration(backoffMs)*time.Millisecond, time.Until(deadline)))
		}
	}
	closeDone := make(chan struct{})
	go func() { cl.Close(); close(closeDone) }()
	select {
	case <-closeDone:
	case <-time.After(10 * time.Second):
		logf("close: timed out")
	}
	emit(struct {
		Client       string           `json:"client"`
		Polls        int64            `json:"polls"`
		RecordsSeen  int64            `json:"records_seen"`
		Failures     int64            `json:"failures"`
		Committed    map[string]int64 `json:"committed"`
		StuckAt      map[string]int64 `json:"stuck_at"`
		Processed    int64            `json:"processed"`
		BytesSeen    int64            `json:"bytes_seen"`
		CommitErrors int64            `json:"commit_errors"`
	}{clientName, polls, seen, failures, offsetMap(committed), offsetMap(stuck), processed, bytesSeen, commitErrors})
	return 0, nil
}

// ------------------------------------------------------------------ churn

func churn(argv []string) (int, error) {
	a, err := parseArgsFlags(argv, []string{"no-close"}, "bootstrap", "topic", "count", "rate", "client-id")
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
	rate, err := a.float("rate", 10, 0)
	if err != nil {
		return 2, err
	}
	noClose := a.has("no-close")
	clientID, err := a.clientID("sluice-go-churn")
	if err != nil {
		return 2, err
	}
	opts := append(commonOpts(bootstrap, clientID),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordDeliveryTimeout(30*time.Second),
		kgo.DefaultProduceTopic(topic),
		kgo.AllowAutoTopicCreation(),
	)

	ctx, stop := stopContext()
	defer stop()
	var open []*kgo.Client
	var producers, sent, errs int64
	start := time.Now()
	lastProgress := start
	for i := int64(0); i < count && ctx.Err() == nil; i++ {
		if rate > 0 {
			sleepCtx(ctx, time.Until(start.Add(time.Duration(float64(i)*1e9/rate))))
			if ctx.Err() != nil {
				break
			}
		}
		cl, err := kgo.NewClient(opts...)
		if err != nil {
			errs++
			logf("new client: %v", err)
			continue
		}
		producers++
		pctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err = cl.ProduceSync(pctx, &kgo.Record{
			Key:   []byte(fmt.Sprintf("churn-%d", i)),
			Value: []byte(fmt.Sprintf(`{"i":%d}`, i)),
		}).FirstErr()
		cancel()
		if err != nil {
			errs++
			if errs <= 10 {
				logf("churn send %d: %v", i, err)
			}
		} else {
			sent++
		}
		if noClose {
			open = append(open, cl)
		} else {
			cl.Close()
		}
		if now := time.Now(); now.Sub(lastProgress) >= progressInterval {
			lastProgress = now
			logf("churn progress: %d/%d clients, %d sent, %d errors, %d open", producers, count, sent, errs, len(open))
		}
	}
	for _, cl := range open {
		cl.Close()
	}
	emit(struct {
		Client    string `json:"client"`
		Producers int64  `json:"producers"`
		Sent      int64  `json:"sent"`
		Errors    int64  `json:"errors"`
	}{clientName, producers, sent, errs})
	if errs == 0 && sent == count {
		return 0, nil
	}
	return 1, nil
}
