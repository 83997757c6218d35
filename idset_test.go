package evlog

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"

	"github.com/evlog/evlog/segment"
)

// TestIDSet checks the set against a map: runs pushed in groups (merged,
// with a window dropping old seqs), no false negatives from the filter
// across rebuilds, every entry found, false positives rare.
func TestIDSet(t *testing.T) {
	for _, window := range []uint64{0, 500} {
		rng := rand.New(rand.NewPCG(window, 1))
		var x idSet
		ref := map[uint64][]uint64{}
		keys := make([]uint64, 4000)
		for i := range keys {
			keys[i] = rng.Uint64()
		}
		keys[1] = keys[0] // equal hashes
		seq := uint64(0)
		keep := func(s uint64) bool { return window == 0 || s+window > seq }
		for round := range 5000 {
			var staged []stagedID
			for range 1 + rng.IntN(40) {
				seq++
				h := keys[rng.IntN(len(keys))]
				x.add(h, staged)
				staged = append(staged, stagedID{h: h, seq: seq})
				ref[h] = append(ref[h], seq)
			}
			k := keep
			if window == 0 {
				k = nil
			}
			for _, e := range staged {
				x.insert(e.h, e.seq, k)
			}
			if round%250 != 0 && round != 4999 {
				continue
			}
			for h, seqs := range ref {
				var want []uint64
				for _, s := range seqs {
					if keep(s) {
						want = append(want, s)
					}
				}
				var got []uint64
				for _, s := range x.appendSeqs(nil, h) {
					if keep(s) {
						got = append(got, s)
					}
				}
				slices.Sort(got)
				if !slices.Equal(got, want) {
					t.Fatalf("window %d seq %d: hash %x: %v, want %v", window, seq, h, got, want)
				}
				if len(want) > 0 && !x.mayContain(h) {
					t.Fatalf("window %d: the filter lost hash %x", window, h)
				}
			}
		}
		fp := 0
		for range 100000 {
			if x.mayContain(rng.Uint64()) {
				fp++
			}
		}
		if fp > 2000 {
			t.Errorf("window %d: %d false positives in 100000", window, fp)
		}
		if window != 0 && x.n > 4*int(window)+len(x.buckets)*8 {
			t.Errorf("window %d: %d entries kept", window, x.n)
		}
		t.Logf("window %d: %d entries in %d buckets, %d false positives in 100000", window, x.n, len(x.buckets), fp)
	}
}

// TestIDSetSequentialIDs: IDs that differ only in their last characters
// (a counter after a fixed prefix, as time-ordered UUIDs and most
// generated IDs do) must spread over the filter's words and the buckets
// like random keys. Their IDHash (FNV-1a) varies little in its top bits,
// which pick the word and the bucket: the set must mix the hash first.
func TestIDSetSequentialIDs(t *testing.T) {
	const n = 200_000
	id := func(i int) string { return "0190f5a4-7c1e-7b3a-9d2e-" + strconv.FormatUint(uint64(i), 16) }
	var x idSet
	for i := range n {
		h := segment.IDHash(id(i))
		x.add(h, nil)
		x.insert(h, uint64(i+1), nil)
	}
	fp := 0
	for i := n; i < 2*n; i++ {
		if x.mayContain(segment.IDHash(id(i))) {
			fp++
		}
	}
	t.Logf("filter: %d false positives of %d", fp, n)
	if rate := float64(fp) / n; rate > 0.01 {
		t.Errorf("filter: %.2f%% false positives for %d new sequential IDs, want under 1%%", 100*rate, n)
	}
	biggest := 0
	for _, b := range x.buckets {
		biggest = max(biggest, b.n)
	}
	if avg := x.n / len(x.buckets); biggest > 2*avg {
		t.Errorf("buckets: the largest holds %d entries, the average %d: the IDs cluster", biggest, avg)
	}
}

// BenchmarkIDSetInsert: what committing a group of 1,000 new IDs costs
// the writer's ID set (filter bits and bucket entries), as the set grows
// from empty (b.N groups).
func BenchmarkIDSetInsert(b *testing.B) {
	const group = 1000
	hashes := make([]uint64, 256*group)
	for i := range hashes {
		hashes[i] = segment.IDHash("0190f5a4-7c1e-7b3a-9d2e-" + strconv.FormatUint(uint64(i), 16))
	}
	var x idSet
	seq := uint64(0)
	b.ReportAllocs()
	for b.Loop() {
		for range group {
			h := hashes[seq%uint64(len(hashes))] ^ (seq / uint64(len(hashes)))
			seq++
			x.add(h, nil)
			x.insert(h, seq, nil)
		}
	}
}
