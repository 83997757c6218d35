package evlogcli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/snapshot"
)

// TestStateFoldHonoursRebuildMarker: a projection.Runner's Rebuild
// interrupted after saving its marker (subject "projection-rebuild/NAME")
// leaves checkpoints of the old fold that the runner no longer trusts:
// state passes over them too, as fallbacks saying why, and folds the
// events. It used to start from them and print the old fold's view.
func TestStateFoldHonoursRebuildMarker(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	writeTestApp(t, dir)
	l, err := evlog.Open(dir, evlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	store, err := l.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	last := l.LastSeq()
	lastTime := testEventTime(len(testHistory) - 1)
	// A checkpoint of the old fold at the last event, then Rebuild's
	// marker (as projection.Runner.dropCheckpoints saves it).
	cps, err := store.List("projection/deposits")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cps {
		if c.Seq == last {
			if err := store.Remove(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
	}
	old, err := msgpack.Marshal(map[string]int{"account-42": -1})
	if err != nil {
		t.Fatal(err)
	}
	m, err := store.Save(ctx, snapshot.Meta{Name: "projection/deposits", LogID: l.LogID(), Seq: last, Time: lastTime, SchemaVersion: testDeposits.SchemaVersion}, old)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Save(ctx, snapshot.Meta{Name: "projection-rebuild/deposits", LogID: l.LogID(), Seq: last, Time: lastTime, SchemaVersion: testDeposits.SchemaVersion}, nil); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	stdout, stderr, code := mainIn(t, testFolds(), "state", dir, "--fold", "deposits", "--format", "json")
	if code != 0 {
		t.Fatalf("state: exit %d\n%s%s", code, stdout, stderr)
	}
	var res foldStateResult
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatal(err)
	}
	if res.Plan.Snapshot != nil {
		t.Errorf("state started from %+v, a checkpoint of the fold an interrupted rebuild replaces", res.Plan.Snapshot)
	}
	found := false
	for _, fb := range res.Plan.Fallbacks {
		found = found || (fb.File == m.File && strings.Contains(fb.Reason, "rebuild"))
	}
	if !found {
		t.Errorf("fallbacks %+v do not name %s as passed over for the rebuild", res.Plan.Fallbacks, m.File)
	}
	deposits := map[string]int{}
	for _, ev := range testHistory {
		if ev.typ == "deposited" {
			deposits["account-"+ev.id] += ev.amount
		}
	}
	var view map[string]int
	if res.State == nil || json.Unmarshal(res.State.Value, &view) != nil {
		t.Fatalf("state: %s", stdout)
	}
	if diff := cmp.Diff(deposits, view); diff != "" {
		t.Errorf("view (-want +got):\n%s", diff)
	}
}
