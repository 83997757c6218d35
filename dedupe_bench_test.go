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
	genIDs := func(i int) []string {
		ids := make([]string, appendBatchEvents)
		for j := range ids {
			ids[j] = "0190f5a4-7c1e-7b3a-9d2e-" + strconv.FormatUint(uint64(i*appendBatchEvents+j), 16)
		}
		return ids
	}
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
