package evlog

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/segment"
)

// streamModel groups every event of l (read by readAll, a forward scan)
// by stream, in version order: the model StreamBackward and Streams are
// checked against.
func streamModel(t testing.TB, l *Log) map[string][]Envelope {
	t.Helper()
	m := map[string][]Envelope{}
	for _, e := range readAll(t, l) {
		m[e.Stream] = append(m[e.Stream], e)
	}
	return m
}

// modelStreams is what Streams(prefix) should list, by the model.
func modelStreams(m map[string][]Envelope, prefix string) []StreamInfo {
	var out []StreamInfo
	for name, evs := range m {
		if strings.HasPrefix(name, prefix) {
			last := evs[len(evs)-1]
			out = append(out, StreamInfo{Stream: name, Version: last.Version, FirstSeq: evs[0].Seq, LastSeq: last.Seq, LastTime: last.Time})
		}
	}
	slices.SortFunc(out, func(a, b StreamInfo) int { return strings.Compare(a.Stream, b.Stream) })
	return out
}

func collectStreams(t testing.TB, l *Log, prefix string) []StreamInfo {
	t.Helper()
	var out []StreamInfo
	for si, err := range l.Streams(t.Context(), prefix) {
		if err != nil {
			t.Fatalf("Streams(%q): %v", prefix, err)
		}
		out = append(out, si)
	}
	return out
}

func sameInfo(a, b StreamInfo) bool {
	return a.Stream == b.Stream && a.Version == b.Version && a.FirstSeq == b.FirstSeq && a.LastSeq == b.LastSeq && a.LastTime.Equal(b.LastTime)
}

// backward reads up to limit events (0: all) of stream backwards from
// version from.
func backward(t testing.TB, l *Log, stream string, from uint64, limit int) []Envelope {
	t.Helper()
	var out []Envelope
	for e, err := range l.StreamBackward(t.Context(), stream, from) {
		if err != nil {
			t.Fatalf("StreamBackward(%q, %d): %v", stream, from, err)
		}
		out = append(out, e)
		if len(out) == limit {
			break
		}
	}
	return out
}

// checkReadSide compares StreamBackward and Streams on l with the model
// built from a forward scan.
func checkReadSide(t *testing.T, l *Log) {
	t.Helper()
	m := streamModel(t, l)
	if len(m) == 0 {
		t.Fatal("the workload left no streams")
	}
	for _, prefix := range []string{"", "cart-", "c", "cart-1", "s", "inventory", "zz", "cart-10"} {
		want := modelStreams(m, prefix)
		for range 2 { // the second call is answered from the remembered seqs
			if got := collectStreams(t, l, prefix); !slices.EqualFunc(want, got, sameInfo) {
				t.Errorf("Streams(%q) (-model +got):\n%s", prefix, cmp.Diff(want, got))
			}
		}
	}
	for name, evs := range m {
		last := uint64(len(evs))
		for _, tc := range []struct {
			from  uint64
			limit int
		}{
			{0, 0}, {0, 20}, {0, 1}, {last, 0}, {last + 5, 3}, {1, 0}, {last / 2, 0}, {max(last/2, 1), 40}, {last - last/3, 100},
		} {
			var want []Envelope
			for i := min(tc.from, last); i >= 1 && (tc.from != 0 || i == min(tc.from, last)); i-- {
				want = append(want, evs[i-1])
			}
			if tc.from == 0 {
				want = slices.Clone(evs)
				slices.Reverse(want)
			}
			if tc.limit > 0 && len(want) > tc.limit {
				want = want[:tc.limit]
			}
			got := backward(t, l, name, tc.from, tc.limit)
			if envsEqual(want, got) {
				continue
			}
			if diff := cmp.Diff(want, got, envCmp...); diff != "" {
				t.Errorf("StreamBackward(%q, %d) limit %d (-model +got):\n%s", name, tc.from, tc.limit, diff)
			}
		}
	}
	if got := backward(t, l, "no-such-stream", 0, 0); len(got) != 0 {
		t.Errorf("StreamBackward of a missing stream yielded %d events", len(got))
	}
}

// streamWorkload appends n batches over many streams with payloads large
// enough that tiny segments roll every few batches.
func streamWorkload(t *testing.T, l *Log, n int) {
	t.Helper()
	for i := range n {
		var reqs []AppendRequest
		for p := range 1 + i%3 {
			stream := fmt.Sprintf("cart-%d", (i*7+p*3)%23)
			switch (i + p) % 5 {
			case 0:
				stream = "inventory"
			case 3:
				stream = fmt.Sprintf("s%d", i%4)
			}
			r := AppendRequest{Stream: stream, Expect: ExpectAny}
			for j := range 1 + (i+p)%4 {
				r.Events = append(r.Events, Envelope{Type: "item_added", Data: fmt.Appendf(nil, "\xa5e%04d%s", i*10+j, strings.Repeat("x", 40))})
			}
			reqs = append(reqs, r)
		}
		if _, err := l.AppendBatch(t.Context(), reqs); err != nil {
			t.Fatal(err)
		}
	}
}

// TestStreamBackwardAndStreamsModel checks backward reads and the stream
// listing against a model (a forward scan grouped by stream) across the
// active segment alone, sealed segments, compacted ones (compressed too),
// a reopened log and a read-only log beside a writer.
func TestStreamBackwardAndStreamsModel(t *testing.T) {
	small := Options{SegmentSize: MinSegmentSize, Sync: SyncNever, Clock: fakeClock(t0, time.Millisecond)}
	for _, tc := range []struct {
		name    string
		opts    Options
		batches int
		after   func(t *testing.T, l *Log) // before checking (may append more)
	}{
		{name: "active only", opts: Options{Sync: SyncNever, Clock: fakeClock(t0, time.Millisecond)}, batches: 60},
		{name: "sealed and active", opts: small, batches: 400},
		{name: "compacted", opts: small, batches: 400, after: func(t *testing.T, l *Log) {
			compact(t, l, false)
		}},
		{name: "compacted compressed", opts: small, batches: 400, after: func(t *testing.T, l *Log) {
			compact(t, l, true)
		}},
		{name: "listed, then rolled and compacted", opts: small, batches: 300, after: func(t *testing.T, l *Log) {
			checkReadSide(t, l) // builds and remembers the catalogue
			streamWorkload(t, l, 150)
			checkReadSide(t, l) // extended by the segments sealed since
			compact(t, l, true)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := vfs.NewMem()
			l := openMem(t, mem, tc.opts)
			defer l.Close()
			streamWorkload(t, l, tc.batches)
			if tc.after != nil {
				tc.after(t, l)
			}
			if tc.batches > 100 && len(l.v.segs) < 3 {
				t.Fatalf("only %d segments: the test does not cover sealed segments", len(l.v.segs))
			}
			checkReadSide(t, l)

			// A read-only log beside the writer, which appends on.
			r, err := openFS(vfs.ReadOnly(mem), Options{}, true)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			checkReadSide(t, r)
			streamWorkload(t, l, 50)
			if err := l.Sync(t.Context()); err != nil {
				t.Fatal(err)
			}
			checkReadSide(t, r) // what it saw at open
			if err := r.Refresh(); err != nil {
				t.Fatal(err)
			}
			checkReadSide(t, r)
			if diff := cmp.Diff(collectStreams(t, l, ""), collectStreams(t, r, "")); diff != "" {
				t.Errorf("read-only and writer list different streams (-writer +read-only):\n%s", diff)
			}
		})
	}
}

func compact(t *testing.T, l *Log, compress bool) {
	t.Helper()
	rep, err := l.Compact(t.Context(), CompactOptions{TargetSize: 16 << 10, Compress: compress})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Groups) == 0 {
		t.Fatal("compaction merged nothing: the test does not cover compacted segments")
	}
}

// TestStreamsCtxAndClosed: a done ctx or a closed log ends both iterations
// with that error, and nothing else.
func TestStreamsCtxAndClosed(t *testing.T) {
	l := openMem(t, vfs.NewMem(), Options{Sync: SyncNever})
	streamWorkload(t, l, 10)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	for _, err := range l.Streams(ctx, "") {
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Streams with a cancelled ctx: %v, want context.Canceled", err)
		}
	}
	for _, err := range l.StreamBackward(ctx, "inventory", 0) {
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("StreamBackward with a cancelled ctx: %v, want context.Canceled", err)
		}
	}
	l.Close()
	for _, err := range l.Streams(t.Context(), "") {
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("Streams on a closed log: %v, want ErrClosed", err)
		}
	}
}

// streamsFixture builds (once per size) a log of n events in 4 MiB
// segments: every 10th event belongs to one of 100 carts ("cart-0" to
// "cart-99"), the others to 8,100 other streams.
func streamsFixture(b *testing.B, n int) string {
	key := fmt.Sprintf("streams-%d", n)
	if d, ok := bigFixtures.Load(key); ok {
		return d.(string)
	}
	dir, err := os.MkdirTemp("", "evlog-streams-") // removed by TestMain
	if err != nil {
		b.Fatal(err)
	}
	l, err := Open(dir, Options{Sync: SyncNever, SegmentSize: 4 << 20})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	var reqs []AppendRequest
	data := make([]byte, 100)
	for i := range n {
		s := fmt.Sprintf("s-%d", 1000+i%9000)
		if i%10 == 0 {
			s = fmt.Sprintf("cart-%d", i/10%100)
		}
		reqs = append(reqs, AppendRequest{Stream: s, Expect: ExpectAny, Events: []Envelope{{Type: "item_added", Data: data}}})
		if len(reqs) == 1000 || i == n-1 {
			if _, err := l.AppendBatch(ctx, reqs); err != nil {
				b.Fatal(err)
			}
			reqs = reqs[:0]
		}
	}
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	bigFixtures.Store(key, dir)
	return dir
}

// BenchmarkStreamsAndBackward: listing the 100 carts, listing all 8,200
// streams, and reading the last 20 events of one cart cost the same in a
// log of 100k and of 1M events (once the catalogue is built: "list=cold"
// is an open plus the first listing, which reads every sealed segment's
// stream blocks).
func BenchmarkStreamsAndBackward(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		dir := streamsFixture(b, n)
		l, err := OpenReadOnly(dir, Options{})
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		list := func(b *testing.B, l *Log, prefix string, want int) {
			k := 0
			for _, err := range l.Streams(ctx, prefix) {
				if err != nil {
					b.Fatal(err)
				}
				k++
			}
			if k != want {
				b.Fatalf("listed %d streams, want %d", k, want)
			}
		}
		list(b, l, "", 8200) // builds the catalogue and remembers the seqs
		b.Run(fmt.Sprintf("events=%d/op=streams-prefix", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				list(b, l, "cart-", 100)
			}
		})
		b.Run(fmt.Sprintf("events=%d/op=streams-all", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				list(b, l, "", 8200)
			}
		})
		b.Run(fmt.Sprintf("events=%d/op=backward-20", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				k := 0
				for _, err := range l.StreamBackward(ctx, "cart-42", 0) {
					if err != nil {
						b.Fatal(err)
					}
					if k++; k == 20 {
						break
					}
				}
				if k != 20 {
					b.Fatalf("read %d events", k)
				}
			}
		})
		b.Run(fmt.Sprintf("events=%d/op=list-cold", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				l, err := OpenReadOnly(dir, Options{})
				if err != nil {
					b.Fatal(err)
				}
				list(b, l, "cart-", 100)
				l.Close()
			}
		})
		l.Close()
	}
}

// TestStreamsCorruptFooter: a damaged stream block in a sealed segment's
// footer fails Streams with a CorruptError naming the segment, never a
// partial or wrong listing, and StreamBackward likewise for a stream whose
// look-up reads it.
func TestStreamsCorruptFooter(t *testing.T) {
	mem := vfs.NewMem()
	w := openMem(t, mem, Options{SegmentSize: MinSegmentSize, Sync: SyncNever})
	streamWorkload(t, w, 200)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	names, err := mem.List()
	if err != nil {
		t.Fatal(err)
	}
	var first string
	for _, n := range names {
		if strings.HasSuffix(n, ".seg") {
			first = n
			break
		}
	}
	s, err := segment.Open(mem, first)
	if err != nil {
		t.Fatal(err)
	}
	if !s.Sealed {
		t.Fatalf("%s is not sealed", first)
	}
	// The last byte of the last stream block (name blocks and the ID
	// table may follow it).
	off := int64(-1)
	fr := segment.NewReader(s.File(), s.Trailer.RecordsEnd, s.Trailer.SummaryOff)
	for {
		f, err := fr.Next()
		if err != nil {
			break
		}
		if f.Kind == segment.KindBlock {
			off = f.Offset + f.Size() - 1
		}
	}
	s.Close()
	if off < 0 {
		t.Fatalf("%s: no stream block found", first)
	}
	data, err := mem.ReadFile(first)
	if err != nil {
		t.Fatal(err)
	}
	data[off] ^= 0x40
	if err := mem.WriteFile(first, data); err != nil {
		t.Fatal(err)
	}
	r, err := openFS(vfs.ReadOnly(mem), Options{}, true)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	n := 0
	var got error
	for _, err := range r.Streams(t.Context(), "") {
		if err != nil {
			got = err
			break
		}
		n++
	}
	ce, ok := errors.AsType[*segment.CorruptError](got)
	if !ok || ce.File != first || n != 0 {
		t.Fatalf("Streams over a damaged stream block: %d streams, then %v; want ErrCorrupt naming %s first", n, got, first)
	}
	var again error
	for _, err := range r.Streams(t.Context(), "") { // not cached as a good catalogue
		if again = err; err != nil {
			break
		}
	}
	if !errors.Is(again, ErrCorrupt) {
		t.Fatalf("second Streams: %v, want ErrCorrupt", again)
	}
}
