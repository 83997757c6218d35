package projection_test

import (
	"context"
	"flag"
	"fmt"
	"testing"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/event"
	"github.com/evlog/evlog/projection"
)

var passEvents = flag.Int("projection.events", 1_000_000, "events in BenchmarkPass")

// BenchmarkPass: one pass of two projections over a log (events/s and
// allocations per event, reading raw envelopes from disk).
func BenchmarkPass(b *testing.B) {
	l, err := evlog.Open(b.TempDir(), evlog.Options{Sync: evlog.SyncNever})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	for i := 0; i < *passEvents; i += 1000 {
		var batch []evlog.AppendRequest
		for j := i; j < min(i+1000, *passEvents); j++ {
			batch = append(batch, evlog.AppendRequest{Stream: fmt.Sprintf("s-%d", j%1000), Expect: evlog.ExpectAny,
				Events: []event.Envelope{{Type: []string{"a", "b", "c"}[j%3], Data: []byte("\xa5hello")}}})
		}
		if _, err := l.AppendBatch(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for b.Loop() {
		types, count := projection.Start(typesCount), projection.Start(total)
		if err := projection.FeedAll(l.Events(ctx, 1), types, count); err != nil {
			b.Fatal(err)
		}
		n += count.State()
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
}
