package replay_test

import (
	"errors"
	"testing"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/replay"
)

// TestPlanAtSeqRefreshesALaggingView: a read-only view opened beside a
// writer lags it; a seq target the writer has reached since is no error:
// MakePlan refreshes the view once (as it does for a snapshot beyond its
// end) before it reports ErrBeyondEnd. It used to report "seq 15, the log
// ends at 10" (evlogctl state --seq beside a writer).
func TestPlanAtSeqRefreshesALaggingView(t *testing.T) {
	dir := t.TempDir()
	w := openRW(t, dir, evlog.Options{})
	defer w.Close()
	for range 10 {
		appendItems(t, w, "a", t0, item{Name: "sword", Qty: 1})
	}
	ro := openRO(t, dir, evlog.Options{})
	defer ro.Close()
	for range 5 {
		appendItems(t, w, "a", t0, item{Name: "shield", Qty: 2})
	}
	if ro.LastSeq() != 10 {
		t.Fatalf("the view ends at %d, want 10 (it must lag the writer for this test)", ro.LastSeq())
	}
	p, err := replay.MakePlan(t.Context(), ro, snapshots(t, ro), statsSubject, replay.AtSeq(15), replay.Options{})
	if err != nil {
		t.Fatalf("MakePlan at seq 15 beside the writer: %v", err)
	}
	if p.ToSeq != 15 {
		t.Fatalf("plan to seq %d, want 15", p.ToSeq)
	}
	// Beyond what the writer has: still ErrBeyondEnd.
	if _, err := replay.MakePlan(t.Context(), ro, snapshots(t, ro), statsSubject, replay.AtSeq(16), replay.Options{}); !errors.Is(err, replay.ErrBeyondEnd) {
		t.Fatalf("MakePlan at seq 16: %v, want ErrBeyondEnd", err)
	}
}
