package evlog

import (
	"bytes"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog/internal/vfs"
)

// RangeBorrowed yields what Range yields (every field, Data included while
// the loop body runs), over sealed and active segments, for every range
// shape Range accepts; stopping early stops it.
func TestRangeBorrowedMatchesRange(t *testing.T) {
	l := openMem(t, vfs.NewMem(), Options{SegmentSize: 4 << 10})
	defer l.Close()
	if err := runWorkload(t.Context(), l, genWorkload(7, 200)); err != nil {
		t.Fatal(err)
	}
	if segs, err := l.Segments(); err != nil || len(segs) < 3 {
		t.Fatalf("want several segments, have %d (%v)", len(segs), err)
	}
	last := l.LastSeq()
	for _, r := range [][2]uint64{{1, last}, {0, 0}, {1, 0}, {5, 4}, {17, 230}, {last, last}, {last - 3, last + 10}, {0, last + 1}} {
		var want, got []Envelope
		for e, err := range l.Range(t.Context(), r[0], r[1]) {
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, e)
		}
		for e, err := range l.RangeBorrowed(t.Context(), r[0], r[1]) {
			if err != nil {
				t.Fatal(err)
			}
			e.Data = bytes.Clone(e.Data) // valid only during the loop body
			got = append(got, e)
		}
		if diff := cmp.Diff(want, got, envCmp...); diff != "" {
			t.Errorf("RangeBorrowed(%d, %d) differs from Range (-want +got):\n%s", r[0], r[1], diff)
		}
	}
	n := 0
	for range l.RangeBorrowed(t.Context(), 1, 0) {
		n++
	}
	for _, err := range l.RangeBorrowed(t.Context(), 10, last) {
		if err != nil {
			t.Fatal(err)
		}
		if n++; n == 5 {
			break
		}
	}
	if n != 5 {
		t.Errorf("break after 5 events: saw %d", n)
	}
}
