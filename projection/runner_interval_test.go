package projection

import (
	"context"
	"errors"
	"iter"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/evlog/evlog/snapshot"
)

// savedCheckpoints is a Checkpoints that records what is saved and holds
// nothing (no zstd encoder, whose pool must not be shared by synctest
// bubbles).
type savedCheckpoints struct {
	mu    sync.Mutex
	metas []snapshot.Meta
}

func (c *savedCheckpoints) Save(_ context.Context, m snapshot.Meta, _ []byte) (snapshot.Meta, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.metas = append(c.metas, m)
	return m, nil
}

func (c *savedCheckpoints) saved() []snapshot.Meta {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]snapshot.Meta(nil), c.metas...)
}

func (c *savedCheckpoints) Candidates(string, uint64) iter.Seq2[snapshot.Candidate, error] {
	return func(func(snapshot.Candidate, error) bool) {}
}

func (c *savedCheckpoints) Load(context.Context, snapshot.Meta) ([]byte, error) {
	return nil, snapshot.ErrNotFound
}

func (c *savedCheckpoints) Prune(context.Context, string, snapshot.PrunePolicy) ([]snapshot.Meta, error) {
	return nil, nil
}

// TestRunnerCheckpointsIdleView: events folded and then no more for
// CheckpointInterval are checkpointed then, not only when the next event
// comes or the runner stops: a burst followed by silence used to stay
// unsaved until then, to be folded again after a crash however long ago
// it was. In a synctest bubble, time passes only when every goroutine
// waits.
func TestRunnerCheckpointsIdleView(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := guardLog(t)
		snaps := &savedCheckpoints{}
		r := NewRunner(guardCount, l, snaps, rawEnv, RunnerOptions{CheckpointEvery: 1000, CheckpointInterval: 10 * time.Second})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		synctest.Wait() // caught up with the empty log, following it
		guardAppend(t, l, "a", "a", "a")
		if err := WaitGuarded(t, r, 3, "the 3 appended events"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(11 * time.Second)
		synctest.Wait()
		if metas := snaps.saved(); len(metas) != 1 || metas[0].Seq != 3 {
			t.Errorf("checkpoints %v after the interval passed without events, want one at seq 3", metas)
		}
		// It goes on following after that checkpoint.
		guardAppend(t, l, "b")
		if err := WaitGuarded(t, r, 4, "the event appended after the checkpoint"); err != nil {
			t.Fatal(err)
		}
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("Run: %v", err)
		}
		if m, seq := r.State(); m["a"] != 3 || m["b"] != 1 || seq != 4 {
			t.Errorf("view %v at seq %d", m, seq)
		}
	})
}
