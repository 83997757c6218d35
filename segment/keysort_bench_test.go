package segment

import (
	"math/rand/v2"
	"testing"
)

// BenchmarkSortKeyed: the radix sort on 250k random keys (a seal's ID
// table).
func BenchmarkSortKeyed(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	a := make([]keyed, 250_000)
	for i := range a {
		a[i] = keyed{key: rng.Uint64(), val: uint64(i)}
	}
	w := make([]keyed, len(a))
	tmp := make([]keyed, len(a))
	b.ReportAllocs()
	for b.Loop() {
		copy(w, a)
		sortKeyed(w, tmp, nil)
	}
}
