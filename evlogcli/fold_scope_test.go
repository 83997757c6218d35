package evlogcli

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/projection"
)

// testAccountDeposits is testDeposits scoped to category "account".
var testAccountDeposits = projection.Projection[map[string]int, evlog.Event[int]]{
	Name:          "account-deposits",
	SchemaVersion: 1,
	Categories:    []string{"account"},
	Init:          testDeposits.Init,
	Apply:         testDeposits.Apply,
}

// TestStateFoldScopedAcrossUnrelatedDeletion: state and verify --replay
// treat a projection's checkpoints as its runner does: a deletion of a
// stream outside its categories leaves them usable (state starts from
// the newest) and comparable (verify --replay compares them with a
// replay of the events, which folds only its categories' events).
func TestStateFoldScopedAcrossUnrelatedDeletion(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	l, err := evlog.Open(dir, evlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	tl := evlog.Typed[int](l)
	for _, ev := range []struct {
		stream, typ string
		amount      int
	}{{"account-1", "deposited", 10}, {"other-1", "deposited", 99}, {"account-2", "deposited", 5}, {"account-1", "withdrawn", 3}} {
		if _, err := tl.Append(ctx, ev.stream, evlog.ExpectAny, evlog.Event[int]{Type: ev.typ, Data: ev.amount}); err != nil {
			t.Fatal(err)
		}
	}
	snaps, err := l.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	r := projection.NewRunner(testAccountDeposits, l, snaps, testCodec.Decode, projection.RunnerOptions{})
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	if err := waitFolded(t, r, l.LastSeq(), "the view to cover the log"); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	if _, _, err := l.DeleteStream(ctx, "other-1"); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	folds := []Fold{ProjectionFold(testAccountDeposits, testCodec.Decode)}
	stdout, stderr, code := mainIn(t, folds, "state", dir, "--fold", "account-deposits", "--format", "json")
	if code != 0 {
		t.Fatalf("state: exit %d\n%s%s", code, stdout, stderr)
	}
	var res foldStateResult
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatal(err)
	}
	if res.Plan.Snapshot == nil || res.Plan.Snapshot.Seq != 4 || len(res.Plan.Fallbacks) != 0 {
		t.Errorf("state's plan %+v, want the checkpoint at seq 4 and no fallback", res.Plan)
	}
	var view map[string]int
	if res.State == nil || json.Unmarshal(res.State.Value, &view) != nil {
		t.Fatalf("state: %s", stdout)
	}
	if diff := cmp.Diff(map[string]int{"account-1": 10, "account-2": 5}, view); diff != "" {
		t.Errorf("state's view (-want +got):\n%s", diff)
	}
	stdout, stderr, code = mainIn(t, folds, "verify", dir, "--replay", "--fold", "account-deposits", "--format", "json")
	var rep verifyReport
	if code != 0 || json.Unmarshal([]byte(stdout), &rep) != nil || rep.Replayed != 1 {
		t.Errorf("verify --replay: exit %d, want 0 comparing the checkpoint\n%s%s", code, stdout, stderr)
	}
}
