package evlog

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// benchCategoryEvents is the log size of BenchmarkCategory; -short uses a
// tenth.
const benchCategoryEvents = 1_000_000

// BenchmarkCategory reads a category holding 1% of a log's events (100
// streams among 10,100) with Log.Category (index-assisted) and with a
// full scan filtering by stream name, over sealed segments and the active
// one.
func BenchmarkCategory(b *testing.B) {
	n := benchCategoryEvents
	if testing.Short() {
		n /= 10
	}
	dir := b.TempDir()
	l, err := Open(dir, Options{Sync: SyncNever, SegmentSize: 16 << 20, Clock: fakeClock(t0, time.Microsecond)})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	data := []byte("\xa8payload!")
	want := 0
	for lo := 0; lo < n; lo += 1000 {
		var reqs []AppendRequest
		for i := lo; i < min(lo+1000, n); i++ {
			stream := fmt.Sprint("other-", rng.IntN(10_000))
			if i%100 == 0 {
				stream = fmt.Sprint("target-", rng.IntN(100))
				want++
			}
			reqs = append(reqs, AppendRequest{Stream: stream, Expect: ExpectAny, Events: []Envelope{{Type: "t", Data: data}}})
		}
		if _, err := l.AppendBatch(b.Context(), reqs); err != nil {
			b.Fatal(err)
		}
	}
	if err := l.Sync(b.Context()); err != nil {
		b.Fatal(err)
	}
	segs, _ := l.Segments()
	b.Logf("%d events in %d segments; the category holds %d", n, len(segs), want)
	for _, mode := range []string{"index", "fullscan"} {
		b.Run("read="+mode, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				got := 0
				if mode == "index" {
					for _, err := range l.Category(b.Context(), "target", 1) {
						if err != nil {
							b.Fatal(err)
						}
						got++
					}
				} else {
					for e, err := range l.Events(b.Context(), 1) {
						if err != nil {
							b.Fatal(err)
						}
						if strings.HasPrefix(e.Stream, "target-") {
							got++
						}
					}
				}
				if got != want {
					b.Fatalf("read %d events of the category, want %d", got, want)
				}
			}
			b.ReportMetric(float64(want), "events/op")
		})
	}
}
