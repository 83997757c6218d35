package evlogcli

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/snapshot"
)

// interruptRebuild leaves dir, a log writeTestApp wrote, as a
// projection.Runner Rebuild of "deposits" killed after saving its marker
// and before removing the old checkpoints: the checkpoints of deposits
// at or after the event of index i of testHistory are replaced by one at
// that event holding a view of the old fold ({"account-42": -1}), and
// the marker (subject "projection-rebuild/deposits", as
// projection.Runner.dropCheckpoints saves it) is there. It returns the
// old fold's checkpoint and deposits's view of every event (what the
// rebuilt runner folds).
func interruptRebuild(t *testing.T, dir string, i int) (stale snapshot.Meta, want map[string]int) {
	t.Helper()
	ctx := t.Context()
	l, err := evlog.Open(dir, evlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	store, err := l.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	seq := uint64(i + 1) // one event per append
	cps, err := store.List("projection/deposits")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cps {
		if c.Seq >= seq {
			if err := store.Remove(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
	}
	old, err := msgpack.Marshal(map[string]int{"account-42": -1})
	if err != nil {
		t.Fatal(err)
	}
	stale, err = store.Save(ctx, snapshot.Meta{Name: "projection/deposits", LogID: l.LogID(), Seq: seq, Time: testEventTime(i), SchemaVersion: testDeposits.SchemaVersion}, old)
	if err != nil {
		t.Fatal(err)
	}
	last := l.LastSeq()
	if _, err := store.Save(ctx, snapshot.Meta{Name: "projection-rebuild/deposits", LogID: l.LogID(), Seq: last, Time: testEventTime(int(last) - 1), SchemaVersion: testDeposits.SchemaVersion}, nil); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	want = map[string]int{}
	for _, ev := range testHistory {
		if ev.typ == "deposited" {
			want["account-"+ev.id] += ev.amount
		}
	}
	return stale, want
}

// TestSnapshotFoldHonoursRebuildMarker: while an interrupted Rebuild's
// marker is there, snapshot --fold of the projection folds the events
// (as the rebuilding runner does), reporting the old fold's checkpoint it
// passes over, and saves that view. It used to start from the old fold's
// checkpoint and save a checkpoint of the wrong view.
func TestSnapshotFoldHonoursRebuildMarker(t *testing.T) {
	dir := t.TempDir()
	writeTestApp(t, dir)
	stale, want := interruptRebuild(t, dir, len(testHistory)-2)

	stdout, stderr, code := mainIn(t, testFolds(), "snapshot", dir, "--fold", "deposits", "--format", "json")
	if code != 0 {
		t.Fatalf("snapshot: exit %d\n%s%s", code, stdout, stderr)
	}
	var res snapshotResult
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatal(err)
	}
	if !res.Created || res.Seq != uint64(len(testHistory)) {
		t.Fatalf("snapshot: %s, want a checkpoint created at seq %d", stdout, len(testHistory))
	}
	if !strings.Contains(stderr, stale.File) {
		t.Errorf("stderr %q does not report the old fold's checkpoint %s as passed over", stderr, stale.File)
	}
	l, err := evlog.OpenReadOnly(dir, evlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	store, err := l.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	m, err := store.Verify(t.Context(), res.File)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := store.Load(t.Context(), m)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]int
	if err := msgpack.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("the checkpoint snapshot saved (-want +got):\n%s", diff)
	}
}

// TestVerifyReplayFoldHonoursRebuildMarker: while an interrupted
// Rebuild's marker is there, verify --replay --fold of the projection
// does not compare the old fold's checkpoints with a replay of the
// current fold (the runner trusts none of them: they are not damage),
// and says so on stderr. It used to report each as corrupt (status 1).
func TestVerifyReplayFoldHonoursRebuildMarker(t *testing.T) {
	dir := t.TempDir()
	writeTestApp(t, dir)
	stale, _ := interruptRebuild(t, dir, len(testHistory)-1)

	stdout, stderr, code := mainIn(t, testFolds(), "verify", dir, "--replay", "--fold", "deposits", "--format", "json")
	var rep verifyReport
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("verify: exit %d, %v\n%s%s", code, err, stdout, stderr)
	}
	if code != 0 || !rep.OK || len(rep.Findings) != 0 || rep.Replayed != 0 {
		t.Errorf("verify --replay: exit %d, %+v; want status 0, no finding, no checkpoint compared\n%s", code, rep, stderr)
	}
	if !strings.Contains(stderr, stale.File) {
		t.Errorf("stderr %q does not say that %s was not compared", stderr, stale.File)
	}
}

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

// TestSnapshotFoldStaleCheckpointAtLastSeq: when the file snapshot
// --fold would write is already there but is one of the checkpoints its
// plan passed over (here: of the old fold, while a rebuild marker is
// there), it is not replaced (snapshot never renames over a file), and
// snapshot fails naming it instead of saying, with status 0, that the
// snapshot already exists.
func TestSnapshotFoldStaleCheckpointAtLastSeq(t *testing.T) {
	dir := t.TempDir()
	writeTestApp(t, dir)
	stale, _ := interruptRebuild(t, dir, len(testHistory)-1)

	stdout, stderr, err := runCLI(t, testFolds(), "snapshot", dir, "--fold", "deposits")
	pe, ok := errors.AsType[*passedOverError](err)
	if !ok || exitCode(err) != 1 || pe.File != stale.File {
		t.Fatalf("snapshot: %v (status %d), want a *passedOverError naming %s, status 1\n%s%s", err, exitCode(err), stale.File, stdout, stderr)
	}
	if stdout != "" {
		t.Errorf("stdout %q, want nothing", stdout)
	}
}
