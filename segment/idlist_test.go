package segment

import (
	"slices"
	"testing"
)

// TestIDList checks the chunked list against a plain slice across chunk
// boundaries.
func TestIDList(t *testing.T) {
	for _, n := range []int{0, 1, idChunk - 1, idChunk, idChunk + 1, 3*idChunk + 7} {
		var l idList
		var want []IDEntry
		for i := range n {
			e := IDEntry{Hash: uint64(i) * 0x9e3779b97f4a7c15, Seq: uint64(i + 1)}
			l.add(e)
			want = append(want, e)
		}
		if got := l.all(); l.len() != n || !slices.Equal(got, want) {
			t.Errorf("n=%d: len %d, all() differs from the entries added", n, l.len())
		}
	}
}
