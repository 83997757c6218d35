package evlog

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/evlog/evlog/event"
	"github.com/evlog/evlog/segment"
)

// Benchmarks of the core log against a raw baseline: the same frames
// (segment.AppendEventFrame, CRC32C, one commit frame per batch), written
// with bufio and fsynced per batch, the payload encoded with the same
// msgpack/v5 call the typed view uses; and its reader. The ratio
// evlog/raw measures the engine, not the codec. Run:
//
//	go test -run '^$' -bench . -benchtime 2x .
var (
	benchEvents = flag.Int("evlog.events", 200_000, "events in read benchmarks")
	benchDur    = flag.Duration("evlog.dur", time.Second, "duration of fixed-duration append benchmarks")
)

// benchItem is a ~100-byte payload.
type benchItem struct {
	Name   string
	Rarity string
	Origin string
	Count  int
	Pad    string
}

func newBenchItem(i int) benchItem {
	return benchItem{Name: fmt.Sprintf("item-%06d", i%100000), Rarity: "legendary", Origin: "dungeon-of-doom", Count: i, Pad: "0123456789012345678901234567890123456789"}
}

// rawLog is the baseline writer.
type rawLog struct {
	f    *os.File
	w    *bufio.Writer
	buf  []byte
	enc  *msgpack.Encoder
	pbuf bytes.Buffer
	seq  uint64
	ver  map[string]uint64
}

func newRawLog(b testing.TB, path string) *rawLog {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	r := &rawLog{f: f, w: bufio.NewWriterSize(f, 1<<20), ver: make(map[string]uint64)}
	r.enc = msgpack.NewEncoder(&r.pbuf)
	r.enc.UseCompactInts(true)
	r.enc.SetSortMapKeys(true)
	return r
}

func (r *rawLog) append(stream string, items []benchItem) error {
	return r.appendEach(items, func(int) string { return stream })
}

// appendSpread is append with every event in its own stream (of 10k).
func (r *rawLog) appendSpread(items []benchItem, i int) error {
	return r.appendEach(items, func(j int) string { return fmt.Sprintf("s-%d", (i*len(items)+j)%10_000) })
}

// appendEach writes items as one batch (event j in stream streamOf(j)),
// then a commit frame, and fsyncs.
func (r *rawLog) appendEach(items []benchItem, streamOf func(j int) string) error {
	first := r.seq + 1
	now := time.Now().UnixNano()
	for j := range items {
		r.pbuf.Reset()
		if err := r.enc.Encode(&items[j]); err != nil {
			return err
		}
		stream := streamOf(j)
		r.seq++
		r.ver[stream]++
		e := event.Envelope{Seq: r.seq, Stream: stream, Version: r.ver[stream], Type: "item_added", SchemaVersion: 1,
			Time: time.Unix(0, now), Data: r.pbuf.Bytes()}
		r.buf = segment.AppendEventFrame(r.buf[:0], &e)
		if _, err := r.w.Write(r.buf); err != nil {
			return err
		}
	}
	r.buf = segment.AppendCommitFrame(r.buf[:0], segment.Commit{FirstSeq: first, Count: uint32(len(items))})
	if _, err := r.w.Write(r.buf); err != nil {
		return err
	}
	if err := r.w.Flush(); err != nil {
		return err
	}
	return r.f.Sync()
}

// rawRead reads every frame and decodes envelopes and payloads.
func rawRead(path string, fn func(*event.Envelope, *benchItem)) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	st, _ := f.Stat()
	r := segment.NewReader(f, 0, st.Size())
	var (
		dec  segment.Decoder
		env  event.Envelope
		item benchItem
		rd   bytes.Reader
		n    int
	)
	md := msgpack.NewDecoder(&rd)
	for {
		fr, err := r.Next()
		if err != nil {
			if err.Error() == "EOF" {
				return n, nil
			}
			return n, err
		}
		if fr.Kind != segment.KindEvent {
			continue
		}
		if err := dec.Decode(fr.Payload, &env); err != nil {
			return n, err
		}
		rd.Reset(env.Data)
		md.ResetReader(&rd)
		item = benchItem{}
		if err := md.Decode(&item); err != nil {
			return n, err
		}
		fn(&env, &item)
		n++
	}
}

func benchItems(n, offset int) []benchItem {
	items := make([]benchItem, n)
	for i := range items {
		items[i] = newBenchItem(offset + i)
	}
	return items
}

// BenchmarkAppendBatch: batches of 1,000 events, fsync per batch.
func BenchmarkAppendBatch(b *testing.B) {
	const batch = 1000
	items := benchItems(batch, 0)
	b.Run("impl=raw", func(b *testing.B) {
		r := newRawLog(b, filepath.Join(b.TempDir(), "raw"))
		defer r.f.Close()
		i := 0
		for b.Loop() {
			if err := r.append(fmt.Sprintf("s-%d", i%100), items); err != nil {
				b.Fatal(err)
			}
			i++
		}
		b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "events/s")
	})
	b.Run("impl=evlog", func(b *testing.B) {
		l, err := Open(b.TempDir(), Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer l.Close()
		tl := Typed[benchItem](l)
		evs := make([]Event[benchItem], batch)
		for i := range evs {
			evs[i] = Event[benchItem]{Type: "item_added", Data: items[i]}
		}
		ctx := context.Background()
		i := 0
		b.ReportAllocs()
		for b.Loop() {
			if _, err := tl.Append(ctx, fmt.Sprintf("s-%d", i%100), ExpectAny, evs...); err != nil {
				b.Fatal(err)
			}
			i++
		}
		b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "events/s")
	})
	// One batch of 1,000 events over 1,000 streams (10k streams in all).
	b.Run("impl=raw/streams=1000", func(b *testing.B) {
		r := newRawLog(b, filepath.Join(b.TempDir(), "raw"))
		defer r.f.Close()
		i := 0
		for b.Loop() {
			if err := r.appendSpread(items, i); err != nil {
				b.Fatal(err)
			}
			i++
		}
		b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "events/s")
	})
	b.Run("impl=evlog/streams=1000", func(b *testing.B) {
		l, err := Open(b.TempDir(), Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer l.Close()
		tl := Typed[benchItem](l)
		evs := make([]Event[benchItem], batch)
		parts := make([]Batch[benchItem], batch)
		names := make([]string, 10_000)
		for i := range names {
			names[i] = fmt.Sprintf("s-%d", i)
		}
		ctx := context.Background()
		i := 0
		b.ReportAllocs()
		for b.Loop() {
			for j := range parts {
				evs[j] = Event[benchItem]{Type: "item_added", Data: items[j]}
				parts[j] = Batch[benchItem]{Stream: names[(i*batch+j)%len(names)], Expect: ExpectAny, Events: evs[j : j+1]}
			}
			if _, err := tl.AppendBatch(ctx, parts); err != nil {
				b.Fatal(err)
			}
			i++
		}
		b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "events/s")
	})
}

// BenchmarkAppendSingle: single-event durable appends for a fixed
// duration (-evlog.dur), by 1 and 64 concurrent writers.
func BenchmarkAppendSingle(b *testing.B) {
	for _, writers := range []int{1, 64} {
		b.Run(fmt.Sprintf("impl=evlog/writers=%d", writers), func(b *testing.B) {
			l, err := Open(b.TempDir(), Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			tl := Typed[benchItem](l)
			var total atomic.Int64
			var elapsed time.Duration
			for b.Loop() {
				start := time.Now()
				deadline := start.Add(*benchDur)
				var wg sync.WaitGroup
				for w := range writers {
					wg.Go(func() {
						ev := Event[benchItem]{Type: "item_added", Data: newBenchItem(w)}
						s := fmt.Sprintf("w-%d", w)
						for time.Now().Before(deadline) {
							if _, err := tl.Append(context.Background(), s, ExpectAny, ev); err != nil {
								b.Error(err)
								return
							}
							total.Add(1)
						}
					})
				}
				wg.Wait()
				elapsed += time.Since(start)
			}
			b.ReportMetric(float64(total.Load())/elapsed.Seconds(), "events/s")
			st := l.Stats()
			b.ReportMetric(float64(st.GroupEvents)/float64(st.Groups), "events/fsync")
		})
	}
}

// replayFixture writes n events once per process, for the read benchmarks.
var replayFixture struct {
	once sync.Once
	dir  string
	raw  string
	err  error
}

func replayDirs(b *testing.B) (evlogDir, rawPath string) {
	f := &replayFixture
	f.once.Do(func() {
		f.dir, f.err = os.MkdirTemp("", "evlog-bench-")
		if f.err != nil {
			return
		}
		l, err := Open(filepath.Join(f.dir, "log"), Options{Sync: SyncNever})
		if err != nil {
			f.err = err
			return
		}
		r := newRawLog(b, filepath.Join(f.dir, "raw"))
		tl := Typed[benchItem](l)
		ctx := context.Background()
		for i := 0; i < *benchEvents; i += 1000 {
			items := benchItems(min(1000, *benchEvents-i), i)
			evs := make([]Event[benchItem], len(items))
			for j := range evs {
				evs[j] = Event[benchItem]{Type: "item_added", Data: items[j]}
			}
			s := fmt.Sprintf("s-%d", (i/1000)%100)
			if _, err := tl.Append(ctx, s, ExpectAny, evs...); err != nil {
				f.err = err
				return
			}
			if err := r.append(s, items); err != nil {
				f.err = err
				return
			}
		}
		r.f.Close()
		f.err = l.Close()
		f.raw = filepath.Join(f.dir, "raw")
	})
	if f.err != nil {
		b.Fatal(f.err)
	}
	return filepath.Join(f.dir, "log"), f.raw
}

// BenchmarkReplay: full sequential read decoding the typed payload.
func BenchmarkReplay(b *testing.B) {
	dir, raw := replayDirs(b)
	b.Run("impl=raw", func(b *testing.B) {
		var ms0, ms1 runtime.MemStats
		runtime.ReadMemStats(&ms0)
		n := 0
		for b.Loop() {
			k, err := rawRead(raw, func(*event.Envelope, *benchItem) {})
			if err != nil {
				b.Fatal(err)
			}
			n += k
		}
		runtime.ReadMemStats(&ms1)
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
		b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/float64(n), "allocs/event")
	})
	b.Run("impl=evlog", func(b *testing.B) {
		l, err := OpenReadOnly(dir, Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer l.Close()
		tl := Typed[benchItem](l)
		ctx := context.Background()
		var ms0, ms1 runtime.MemStats
		runtime.ReadMemStats(&ms0)
		n := 0
		for b.Loop() {
			for _, err := range tl.Events(ctx, 1) {
				if err != nil {
					b.Fatal(err)
				}
				n++
			}
		}
		runtime.ReadMemStats(&ms1)
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
		b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/float64(n), "allocs/event")
	})
}

// bigLogs builds (once per process) logs of 1M and, with -evlog.big,
// 10M events of ~100-byte payloads in 10k streams, where stream "s-7"
// has exactly 100 events spread over the log.
var benchBig = flag.Bool("evlog.big", false, "also build and measure a 10M-event log (≈1.3 GB of disk)")

var bigFixtures sync.Map // events → dir

func bigFixture(b *testing.B, events int) string {
	if d, ok := bigFixtures.Load(events); ok {
		return d.(string)
	}
	dir, err := os.MkdirTemp("", fmt.Sprintf("evlog-big-%d-", events))
	if err != nil {
		b.Fatal(err)
	}
	l, err := Open(dir, Options{Sync: SyncNever})
	if err != nil {
		b.Fatal(err)
	}
	tl := Typed[benchItem](l)
	ctx := context.Background()
	every := events / 100
	var reqs []AppendRequest
	for i := range events {
		s := fmt.Sprintf("s-%d", 1000+i%9000)
		if i%every == every/2 {
			s = "s-7"
		}
		req, err := tl.Request(s, ExpectAny, Event[benchItem]{Type: "item_added", Data: newBenchItem(i)})
		if err != nil {
			b.Fatal(err)
		}
		reqs = append(reqs, req)
		if len(reqs) == 1000 || i == events-1 {
			if _, err := l.AppendBatch(ctx, reqs); err != nil {
				b.Fatal(err)
			}
			reqs = reqs[:0]
		}
	}
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	bigFixtures.Store(events, dir)
	return dir
}

func bigSizes() []int {
	if *benchBig {
		return []int{1_000_000, 10_000_000}
	}
	return []int{1_000_000}
}

// BenchmarkOpen: opening a log reads only the sealed segments' headers and
// trailers and scans the newest segment: flat in the log's size.
func BenchmarkOpen(b *testing.B) {
	for _, n := range bigSizes() {
		b.Run(fmt.Sprintf("events=%d", n), func(b *testing.B) {
			dir := bigFixture(b, n)
			for b.Loop() {
				l, err := Open(dir, Options{})
				if err != nil {
					b.Fatal(err)
				}
				l.Close()
			}
		})
	}
}

// BenchmarkStreamRead: one 100-event stream out of 10k streams, read
// through the per-segment stream index, against a full scan filtering it.
func BenchmarkStreamRead(b *testing.B) {
	for _, n := range bigSizes() {
		dir := bigFixture(b, n)
		l, err := OpenReadOnly(dir, Options{})
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		b.Run(fmt.Sprintf("events=%d/how=index", n), func(b *testing.B) {
			for b.Loop() {
				k := 0
				for _, err := range l.Stream(ctx, "s-7", 1) {
					if err != nil {
						b.Fatal(err)
					}
					k++
				}
				if k != 100 {
					b.Fatalf("read %d events", k)
				}
			}
		})
		b.Run(fmt.Sprintf("events=%d/how=scan", n), func(b *testing.B) {
			for b.Loop() {
				k := 0
				err := l.scan(ctx, 1, 0, func(e *Envelope) error {
					if e.Stream == "s-7" {
						k++
					}
					return nil
				})
				if err != nil || k != 100 {
					b.Fatalf("read %d events: %v", k, err)
				}
			}
		})
		l.Close()
	}
}

// TestMain removes the benchmark fixtures built in temporary directories.
func TestMain(m *testing.M) {
	if err := warmSnapshotCodecs(); err != nil { // snapshot_warm_test.go
		fmt.Fprintln(os.Stderr, "warming the snapshot codecs:", err)
		os.Exit(1)
	}
	code := m.Run()
	if replayFixture.dir != "" {
		os.RemoveAll(replayFixture.dir)
	}
	bigFixtures.Range(func(_, d any) bool { os.RemoveAll(d.(string)); return true })
	if compressedFixture.dir != "" {
		os.RemoveAll(compressedFixture.dir)
	}
	os.Exit(code)
}
