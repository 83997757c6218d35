package snapshot

import (
	"errors"
	"math"
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

// Candidates visits, newest first, the snapshots List reports and the
// files named like the subject's snapshots whose header is corrupt, for
// every seq bound; it opens each file once, and a caller that stops early
// opens no older file.
func TestCandidates(t *testing.T) {
	mem := vfs.NewMem()
	s := newStore(t, mem)
	saveAll(t, s, map[string][]uint64{"cart/1": {1, 3, 5, 7, 9, 11}, "cart/2": {2, 4, 6}})
	corruptHeader(t, mem, FormatFileName("cart/1", 9))
	corruptHeader(t, mem, FormatFileName("cart/1", 3))
	c := vfs.NewCounting(vfs.ReadOnly(mem))
	ro := newStore(t, c)
	listed, err := ro.List("cart/1")
	if err != nil {
		t.Fatal(err)
	}
	if len(listed) != 4 {
		t.Fatalf("List = %v, want the 4 snapshots with a readable header", listed)
	}
	unreadable := func(seq uint64) Candidate {
		file := FormatFileName("cart/1", seq)
		_, err := ro.readMeta(file)
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("header of %s: %v, want ErrCorrupt", file, err)
		}
		return Candidate{Meta: Meta{File: file, Seq: seq}, Unreadable: err.Error()}
	}
	byseq := map[uint64]Candidate{9: unreadable(9), 3: unreadable(3)}
	for _, m := range listed {
		byseq[m.Seq] = Candidate{Meta: m}
	}
	for _, maxSeq := range []uint64{math.MaxUint64, 11, 10, 9, 2, 1, 0} {
		var want []Candidate
		for _, seq := range []uint64{11, 9, 7, 5, 3, 1} {
			if seq <= maxSeq {
				want = append(want, byseq[seq])
			}
		}
		c.Reset()
		var got []Candidate
		for e, err := range ro.Candidates("cart/1", maxSeq) {
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, e)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Candidates(%d) (-want +got):\n%s", maxSeq, diff)
		}
		if opens := c.Total().Opens; opens != int64(len(got)) {
			t.Errorf("Candidates(%d): %d opens for %d entries, want one each", maxSeq, opens, len(got))
		}
	}
	// Stopping at the first entry opens only the newest file.
	c.Reset()
	for e, err := range ro.Candidates("cart/1", math.MaxUint64) {
		if err != nil || e.Meta.Seq != 11 {
			t.Fatalf("first entry: %+v, %v; want seq 11", e, err)
		}
		break
	}
	if opens := c.Total().Opens; opens != 1 {
		t.Errorf("Candidates stopped after one entry opened %d files, want 1", opens)
	}
	for _, err := range ro.Candidates("", math.MaxUint64) {
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("Candidates of an invalid name = %v, want ErrInvalid", err)
		}
	}
}
