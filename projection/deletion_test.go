package projection_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog/event"
	"github.com/evlog/evlog/projection"
)

// TestRunnerAfterDeletion: a running projection whose view folded events
// that are then deleted folds again without them when it meets the
// deletion (it never folds the marker itself), checkpoints the rebuilt
// view, and a runner started later passes over the checkpoints from
// before the deletion.
func TestRunnerAfterDeletion(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir)
	defer l.Close()
	appendN(t, l, "a", 30) // stream "s", versions 1..30
	snaps, _ := l.Snapshots()
	decode := func(e event.Envelope) (event.Envelope, error) { return e, nil }
	r := projection.NewRunner(typesCount, l, snaps, decode, projection.RunnerOptions{CheckpointEvery: 10})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	if err := projection.WaitGuarded(t, r, 30, "the first 30 events"); err != nil {
		t.Fatal(err)
	}
	pos, err := l.TruncateStream(t.Context(), "s", 11)
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, "b", 2)
	if err := projection.WaitGuarded(t, r, pos.Seq+2, "the deletion and the 2 events after it"); err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"a": 20, "b": 2}
	r.Read(func(m map[string]int, seq uint64) {
		if diff := cmp.Diff(want, m); diff != "" {
			t.Errorf("running view after the truncation (-want +got):\n%s", diff)
		}
	})
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run ended with %v", err)
	}

	// A new runner starts from the checkpoint written after the deletion.
	r2 := projection.NewRunner(typesCount, l, snaps, decode, projection.RunnerOptions{})
	ctx2, cancel2 := context.WithCancel(t.Context())
	go func() { done <- r2.Run(ctx2) }()
	if err := projection.WaitGuarded(t, r2, pos.Seq+2, "the deletion and the 2 events after it, from the checkpoint"); err != nil {
		t.Fatal(err)
	}
	r2.Read(func(m map[string]int, seq uint64) {
		if diff := cmp.Diff(want, m); diff != "" {
			t.Errorf("view of a runner started after the deletion (-want +got):\n%s", diff)
		}
	})
	if p := r2.Plan(); p.Snapshot == nil || p.Snapshot.Seq < pos.Seq {
		t.Errorf("the new runner started from %+v, want the checkpoint at or after the deletion (seq %d)", p.Snapshot, pos.Seq)
	}
	cancel2()
	<-done

	// Without checkpoints from after it, checkpoints from before the
	// deletion are passed over (the first runner's were pruned; remove the
	// newer ones to see it).
	metas, err := snaps.List("projection/types")
	if err != nil {
		t.Fatal(err)
	}
	removed := 0
	for _, m := range metas {
		if m.Seq >= pos.Seq {
			if err := snaps.Remove(t.Context(), m); err != nil {
				t.Fatal(err)
			}
			removed++
		}
	}
	r3 := projection.NewRunner(typesCount, l, snaps, decode, projection.RunnerOptions{})
	ctx3, cancel3 := context.WithCancel(t.Context())
	defer cancel3()
	go func() { done <- r3.Run(ctx3) }()
	if err := projection.WaitGuarded(t, r3, pos.Seq+2, "the deletion and the 2 events after it, from a fresh fold"); err != nil {
		t.Fatal(err)
	}
	r3.Read(func(m map[string]int, seq uint64) {
		if diff := cmp.Diff(want, m); diff != "" {
			t.Errorf("view started with only checkpoints from before the deletion (-want +got):\n%s", diff)
		}
	})
	if p := r3.Plan(); p.Snapshot != nil && p.Snapshot.Seq < pos.Seq {
		t.Errorf("started from a checkpoint at seq %d, before the deletion at %d", p.Snapshot.Seq, pos.Seq)
	} else {
		if len(metas) == removed {
			t.Fatalf("no checkpoint from before the deletion is left (%d checkpoints): the test cannot tell", len(metas))
		}
		found := false
		for _, f := range p.Fallbacks {
			found = found || strings.Contains(f.Reason, "deletion")
		}
		if !found {
			t.Errorf("no fallback names the deletion: %+v", p.Fallbacks)
		}
	}
	cancel3()
	<-done
}
