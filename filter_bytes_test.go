package evlog

import (
	"fmt"
	"iter"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/evlog/evlog/internal/vfs"
)

// buildFilterLog appends n events to a new log on fsys: streams
// "order-0".."order-{streams-1}" round robin, except that every 1000th
// event goes to one of two "audit-" streams (0.1% of the events, spread
// over every segment: no segment can be skipped whole).
func buildFilterLog(tb testing.TB, fsys vfs.FS, n, streams int, segSize int64) {
	tb.Helper()
	l := openMem(tb, fsys, Options{SegmentSize: segSize, Sync: SyncNever, Clock: fakeClock(t0, time.Millisecond)})
	data := make([]byte, 100)
	const batch = 500
	reqs := make([]AppendRequest, 0, batch)
	for i := range n {
		s := fmt.Sprintf("order-%d", i%streams)
		if i%1000 == 999 {
			s = fmt.Sprintf("audit-%d", i%2)
		}
		reqs = append(reqs, AppendRequest{Stream: s, Expect: ExpectAny, Events: []Envelope{{Type: "t", Data: data}}})
		if len(reqs) == batch || i == n-1 {
			if _, err := l.AppendBatch(tb.Context(), reqs); err != nil {
				tb.Fatal(err)
			}
			reqs = reqs[:0]
		}
	}
	if err := l.Close(); err != nil {
		tb.Fatal(err)
	}
}

// bytesRead opens the log on fsys read-only (fresh: no cached summaries)
// and returns the bytes one read by it takes and the events it yields.
func bytesRead(tb testing.TB, fsys vfs.FS, read func(l *Log) int) (int64, int) {
	tb.Helper()
	c := vfs.NewCounting(vfs.ReadOnly(fsys))
	l, err := openFS(c, Options{}, true)
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	c.Reset()
	n := read(l)
	return c.Total().BytesRead, n
}

func countEvents(tb testing.TB, it func(yield func(Envelope, error) bool)) int {
	n := 0
	for _, err := range it {
		if err != nil {
			tb.Fatal(err)
		}
		n++
	}
	return n
}

// filterFixtureEvents is the size of filterFixture's log. Its 1 MiB
// segments hold a quarter of what the 4 MiB segments of the 200k-event log
// it replaced held, with a quarter of the streams, so the ratios the tests
// bound stay those of the larger log (TestEventsFilteredManyStreams 3.4%
// of a full scan against 2.8%; a read that falls back to scanning takes
// 98%) at a quarter of the time.
const filterFixtureEvents = 50_000

// filterFixture builds (skipping t in -short mode) a log of
// filterFixtureEvents events over the given number of order streams in
// 1 MiB segments (see buildFilterLog) and returns it with the bytes an
// unfiltered scan of it reads.
func filterFixture(t *testing.T, streams int) (*vfs.Mem, int64) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds a 50k-event log")
	}
	mem := vfs.NewMem()
	buildFilterLog(t, mem, filterFixtureEvents, streams, 1<<20)
	all, nall := bytesRead(t, mem, func(l *Log) int { return countEvents(t, l.Events(t.Context(), 1)) })
	if nall != filterFixtureEvents {
		t.Fatalf("an unfiltered scan read %d events, want %d", nall, filterFixtureEvents)
	}
	return mem, all
}

// TestEventsFilteredReadsLittle: a stream-prefix filter matching 0.1% of
// 50k events (in every segment) reads at most 5% of the bytes an
// unfiltered scan reads, counted at the file system.
func TestEventsFilteredReadsLittle(t *testing.T) {
	const n = filterFixtureEvents
	mem, all := filterFixture(t, 500)
	ctx := t.Context()
	f := Filter{StreamPrefixes: []string{"audit-"}}
	some, nsome := bytesRead(t, mem, func(l *Log) int { return countEvents(t, l.EventsFiltered(ctx, 1, f)) })
	if nsome != n/1000 {
		t.Fatalf("read %d events, want %d", nsome, n/1000)
	}
	ratio := float64(some) / float64(all)
	t.Logf("unfiltered %d bytes, filtered %d bytes: %.2f%%", all, some, 100*ratio)
	if ratio > 0.05 {
		t.Fatalf("the filtered read took %.2f%% of the bytes of a full scan, want at most 5%%", 100*ratio)
	}
	// The same through a subscription's catch-up.
	sub, nsub := bytesRead(t, mem, func(l *Log) int {
		k := 0
		for _, err := range l.SubscribeFiltered(ctx, 1, f) {
			if err != nil {
				t.Fatal(err)
			}
			if k++; k == n/1000 {
				break
			}
		}
		return k
	})
	t.Logf("filtered subscription catch-up: %d bytes", sub)
	if nsub != n/1000 || float64(sub)/float64(all) > 0.05 {
		t.Fatalf("filtered subscription: %d events, %d bytes (%.2f%% of a full scan)", nsub, sub, 100*float64(sub)/float64(all))
	}
}

// BenchmarkEventsFiltered reads a log of EVLOG_FILTER_N events (default
// 1M; the figure is 10M) over EVLOG_FILTER_STREAMS order streams
// (default 10000), 64 MiB segments on disk, with and without a stream
// prefix filter matching 0.1% of them; it reports bytes read per
// iteration and, for the filter, its ratio to a full scan.
func BenchmarkEventsFiltered(b *testing.B) {
	n := envInt("EVLOG_FILTER_N", 1_000_000)
	streams := envInt("EVLOG_FILTER_STREAMS", 10_000)
	fsys, err := vfs.CreateOSPerm(b.TempDir(), 0o600)
	if err != nil {
		b.Fatal(err)
	}
	defer fsys.Close()
	buildFilterLog(b, fsys, n, streams, DefaultSegmentSize)
	ctx := b.Context()
	full, _ := bytesRead(b, fsys, func(l *Log) int { return countEvents(b, l.Events(ctx, 1)) })
	for _, tc := range []struct {
		name string
		f    Filter
	}{
		{"filter=none", Filter{}},
		{"filter=prefix0.1%", Filter{StreamPrefixes: []string{"audit-"}}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var bytes int64
			for b.Loop() {
				bytes, _ = bytesRead(b, fsys, func(l *Log) int { return countEvents(b, l.EventsFiltered(ctx, 1, tc.f)) })
			}
			b.ReportMetric(float64(bytes), "bytes-read/op")
			b.ReportMetric(100*float64(bytes)/float64(full), "%-of-scan")
		})
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// TestEventsFilteredManyStreams: with many streams per segment (here about
// one event per stream and segment, the footer's stream index a large
// part of each segment), a stream-prefix filter, a category read and a
// filter on a category matching 0.1% of the events still read at most 5%
// of the bytes of an unfiltered scan: a version 4 footer's name-ordered
// index leads them to the blocks of the prefix's names only, where the
// hash-ordered blocks alone had them read every stream's entry (about a
// quarter of a full scan here).
func TestEventsFilteredManyStreams(t *testing.T) {
	const n = filterFixtureEvents
	mem, all := filterFixture(t, 5000)
	ctx := t.Context()
	for _, tc := range []struct {
		name string
		read func(l *Log) iter.Seq2[Envelope, error]
	}{
		{"prefix filter", func(l *Log) iter.Seq2[Envelope, error] {
			return l.EventsFiltered(ctx, 1, Filter{StreamPrefixes: []string{"audit-"}})
		}},
		{"category filter", func(l *Log) iter.Seq2[Envelope, error] {
			return l.EventsFiltered(ctx, 1, Filter{Categories: []string{"audit"}})
		}},
		{"category", func(l *Log) iter.Seq2[Envelope, error] { return l.Category(ctx, "audit", 1) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			some, nsome := bytesRead(t, mem, func(l *Log) int { return countEvents(t, tc.read(l)) })
			if nsome != n/1000 {
				t.Fatalf("read %d events, want %d", nsome, n/1000)
			}
			ratio := float64(some) / float64(all)
			t.Logf("unfiltered %d bytes, filtered %d bytes: %.2f%%", all, some, 100*ratio)
			if ratio > 0.05 {
				t.Fatalf("the filtered read took %.2f%% of the bytes of a full scan, want at most 5%%", 100*ratio)
			}
		})
	}
}
