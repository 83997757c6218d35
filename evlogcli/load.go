package evlogcli

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/segment"
)

const loadAbout = `
The load generator of benchmark suites and crash tests. It creates DIR if
missing (and fsyncs its parent), takes the writer lock, and appends --count
events in batches of --batch, each batch one atomic multi-stream append.
Event n (1-based within this run) has stream "s-<n mod S>", type "load" and
data {"n": n, "pad": "x" repeated --size times} (msgpack).

Stdout carries only lines "acked SEQ", exactly one per batch (SEQ: that
batch's last seq), in seq order, each written in one write as soon as the
batch is durable: with --sync always when its fsync returned; with
--sync interval when the periodic fsync (every --sync-interval) covers it;
with --sync never there are none. With --format jsonl the lines are
{"acked":SEQ}. On a write or fsync error no further ack is printed, and
load exits 1 without retrying. A second writer on DIR exits 1 at once with
"locked" in its message, having written nothing.`

// loadCmd is "evlogctl load".
type loadCmd struct {
	count        int64
	size         byteSize
	batch        int
	sync         string
	streams      int64
	segmentSize  byteSize
	syncInterval time.Duration
	format       string
}

func runLoad(ctx context.Context, e *env, args []string) error {
	c := loadCmd{size: 100}
	f := newFlags("load", "load DIR --count N --size BYTES --batch K --sync always|interval|never --streams S [--segment-size BYTES] [--sync-interval D]", loadAbout)
	f.Int64Var(&c.count, "count", 1000, "append `N` events")
	f.Var(&c.size, "size", "pad every event's data with `BYTES` bytes")
	f.IntVar(&c.batch, "batch", 1, "events per batch (one atomic append): `K`")
	f.StringVar(&c.sync, "sync", "always", "when to fsync: `always|interval|never`")
	f.Int64Var(&c.streams, "streams", 10, "spread the events over `S` streams")
	f.Var(&c.segmentSize, "segment-size", "seal a segment once it reaches `BYTES` (default 64MiB, at least 4KiB)")
	f.DurationVar(&c.syncInterval, "sync-interval", 100*time.Millisecond, "with --sync interval: the fsync period `D`")
	f.format(&c.format, "text", "jsonl")
	pos, err := f.parse(e, args, "DIR")
	if err != nil {
		return err
	}
	opts, err := c.options(f, e)
	if err != nil {
		return err
	}
	return fail("load", c.run(ctx, e, pos[0], opts))
}

// options checks the flags and returns the log's options.
func (c *loadCmd) options(f *flags, e *env) (evlog.Options, error) {
	opts := evlog.Options{SegmentSize: int64(c.segmentSize), Clock: e.now, MaxBatchSize: evlog.MaxMaxBatchSize}
	switch c.sync {
	case "always":
		opts.Sync = evlog.SyncAlways
	case "interval":
		if c.syncInterval <= 0 {
			return opts, usagef("load", "--sync-interval %v: must be positive", c.syncInterval)
		}
		opts.Sync = evlog.SyncInterval(c.syncInterval)
	case "never":
		opts.Sync = evlog.SyncNever
	default:
		return opts, usagef("load", "--sync %q: use always, interval or never", c.sync)
	}
	if f.isSet("sync-interval") && c.sync != "interval" {
		return opts, usagef("load", "--sync-interval goes with --sync interval")
	}
	switch {
	case c.count < 0:
		return opts, usagef("load", "--count %d: must be at least 0", c.count)
	case c.batch < 1:
		return opts, usagef("load", "--batch %d: must be at least 1", c.batch)
	case c.streams < 1:
		return opts, usagef("load", "--streams %d: must be at least 1", c.streams)
	case c.segmentSize != 0 && (c.segmentSize < evlog.MinSegmentSize || c.segmentSize > evlog.MaxSegmentSize):
		return opts, usagef("load", "--segment-size %d: must be between %d and %d", c.segmentSize, evlog.MinSegmentSize, evlog.MaxSegmentSize)
	}
	// The largest event this run appends, with the fields the log assigns
	// at their widest, as the log measures it.
	widest := evlog.Envelope{Seq: math.MaxUint64, Version: math.MaxUint64, SchemaVersion: math.MaxUint32,
		Stream: streamName(c.streams-1, c.streams), Type: "load", Time: time.Unix(0, math.MinInt64),
		Data: loadData(nil, uint64(max(c.count, 1)), strings.Repeat("x", int(min(c.size, evlog.MaxMaxEventSize+1))))}
	es := segment.EncodedSize(&widest)
	if c.size > evlog.DefaultMaxEventSize || es > evlog.DefaultMaxEventSize {
		return opts, usagef("load", "--size %d: an event would be over the maximum event size (%d bytes, envelope included)", c.size, evlog.DefaultMaxEventSize)
	}
	if bs := int64(es+segment.CommitFrameSize) * int64(c.batch); bs > evlog.MaxMaxBatchSize {
		return opts, usagef("load", "--batch %d of --size %d: a batch would be over the maximum batch size (%d bytes)", c.batch, c.size, evlog.MaxMaxBatchSize)
	}
	return opts, nil
}

// streamName is the stream of event n: "s-<n mod S>".
func streamName(n, streams int64) string { return "s-" + strconv.FormatInt(n%streams, 10) }

// loadData appends the msgpack map {"n": n, "pad": pad} to dst.
func loadData(dst []byte, n uint64, pad string) []byte {
	dst = append(dst, 0x82)
	dst = mpAppendStr(dst, "n")
	dst = mpAppendUint(dst, n)
	dst = mpAppendStr(dst, "pad")
	return mpAppendStr(dst, pad)
}

func (c *loadCmd) run(ctx context.Context, e *env, dir string, opts evlog.Options) error {
	l, err := evlog.Open(dir, opts)
	if err != nil {
		return err
	}
	reportRecovery(e, "load", l)
	err = c.load(ctx, e, l)
	if cerr := l.Close(); err == nil {
		err = cerr
	}
	return err
}

// load appends the events and prints the acks.
func (c *loadCmd) load(ctx context.Context, e *env, l *evlog.Log) error {
	ack := func(seq uint64) error {
		var line []byte
		if c.format == "jsonl" {
			line = fmt.Appendf(nil, "{\"acked\":%d}\n", seq)
		} else {
			line = fmt.Appendf(nil, "acked %d\n", seq)
		}
		_, err := e.stdout.Write(line) // one write per ack
		return err
	}
	var acker *intervalAcker
	if c.sync == "interval" {
		acker = startAcker(ctx, l, ack)
	}
	pad := strings.Repeat("x", int(c.size))
	var (
		reqs   []evlog.AppendRequest
		events = make([]evlog.Envelope, c.batch)
		datas  = make([][]byte, c.batch)
		err    error
	)
	for n := int64(1); n <= c.count && err == nil; {
		k := int(min(int64(c.batch), c.count-n+1))
		reqs = reqs[:0]
		for i := range k {
			m := n + int64(i)
			d := loadData(datas[i][:0], uint64(m), pad)
			datas[i] = d
			events[i] = evlog.Envelope{Type: "load", Data: d}
			stream := streamName(m, c.streams)
			if j := len(reqs) - 1; j >= 0 && reqs[j].Stream == stream {
				reqs[j].Events = events[i-len(reqs[j].Events) : i+1]
			} else {
				reqs = append(reqs, evlog.AppendRequest{Stream: stream, Expect: evlog.ExpectAny, Events: events[i : i+1]})
			}
		}
		var pos []evlog.Position
		pos, err = l.AppendBatch(ctx, reqs)
		if err != nil {
			break
		}
		seq := pos[len(pos)-1].Seq
		switch c.sync {
		case "always":
			err = ack(seq)
		case "interval":
			err = acker.add(seq)
		}
		n += int64(k)
	}
	if acker != nil {
		if err == nil {
			err = l.Sync(ctx) // the last batches need not wait for the next tick
		}
		err = errors.Join(err, acker.finish(err != nil))
	}
	return err
}

// intervalAcker prints the acks of --sync interval: a goroutine waits for
// each batch to become durable while the appends go on.
type intervalAcker struct {
	seqs chan uint64
	stop atomic.Bool // no further acks
	done chan struct{}
	err  error // set before done is closed
}

func startAcker(ctx context.Context, l *evlog.Log, ack func(uint64) error) *intervalAcker {
	a := &intervalAcker{seqs: make(chan uint64, 1<<16), done: make(chan struct{})}
	go func() {
		defer close(a.done)
		defer func() {
			if r := recover(); r != nil {
				a.err = &internalError{msg: fmt.Sprint(r)}
			}
		}()
		for seq := range a.seqs {
			if err := l.WaitDurable(ctx, seq); err != nil {
				a.err = err
				return
			}
			if a.stop.Load() {
				return
			}
			if err := ack(seq); err != nil {
				a.err = err
				return
			}
		}
	}()
	return a
}

// add queues the ack of a batch ending at seq.
func (a *intervalAcker) add(seq uint64) error {
	select {
	case a.seqs <- seq:
		return nil
	case <-a.done:
		return a.err
	}
}

// finish waits for the queued acks (or, when abandon is set, stops
// printing them) and returns the acker's error.
func (a *intervalAcker) finish(abandon bool) error {
	if abandon {
		a.stop.Store(true) // a failed run prints no further acks
	}
	close(a.seqs)
	<-a.done
	return a.err
}
