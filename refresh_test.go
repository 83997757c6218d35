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

// TestRefreshKeepsTheNewestMarks: after Refresh, the index a read-only log
// holds of the newest segment records what a fresh open records — its end,
// its durable end and the strictness of its last mark — so that the next
// Refresh judges the segment's unmarked tail as a fresh open does. Here a
// SyncAlways writer left a strict mark, a SyncNever writer continued the
// segment and recorded its own fsync with a non-strict mark, which one
// Refresh saw; the batches that writer then committed without an fsync
// are served by a fresh open (a SyncNever writer's batches are), and must
// be by the next Refresh too, which held the first writer's strict mark.
func TestRefreshKeepsTheNewestMarks(t *testing.T) {
	mem := vfs.NewMem()
	a := openMem(t, mem, Options{})
	appendN(t, a, "a", 3)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	ro, err := openFS(vfs.ReadOnly(mem), Options{}, true)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	b := openMem(t, mem, Options{Sync: SyncNever})
	defer b.Close()
	appendN(t, b, "b", 2)
	if err := b.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	check := func(step string) {
		t.Helper()
		if err := ro.Refresh(); err != nil {
			t.Fatalf("%s: refresh: %v", step, err)
		}
		fresh, err := openFS(vfs.ReadOnly(mem), Options{}, true)
		if err != nil {
			t.Fatal(err)
		}
		defer fresh.Close()
		if got, want := ro.LastSeq(), fresh.LastSeq(); got != want {
			t.Errorf("%s: the refreshed reader ends at seq %d, a fresh open at %d", step, got, want)
		}
		held, want := ro.v.active, fresh.v.active
		type marks struct {
			End, Durable   int64
			Marked, Strict bool
		}
		if d := cmp.Diff(marks{want.End, want.Durable, want.Marked, want.Strict}, marks{held.End, held.Durable, held.Marked, held.Strict}); d != "" {
			t.Errorf("%s: the held index of the newest segment differs from a fresh open's (-fresh +held):\n%s", step, d)
		}
	}
	check("after the non-strict mark")
	appendN(t, b, "b", 2) // committed, not fsynced, no mark
	check("after unmarked batches")
	if err := b.Sync(t.Context()); err != nil { // a mark alone
		t.Fatal(err)
	}
	check("after a mark alone")
}
