package evlog

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/evlog/evlog/segment"
)

// newestFixture writes a log whose newest segment holds about size bytes
// (~110-byte events, batches of 1,000, one stream per batch) and closes it.
func newestFixture(b *testing.B, size int64) string {
	b.Helper()
	dir := b.TempDir()
	l, err := Open(dir, Options{Sync: SyncNever})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	payload := []byte(strings.Repeat("x", 60))
	for i := 0; l.Stats().Bytes < size; i++ {
		evs := make([]Envelope, 1000)
		for k := range evs {
			evs[k] = Envelope{Type: "item_added", Data: payload}
		}
		if _, err := l.Append(ctx, fmt.Sprintf("stream-%d", i), ExpectAny, evs...); err != nil {
			b.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	return dir
}

// BenchmarkOpenNewest: Open and Close of a log whose newest segment holds
// 64 MiB (the default SegmentSize), after a clean Close: writer and
// read-only, with the checkpoint Close wrote and (read-only) without it.
func BenchmarkOpenNewest(b *testing.B) {
	dir := newestFixture(b, DefaultSegmentSize-1<<20)
	ckpt := filepath.Join(dir, segment.CheckpointName(segment.FormatFileName(1, 0)))
	for _, mode := range []string{"writer", "readonly", "readonly-nocheckpoint"} {
		b.Run("mode="+mode, func(b *testing.B) {
			if mode == "readonly-nocheckpoint" {
				if err := os.Rename(ckpt, ckpt+".aside"); err != nil {
					b.Fatal(err)
				}
				defer os.Rename(ckpt+".aside", ckpt)
			}
			for b.Loop() {
				open := Open
				if mode != "writer" {
					open = OpenReadOnly
				}
				l, err := open(dir, Options{})
				if err != nil {
					b.Fatal(err)
				}
				if err := l.Close(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
