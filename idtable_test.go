package evlog

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestIDTable checks the table against a map under random inserts and
// removals, with hashes drawn from a small set (long probe chains, equal
// hashes, wrap-around).
func TestIDTable(t *testing.T) {
	for seed := range uint64(4) {
		rng := rand.New(rand.NewPCG(seed, 1))
		var tb idTable
		ref := map[uint64][]uint64{}
		seq := uint64(0)
		keys := make([]uint64, 3000)
		for i := range keys {
			keys[i] = rng.Uint64()
		}
		steps := 20000
		if seed%2 == 1 {
			steps = 1500
		}
		for step := range steps {
			h := keys[rng.IntN(len(keys))]
			if seed%2 == 1 {
				h %= 300
				h = h<<54 | 1023 // long probe chains across the end
			}
			if rng.IntN(3) > 0 || len(ref[h]) == 0 {
				seq++
				tb.insert(h, seq)
				ref[h] = append(ref[h], seq)
			} else {
				i := rng.IntN(len(ref[h]))
				tb.remove(h, ref[h][i])
				ref[h] = slices.Delete(ref[h], i, i+1)
			}
			if step%997 == 0 || step == steps-1 {
				n := 0
				for k, want := range ref {
					got := tb.appendSeqs(nil, k)
					slices.Sort(got)
					if !slices.Equal(got, want) {
						t.Fatalf("seed %d step %d: hash %d: %v, want %v", seed, step, k, got, want)
					}
					if tb.has(k) != (len(want) > 0) {
						t.Fatalf("seed %d step %d: has(%d) wrong", seed, step, k)
					}
					n += len(want)
				}
				if n != tb.n {
					t.Fatalf("seed %d: count %d, want %d", seed, tb.n, n)
				}
			}
		}
	}
}
