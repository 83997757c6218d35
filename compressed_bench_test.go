package evlog

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// Benchmarks of compressed segments (Compact with Compress) against the
// same log uncompressed: a stream of 1,000 events scattered over the log
// (each in a block of its own), read again and again, and a full typed
// replay. Run:
//
//	go test -run '^$' -bench CompressedRead -count 5 .
var compressedFixture struct {
	once              sync.Once
	dir, plain, compr string
	err               error
}

var compressedEvents = flag.Int("evlog.compressed-events", 1_000_000, "events in the compressed-read benchmarks' log")

// compressedDirs builds (once per process) a log of -evlog.compressed-events
// events in 8 MiB segments, where stream "agg" has 1,000 events spread
// evenly (at 1M events, each in a 64 KiB block of its own), and a copy of
// it with every sealed segment compressed.
func compressedDirs(b *testing.B) (plain, compressed string) {
	f := &compressedFixture
	f.once.Do(func() {
		f.err = func() error {
			n := max(*compressedEvents, 10_000)
			dir, err := os.MkdirTemp("", "evlog-compressed-")
			if err != nil {
				return err
			}
			f.dir, f.plain, f.compr = dir, filepath.Join(dir, "plain"), filepath.Join(dir, "compressed")
			l, err := Open(f.plain, Options{Sync: SyncNever, SegmentSize: 8 << 20})
			if err != nil {
				return err
			}
			tl := Typed[benchItem](l)
			ctx := context.Background()
			every := n / 1000
			var parts []Batch[benchItem]
			for i := range n {
				s := fmt.Sprintf("s-%d", i%10_000)
				if i%every == every/2 {
					s = "agg"
				}
				parts = append(parts, Batch[benchItem]{Stream: s, Expect: ExpectAny, Events: []Event[benchItem]{{Type: "item_added", Data: newBenchItem(i)}}})
				if len(parts) == 1000 || i == n-1 {
					if _, err := tl.AppendBatch(ctx, parts); err != nil {
						return err
					}
					parts = parts[:0]
				}
			}
			if err := l.Close(); err != nil {
				return err
			}
			if err := os.CopyFS(f.compr, os.DirFS(f.plain)); err != nil {
				return err
			}
			l, err = Open(f.compr, Options{})
			if err != nil {
				return err
			}
			if _, err := l.Compact(ctx, CompactOptions{Compress: true}); err != nil {
				return err
			}
			return l.Close()
		}()
	})
	if f.err != nil {
		b.Fatal(f.err)
	}
	return f.plain, f.compr
}

// BenchmarkCompressedRead: the "agg" stream (1,000 events, one per
// block) and a full typed replay, from plain and compressed segments;
// cache=off is the compressed log with BlockCacheSize -1 (every read
// decompresses its block, as before the cache).
func BenchmarkCompressedRead(b *testing.B) {
	plain, compressed := compressedDirs(b)
	kinds := []struct {
		name string
		dir  string
		opts Options
	}{
		{"kind=plain", plain, Options{}},
		{"kind=compressed", compressed, Options{}},
		{"kind=compressed/cache=off", compressed, Options{BlockCacheSize: -1}},
	}
	ctx := context.Background()
	readAgg := func(b *testing.B, l *Log) {
		n := 0
		for _, err := range l.Stream(ctx, "agg", 1) {
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
		if n != 1000 {
			b.Fatalf("read %d events of agg, want 1000", n)
		}
	}
	// The stream read again by a long-lived process (the log open, the
	// stream read once before timing).
	for _, k := range kinds {
		b.Run("read=stream/"+k.name, func(b *testing.B) {
			l, err := OpenReadOnly(k.dir, k.opts)
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			readAgg(b, l)
			b.ReportAllocs()
			for b.Loop() {
				readAgg(b, l)
			}
		})
	}
	// The stream read once by a fresh process: open, read, close.
	for _, k := range kinds {
		b.Run("read=stream-cold/"+k.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				l, err := OpenReadOnly(k.dir, k.opts)
				if err != nil {
					b.Fatal(err)
				}
				readAgg(b, l)
				l.Close()
			}
		})
	}
	for _, k := range kinds {
		b.Run("read=replay/"+k.name, func(b *testing.B) {
			l, err := OpenReadOnly(k.dir, k.opts)
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			tl := Typed[benchItem](l)
			b.ReportAllocs()
			n := 0
			cpu0 := processCPU()
			for b.Loop() {
				for _, err := range tl.Events(ctx, 1) {
					if err != nil {
						b.Fatal(err)
					}
					n++
				}
			}
			reportEvents(b, n, cpu0)
		})
	}
}
