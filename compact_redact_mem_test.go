package evlog

import (
	"bytes"
	"runtime"
	"testing"

	"github.com/evlog/evlog/internal/vfs"
)

// TestCompactRedactionMemory: redacting a segment must not hold its
// records in memory. A compressed segment holds many times its size on
// disk in record bytes (compaction merges compressed segments by the bytes
// they take on disk), and the redaction copied every record of a segment
// into one buffer before writing it out: a redacting compaction of two
// compressed segments allocated the records several times over (45 MiB
// for 8 MiB of records, where the same compaction without deletions
// allocates 30 MiB; 165 and 107 MiB for 32 MiB). Now it works in runs of
// batches of about a MiB: it allocates about what the compaction without
// redaction does (32 and 29 MiB).
func TestCompactRedactionMemory(t *testing.T) {
	// Not parallel: it counts the process's allocations.
	const segSize = 4 << 20
	alloc := map[bool]uint64{}
	for _, del := range []bool{false, true} {
		ctx := t.Context()
		l := openMem(t, vfs.NewMem(), Options{SegmentSize: segSize})
		data := bytes.Repeat([]byte("x"), 4000)
		var batch []AppendRequest
		for i := range 2*segSize/4000 + 100 {
			batch = append(batch, AppendRequest{Stream: []string{"a-1", "b-1"}[i%2], Expect: ExpectAny, Events: []Envelope{{Type: "t", Data: data}}})
			if len(batch) == 50 {
				if _, err := l.AppendBatch(ctx, batch); err != nil {
					t.Fatal(err)
				}
				batch = nil
			}
		}
		// Two compressed segments of about segSize record bytes each.
		if _, err := l.Compact(ctx, CompactOptions{Compress: true}); err != nil {
			t.Fatal(err)
		}
		if del {
			if _, _, err := l.DeleteStream(ctx, "a-1"); err != nil {
				t.Fatal(err)
			}
		}
		var m0, m1 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m0)
		rep, err := l.Compact(ctx, CompactOptions{Compress: true}) // merges them
		runtime.ReadMemStats(&m1)
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Groups) != 1 || len(rep.Groups[0].Inputs) != 2 || rep.Groups[0].Redact != del {
			t.Fatalf("deleted=%v: compaction %+v, want the two compressed segments merged", del, rep.Groups)
		}
		alloc[del] = m1.TotalAlloc - m0.TotalAlloc
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("allocated %d MiB merging, %d MiB merging and redacting", alloc[false]>>20, alloc[true]>>20)
	if alloc[true] > alloc[false]+2*segSize {
		t.Fatalf("redacting while merging 2 x %d MiB of records allocated %d MiB, merging alone %d MiB", segSize>>20, alloc[true]>>20, alloc[false]>>20)
	}
}
