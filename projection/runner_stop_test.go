package projection_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/evlog/evlog/event"
	"github.com/evlog/evlog/projection"
	"github.com/evlog/evlog/snapshot"
)

// cancelOnSave cancels the runner's context as its first checkpoint is
// saved (the runner is stopped right after catching up), and records
// whether each save's context was still usable and bounded.
type cancelOnSave struct {
	projection.Checkpoints
	cancel context.CancelFunc
	once   sync.Once

	mu    sync.Mutex
	saves []string
}

func (c *cancelOnSave) Save(ctx context.Context, m snapshot.Meta, state []byte) (snapshot.Meta, error) {
	c.once.Do(c.cancel)
	_, bounded := ctx.Deadline()
	c.mu.Lock()
	switch {
	case ctx.Err() != nil:
		c.saves = append(c.saves, "cancelled")
	case bounded:
		c.saves = append(c.saves, "bounded")
	default:
		c.saves = append(c.saves, "unbounded")
	}
	c.mu.Unlock()
	return c.Checkpoints.Save(ctx, m, state)
}

// TestRunnerStoppedAfterCatchUpKeepsCheckpoint: a runner whose context is
// cancelled right after it caught up still writes the checkpoint of what
// it folded (with a bounded context of its own) and returns only the
// cancellation; it used to fail with "checkpoint at seq 4: context
// canceled" and keep nothing.
func TestRunnerStoppedAfterCatchUpKeepsCheckpoint(t *testing.T) {
	l := openLog(t, t.TempDir())
	defer l.Close()
	appendN(t, l, "a", 4)
	snaps, err := l.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	cps := &cancelOnSave{Checkpoints: snaps, cancel: cancel}
	r := projection.NewRunner(typesCount, l, cps, func(e event.Envelope) (event.Envelope, error) { return e, nil }, projection.RunnerOptions{})
	if err := r.Run(ctx); err != context.Canceled {
		t.Fatalf("Run: %v, want exactly context.Canceled", err)
	}
	metas, err := snaps.List("projection/types")
	if err != nil {
		t.Fatal(err)
	}
	if len(metas) != 1 || metas[0].Seq != 4 {
		t.Fatalf("checkpoints %+v, want one at seq 4", metas)
	}
	cps.mu.Lock()
	defer cps.mu.Unlock()
	if n := len(cps.saves); n == 0 || cps.saves[n-1] != "bounded" {
		t.Fatalf("saves %v: the final checkpoint must use a live, bounded context", cps.saves)
	}
	// And a restart resumes from it.
	r = projection.NewRunner(typesCount, l, snaps, func(e event.Envelope) (event.Envelope, error) { return e, nil }, projection.RunnerOptions{})
	ctx2, cancel2 := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx2) }()
	if err := projection.WaitGuarded(t, r, 4, "the 4 events, after the restart"); err != nil {
		t.Fatal(err)
	}
	cancel2()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	if p := r.Plan(); p.Snapshot == nil || p.Snapshot.Seq != 4 {
		t.Fatalf("restart plan %+v, want the checkpoint at seq 4", p)
	}
}
