package snapshot

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog/internal/vfs"
)

// corruptHeader flips a byte of file's header (its log ID, covered by the
// header checksum), so the file is listed as unreadable.
func corruptHeader(t testing.TB, mem *vfs.Mem, file string) {
	t.Helper()
	b, err := mem.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	b[offLogID] ^= 0x5a
	if err := mem.WriteFile(file, b); err != nil {
		t.Fatal(err)
	}
}

// Walk visits what Candidates and Unreadable return, merged newest first,
// for every kind of target; it opens each file once, and a caller that
// stops early opens no older file.
func TestWalk(t *testing.T) {
	mem := vfs.NewMem()
	s := newStore(t, mem)
	saveAll(t, s, map[string][]uint64{"cart/1": {1, 3, 5, 7, 9, 11}, "cart/2": {2, 4, 6}})
	corruptHeader(t, mem, FormatFileName("cart/1", 9))
	corruptHeader(t, mem, FormatFileName("cart/1", 3))
	c := vfs.NewCounting(vfs.ReadOnly(mem))
	ro := newStore(t, c)
	for _, tc := range []struct {
		tg    Target
		opens int64 // -1: one per entry
	}{
		{Latest(), -1}, {AtSeq(10), -1}, {AtSeq(9), -1}, {AtSeq(2), -1}, {AtSeq(0), -1},
		{AtTime(timeOf(8)), 6}, // a time target needs every header: 11 is opened, not admitted
	} {
		tg := tc.tg
		var want []WalkEntry
		cands, err := ro.Candidates("cart/1", tg)
		if err != nil {
			t.Fatal(err)
		}
		bad, err := ro.Unreadable("cart/1", tg)
		if err != nil {
			t.Fatal(err)
		}
		for len(cands) > 0 || len(bad) > 0 {
			if len(bad) == 0 || len(cands) > 0 && cands[0].Seq > bad[0].Seq {
				want, cands = append(want, WalkEntry{Meta: cands[0]}), cands[1:]
			} else {
				want, bad = append(want, WalkEntry{Meta: Meta{File: bad[0].File, Seq: bad[0].Seq}, Unreadable: bad[0].Reason}), bad[1:]
			}
		}
		c.Reset()
		var got []WalkEntry
		for e, err := range ro.Walk("cart/1", tg) {
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, e)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Walk(%v) (-want +got):\n%s", tg, diff)
		}
		if tc.opens < 0 {
			tc.opens = int64(len(got))
		}
		if opens := c.Total().Opens; opens != tc.opens {
			t.Errorf("Walk(%v): %d opens for %d entries, want %d", tg, opens, len(got), tc.opens)
		}
	}
	// Stopping at the first entry opens only the newest file.
	c.Reset()
	for e, err := range ro.Walk("cart/1", Latest()) {
		if err != nil || e.Meta.Seq != 11 {
			t.Fatalf("first entry: %+v, %v; want seq 11", e, err)
		}
		break
	}
	if opens := c.Total().Opens; opens != 1 {
		t.Errorf("a walk stopped after one entry opened %d files, want 1", opens)
	}
	for _, err := range ro.Walk("", Latest()) {
		if err == nil {
			t.Errorf("Walk of an invalid name: no error")
		}
	}
}
