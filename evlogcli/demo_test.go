package evlogcli

import (
	"encoding/json"
	"path/filepath"
	"testing"
	"time"
)

// TestDemoTimeTravelFromRepositorySnapshots: the demo's "3pm yesterday"
// starts from a snapshot the inventory's repository took and kept by its
// default tiered retention (it saves none by hand): with the former
// newest-2 retention, no snapshot at or before 3pm would be left.
func TestDemoTimeTravelFromRepositorySnapshots(t *testing.T) {
	now := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC) // events are recorded on Nov 25
	dir := filepath.Join(t.TempDir(), "demo")
	r := runIn(t, t.Context(), now, "", "demo", "--dir", dir, "--events", "2000", "--snapshot-every", "200", "--format", "json")
	if r.err != nil {
		t.Fatalf("demo: %v\n%s", r.err, r.stderr)
	}
	var rep demoReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Snapshots != 10 {
		t.Errorf("the repository took %d snapshots, want 10", rep.Snapshots)
	}
	// Ages from Nov 26 10:00: the snapshots after Nov 25 10:00 are in the
	// hourly tier (2.4h apart: all kept), the earlier ones in the daily
	// tier (the newest of Nov 25 before 10:00 kept).
	if rep.SnapsKept <= 2 || rep.SnapsKept >= rep.Snapshots {
		t.Errorf("the repository kept %d of %d snapshots, want more than the newest 2 and fewer than all", rep.SnapsKept, rep.Snapshots)
	}
	s := rep.How.Snapshot
	if s == nil {
		t.Fatalf("the 3pm answer used no snapshot: %+v", rep.How)
	}
	at, _ := time.Parse(time.RFC3339Nano, rep.At)
	st, _ := time.Parse(time.RFC3339Nano, s.Time)
	if s.Seq >= rep.How.ToSeq || st.After(at) || at.Sub(st) > 3*time.Hour {
		t.Errorf("the 3pm answer (seq %d) came from snapshot seq %d recorded %s, want one shortly before 3pm", rep.How.ToSeq, s.Seq, s.Time)
	}
}
