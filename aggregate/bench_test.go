package aggregate_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/aggregate"
)

// BenchmarkCommand: load-decide-append throughput (SyncAlways: every
// command is fsynced) on one hot aggregate and spread over 10k aggregates,
// with parallel clients.
func BenchmarkCommand(b *testing.B) {
	for _, aggs := range []int{1, 10_000} {
		b.Run(fmt.Sprintf("aggregates=%d", aggs), func(b *testing.B) {
			_, r := newRepo(b, aggregate.Options{MaxAttempts: 1 << 20, CacheSize: 16_384}, evlog.Options{})
			ctx := context.Background()
			var next, retries atomic.Int64
			b.SetParallelism(16)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					id := fmt.Sprintf("c-%d", next.Add(1)%int64(aggs))
					res, err := r.Execute(ctx, id, add("k", 1))
					if err != nil {
						b.Error(err)
						return
					}
					retries.Add(int64(res.Attempts - 1))
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commands/s")
			b.ReportMetric(float64(retries.Load())/float64(b.N), "retries/command")
		})
	}
}
