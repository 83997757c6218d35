package evlog

import (
	"context"
	"fmt"
	"strconv"
	"testing"
)

// BenchmarkAppendIDs measures the cost of idempotent appends: typed
// batches of 1,000 events into one stream (100 in turn), with a unique ID
// on every event (ids=yes) or none (ids=no), under SyncAlways and
// SyncNever. The IDs are generated before the timed loop (for up to
// idBatches batches). Compare the pairs of one run:
//
//	go test -run '^$' -bench AppendIDs -benchtime 250x -count 1 . # (3 times)
func BenchmarkAppendIDs(b *testing.B) {
	const idBatches = 256
	items := benchItems(appendBatchEvents, 0)
	names := streamNames(100)
	genIDs := func(i int) []string { return benchIDs(i*appendBatchEvents, appendBatchEvents) }
	for _, sync := range []SyncMode{SyncAlways, SyncNever} {
		for _, withIDs := range []bool{false, true} {
			b.Run(fmt.Sprintf("sync=%s/ids=%v", sync, map[bool]string{false: "no", true: "yes"}[withIDs]), func(b *testing.B) {
				var pool [][]string
				if withIDs {
					for i := range idBatches {
						pool = append(pool, genIDs(i))
					}
				}
				l, err := Open(b.TempDir(), Options{Sync: sync})
				if err != nil {
					b.Fatal(err)
				}
				defer l.Close()
				tl := Typed[benchItem](l)
				evs := make([]Event[benchItem], len(items))
				for j := range evs {
					evs[j] = Event[benchItem]{Type: "item_added", Data: items[j]}
				}
				ctx := context.Background()
				b.ReportAllocs()
				i := 0
				cpu0 := processCPU()
				for b.Loop() {
					if withIDs {
						ids := genIDsFrom(pool, i, genIDs)
						for j := range evs {
							evs[j].ID = ids[j]
						}
					}
					if _, err := tl.Append(ctx, names[i%len(names)], ExpectAny, evs...); err != nil {
						b.Fatal(err)
					}
					i++
				}
				reportEvents(b, b.N*len(evs), cpu0)
			})
		}
	}
}

// benchIDs returns n UUID-like IDs (36 bytes, the last group the hex of
// first+j, zero-padded): substrings of one string, so that a batch's IDs
// cost two allocations, not one per ID, when a run outlasts the
// pre-generated pool and generates them in the timed loop.
func benchIDs(first, n int) []string {
	const prefix = "0190f5a4-7c1e-7b3a-9d2e-"
	const width = 36
	arena := make([]byte, 0, n*width)
	for j := range n {
		arena = append(arena, prefix...)
		var hb [16]byte
		hex := strconv.AppendUint(hb[:0], uint64(first+j), 16)
		for range width - len(prefix) - len(hex) {
			arena = append(arena, '0')
		}
		arena = append(arena, hex...)
	}
	all := string(arena)
	ids := make([]string, n)
	for j := range ids {
		ids[j] = all[j*width : (j+1)*width]
	}
	return ids
}

func genIDsFrom(pool [][]string, i int, gen func(int) []string) []string {
	if i < len(pool) {
		return pool[i]
	}
	return gen(i)
}

func BenchmarkAppendIDsNoDedupe(b *testing.B) {
	noDedupe = true
	defer func() { noDedupe = false }()
	BenchmarkAppendIDs(b)
}
