package evlog

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog/internal/vfs"
)

// TestRefreshFollowsAnotherWriter: a read-only log sees nothing new until
// Refresh, then exactly what the writer committed, across segment rolls.
func TestRefreshFollowsAnotherWriter(t *testing.T) {
	ctx := t.Context()
	mem := vfs.NewMem()
	w := openMem(t, mem, Options{SegmentSize: MinSegmentSize})
	defer w.Close()
	ro, err := openFS(vfs.ReadOnly(mem), Options{}, true)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	work := genWorkload(5, 244)
	for round, n := range []int{3, 40, 1, 200} {
		if err := runWorkload(ctx, w, work[:n]); err != nil {
			t.Fatal(err)
		}
		before := ro.LastSeq()
		if err := ro.Refresh(); err != nil {
			t.Fatalf("round %d: refresh: %v", round, err)
		}
		if ro.LastSeq() == before {
			t.Fatalf("round %d: refresh saw nothing new", round)
		}
		if d := cmp.Diff(readAll(t, w), readAll(t, ro), envCmp...); d != "" {
			t.Fatalf("round %d: reader differs from writer (-writer +reader):\n%s", round, d)
		}
		if a, b := w.Stats(), ro.Stats(); a.Events != b.Events || a.Streams != b.Streams {
			t.Fatalf("round %d: stats differ: %+v vs %+v", round, a, b)
		}
		work = work[n:]
	}
}

// TestVerifyFindings: Verify reports a torn tail as repairable and damage
// as corruption naming file and offset, and modifies nothing.
func TestVerifyFindings(t *testing.T) {
	f := newFixture(t)
	rep, err := verifyFS(t.Context(), vfs.ReadOnly(f.mem))
	if err != nil || len(rep.Findings) != 0 || rep.Events != uint64(len(f.events)) {
		t.Fatalf("clean log: %+v, %v", rep, err)
	}
	f.mutate(t, f.active(), func(b []byte) []byte { return append(b, "junk"...) })
	f.mutate(t, f.segs[1], func(b []byte) []byte { b[100] ^= 1; return b })
	before := snapshotFiles(t, f.mem)
	rep, err = verifyFS(t.Context(), vfs.ReadOnly(f.mem))
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(before, snapshotFiles(t, f.mem)); d != "" {
		t.Fatalf("verify modified the directory:\n%s", d)
	}
	var kinds []string
	for _, fd := range rep.Findings {
		kinds = append(kinds, fd.String())
	}
	if len(rep.Findings) != 2 || rep.Findings[0].Kind != "corrupt" || rep.Findings[0].File != f.segs[1] ||
		rep.Findings[1].Kind != "torn-tail" || rep.Findings[1].File != f.active() || !rep.Corrupt() {
		t.Fatalf("findings %q, want a corruption in %s then a torn tail in %s", kinds, f.segs[1], f.active())
	}
	t.Log(kinds)
}
